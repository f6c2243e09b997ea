"""An instance's veth deleted from outside is made again; a pooled shell's is discarded.

``ip link del`` of either end of an instance's veth (by hand, a network tool removing links it
does not know, a tenant deleting its own end) takes the pair: the instance is cut off its
network, and nothing said so. :meth:`Manager.revive_veths` (the part runs it every
``switch_check_interval_s``) reads the kernel's link announcements and makes the veth again:
same names and MAC, plugged as before (an isolated leg isolated again), the instance's
addresses and default route back. Real instances, real bridges and switches, real HTTP."""

from __future__ import annotations

import json

import pytest

from fluidedge.instances.linkwatch import list_links
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec
from fluidedge.instances.network import mac_for
from fluidedge.linux import tc
from fluidedge.linux.proc import run
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.wait import wait_until

from .conftest import ManagerFactory, bridge_name, in_netns, two_leg_web, web

pytestmark = pytest.mark.root


def _create(manager: Manager, name: str, template: str, address: str) -> int:
    inst = manager.create_instance(
        InstanceRequest.model_validate(
            {
                "name": name,
                "template": template,
                "interfaces": {"eth0": {"addresses": [address], "gateway": "198.18.40.1"}},
            }
        )
    )
    assert inst.pid is not None
    return inst.pid


def _page(pid: int, address: str) -> str:
    # curl: Debian's busybox wget crashes on -T (and would wait for ever without it)
    return in_netns(pid, "curl", "-s", "-m", "2", f"http://{address}:8080/").stdout


def _host_end(manager: Manager, name: str, iface: str) -> str:
    inst = manager.get_instance(name)
    return next(i.host_ifname for i in inst.shell_ifaces if i.name == iface)


def _inside(pid: int, ifname: str) -> dict[str, object]:
    link = json.loads(in_netns(pid, "ip", "-j", "addr", "show", "dev", ifname).stdout)[0]
    return {
        "mac": link["address"],
        "up": "UP" in link["flags"],
        "addresses": sorted(
            f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["family"] == "inet"
        ),
    }


def test_an_instances_deleted_veth_is_made_again(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=1)
    manager.create_network(NetworkSpec(name="left", bridge=bridge_name("l")))
    manager.create_network(NetworkSpec(name="right", bridge=bridge_name("r")))
    manager.create_template(two_leg_web(pool=1, isolated=True))
    assert manager.wait_pools(60)
    a = _create(manager, "a", "web2", "198.18.40.2/24")
    b = _create(manager, "b", "web2", "198.18.40.3/24")
    assert manager.wait_pools(60)
    assert _page(b, "198.18.40.2") == "hello from a\n"
    assert manager.revive_veths() == []  # the first look lists everything: nothing missing
    owned = {i.host_ifname for inst in manager.instances.values() for i in inst.shell_ifaces}
    assert owned <= (list_links(None) or set())  # what that first look read
    a_left, a_right = _host_end(manager, "a", "eth0"), _host_end(manager, "a", "eth1")
    before = _inside(a, "eth0")
    route = in_netns(a, "ip", "route", "show", "default").stdout
    assert "198.18.40.1" in route
    pooled = list(manager.pools["web2"].ready)
    assert len(pooled) == 1
    shell = pooled[0]

    run(["ip", "link", "del", a_left])
    in_netns(a, "ip", "link", "del", "eth1")  # the instance's end takes the pair too
    run(["ip", "link", "del", shell.ifaces[0].host_ifname])
    assert _page(b, "198.18.40.2") == ""  # cut off

    assert sorted(manager.revive_veths()) == sorted([a_left, a_right])
    assert _page(b, "198.18.40.2") == "hello from a\n"
    assert _inside(a, "eth0") == before  # same MAC, up, same address
    assert before["mac"] == mac_for(a_left)
    assert in_netns(a, "ip", "route", "show", "default").stdout == route
    # the isolated leg is isolated again
    assert tc.isolation(tc.show_filters(None, a_right, "ingress")) is not None
    detail = run(["bridge", "-d", "link", "show", "dev", a_right]).stdout
    assert "learning off" in detail, detail
    # the pooled shell that lost its veth was discarded, and its pool made another
    assert all(s.id != shell.id for s in manager.pools["web2"].ready)
    assert manager.wait_pools(60)
    assert manager.revive_veths() == []
    c = _create(manager, "c", "web2", "198.18.40.4/24")
    assert _page(c, "198.18.40.2") == "hello from a\n"


def test_a_deleted_instance_is_not_revived(manager_factory: ManagerFactory) -> None:
    """The kernel announces our own unplugs too: an instance deleted since the last look
    gets no veth back (nothing is left of it)."""
    manager = manager_factory(pool_scale=0)
    manager.create_network(NetworkSpec(name="left", bridge=bridge_name("l")))
    manager.create_network(NetworkSpec(name="right", bridge=bridge_name("r")))
    manager.create_template(two_leg_web(pool=0))
    _create(manager, "a", "web2", "198.18.40.2/24")
    assert manager.revive_veths() == []
    host = _host_end(manager, "a", "eth0")
    manager.delete_instance("a")
    assert manager.revive_veths() == []
    assert run(["ip", "link", "show", host], check=False).returncode != 0


def test_an_ovs_ports_deleted_veth_is_made_again(
    ovs_ns: str, manager_factory: ManagerFactory
) -> None:
    """On an ``ovs`` network the switch's port is plugged again (its userspace datapath never
    notices a deleted device) under the same OpenFlow port number (the filters' and chains'
    flows name it), on either datapath (the VM tier runs the kernel's). ``ovs_ns`` first: the
    namespace outlives the manager's purge."""
    manager = manager_factory(pool_scale=1)
    bridge = bridge_name("o")
    manager.create_network(NetworkSpec(name="ovsnet", bridge=bridge, driver="ovs", netns=ovs_ns))
    manager.create_template(web("ovsnet", pool=0))
    a = _create(manager, "a", "web", "198.18.40.2/24")
    b = _create(manager, "b", "web", "198.18.40.3/24")
    assert wait_until(lambda: _page(b, "198.18.40.2") == "hello from a\n", 20)
    assert manager.revive_veths() == []
    host = _host_end(manager, "a", "eth0")
    vsctl = Vsctl(ovs_bridges.switch(ovs_ns))
    ofport = vsctl.ofport(host)
    # recorded when plugged: the kernel datapath's switch forgets it with the device
    assert manager.get_instance("a").shell_ifaces[0].ofport == ofport

    in_netns(a, "ip", "link", "del", "eth0")
    assert _page(b, "198.18.40.2") == ""

    assert manager.revive_veths() == [host]
    assert vsctl.ofport(host) == ofport
    assert wait_until(lambda: _page(b, "198.18.40.2") == "hello from a\n", 20)
    assert manager.revive_veths() == []
