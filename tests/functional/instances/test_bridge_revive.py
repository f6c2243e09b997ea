"""A ``linuxbridge`` network's bridge deleted from outside comes back with its ports.

``ip link del <bridge>`` (by hand, or a network tool removing bridges it does not know) leaves
every veth of the network alive but attached to nothing: the instances on it are cut off from
each other, with nothing to say so. :meth:`Manager.revive_bridges` (the part runs it every
``switch_check_interval_s``) creates the bridge again with its MAC and makes the instances' and
pooled shells' veths its ports again, an isolated one isolated again. Real instances, real
bridges, real HTTP between them."""

from __future__ import annotations

import json

import pytest

from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec
from fluidedge.linux import tc
from fluidedge.linux.proc import run

from .conftest import ManagerFactory, bridge_name, in_netns, two_leg_web

pytestmark = pytest.mark.root


def _setup(manager: Manager) -> None:
    manager.create_network(NetworkSpec(name="left", bridge=bridge_name("l")))
    manager.create_network(NetworkSpec(name="right", bridge=bridge_name("r")))
    manager.create_template(two_leg_web(pool=1, isolated=True))


def _create(manager: Manager, name: str, host: int) -> int:
    inst = manager.create_instance(
        InstanceRequest.model_validate(
            {
                "name": name,
                "template": "web2",
                "interfaces": {"eth0": {"addresses": [f"198.18.30.{host}/24"]}},
            }
        )
    )
    return inst.pid or 0


def _page(pid: int, address: str) -> str:
    # curl: Debian's busybox wget crashes on -T (and would wait for ever without it)
    return in_netns(pid, "curl", "-s", "-m", "2", f"http://{address}:8080/").stdout


def _ports(bridge: str) -> set[str]:
    links = json.loads(run(["ip", "-j", "link", "show", "master", bridge]).stdout or "[]")
    return {link["ifname"] for link in links}


def test_a_deleted_bridge_comes_back_with_its_ports(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=1)
    _setup(manager)
    assert manager.wait_pools(60)
    a = _create(manager, "a", 2)
    b = _create(manager, "b", 3)
    assert manager.wait_pools(60)
    assert _page(b, "198.18.30.2") == "hello from a\n"
    assert manager.revive_bridges() == []  # all there: nothing done
    left, right = bridge_name("l"), bridge_name("r")
    ports = {net: {host for host, _ in hosts} for net, hosts in manager.bridge_ports().items()}
    assert len(ports["left"]) == 3  # a's, b's and the pooled shell's
    assert _ports(left) == ports["left"]
    assert _ports(right) == ports["right"]
    mac = json.loads(run(["ip", "-j", "link", "show", left]).stdout)[0]["address"]

    run(["ip", "link", "del", left])
    run(["ip", "link", "del", right])
    assert _page(b, "198.18.30.2") == ""  # cut off

    assert sorted(manager.revive_bridges()) == ["left", "right"]
    assert _ports(left) == ports["left"]
    assert _ports(right) == ports["right"]
    assert json.loads(run(["ip", "-j", "link", "show", left]).stdout)[0]["address"] == mac
    assert _page(b, "198.18.30.2") == "hello from a\n"
    for host in ports["right"]:  # the isolated legs are isolated again
        assert tc.isolation(tc.show_filters(None, host, "ingress")) is not None
        detail = run(["bridge", "-d", "link", "show", "dev", host]).stdout
        assert "learning off" in detail, detail
        assert "flood off" in detail, detail
    assert manager.revive_bridges() == []
    # a new instance from the pool (its shell plugged before the deletion) works too
    c = _create(manager, "c", 4)
    assert _page(c, "198.18.30.3") == "hello from b\n"
    assert _page(a, "198.18.30.4") == "hello from c\n"
