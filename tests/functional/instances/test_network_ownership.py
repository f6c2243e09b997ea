"""A network's switch is the network's own by a mark on the switch, not by its stored row; a
network whose switch cannot be made at start is kept, not fatal.

- A stored network whose namespace is gone (a reboot takes every namespace the operator made)
  used to refuse the manager's start, taking every instance and service of the node down. It
  is now kept *unavailable* (``stats()["networks_unavailable"]``), and its bridge is made by
  the part's check once the namespace is back.
- A Linux bridge fluidedge makes carries its network's name as its alias; an Open vSwitch
  bridge, as ``external_ids:fluidedge-network``. Deleting a network deletes its bridge only
  when the bridge carries that mark: a damaged row naming the host's own bridge, or another
  network's, and saying ``managed``, leaves it in place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fluidedge.core.store import Store
from fluidedge.instances import network
from fluidedge.instances.errors import InstancesError
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from fluidedge.instances.network import bridge_mark, link_exists
from fluidedge.linux import netns as netns_mod
from fluidedge.linux.proc import run
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.netns import scratch_netns

from .conftest import ManagerFactory, bridge_name

pytestmark = pytest.mark.root


def _again(first: Manager, made: list[Manager]) -> Manager:
    """A new manager on ``first``'s store and state directory (a daemon restart)."""
    first.stop()
    again = Manager(first.config, Store(first.tables.store.path), first.state_dir)
    made.append(again)
    again.start()
    return again


def _damage(manager: Manager, name: str, *, bridge: str, managed: bool = True) -> None:
    """Rewrite network ``name``'s row the way a hand edit (or a flipped bit) would."""
    store = manager.tables.store
    row = store.query("SELECT spec FROM inst_networks WHERE name = ?", (name,))[0]
    spec = json.loads(row["spec"])
    spec["bridge"] = bridge
    with store.transaction() as conn:
        conn.execute(
            "UPDATE inst_networks SET spec = ?, managed = ? WHERE name = ?",
            (json.dumps(spec), int(managed), name),
        )


def _alias(netns: str, ifname: str) -> str:
    out = run(["ip", "-n", netns, "-j", "-d", "link", "show", ifname]).stdout
    return str(json.loads(out)[0].get("ifalias", ""))


@pytest.fixture
def namespace() -> Iterator[str]:
    """The operator's namespace (gone at the end, whatever the test did with it)."""
    with scratch_netns("op") as ns:
        yield ns


def test_a_network_whose_namespace_went_is_kept_and_made_again_when_it_is_back(
    manager_factory: ManagerFactory, namespace: str
) -> None:
    ns = namespace
    first = manager_factory(switch_check_interval_s=0)
    gone = first.create_network(NetworkSpec(name="gone", bridge=bridge_name("g"), netns=ns))
    here = first.create_network(NetworkSpec(name="here", bridge=bridge_name("h")))
    netns_mod.delete(ns)  # what a reboot does to it
    made: list[Manager] = []
    try:
        again = _again(first, made)  # used to raise NetnsNotFound
        assert set(again.networks) == {"gone", "here"}
        unavailable = again.stats()["networks_unavailable"]
        assert list(unavailable) == ["gone"]
        assert ns in unavailable["gone"]
        assert "does not exist" in unavailable["gone"]
        assert link_exists(None, here.bridge)
        again.keep_networks()  # still gone: still unavailable, nothing made
        assert list(again.stats()["networks_unavailable"]) == ["gone"]

        netns_mod.create(ns)
        again.keep_networks()
        assert again.stats()["networks_unavailable"] == {}
        assert link_exists(ns, gone.bridge)
        assert _alias(ns, gone.bridge) == bridge_mark(gone)
        again.delete_network("gone")  # its own: deleted
        assert not link_exists(ns, gone.bridge)
    finally:
        for manager in made:
            manager.purge()


def test_a_damaged_row_naming_the_hosts_bridge_does_not_delete_it(
    manager_factory: ManagerFactory, namespace: str
) -> None:
    ns = namespace
    hosts = bridge_name("x")  # the operator's bridge: not ours, no mark
    run(["ip", "-n", ns, "link", "add", hosts, "type", "bridge"])
    first = manager_factory(switch_check_interval_s=0)
    own = first.create_network(NetworkSpec(name="n1", bridge=bridge_name("n"), netns=ns))
    assert _alias(ns, own.bridge) == bridge_mark(own)
    _damage(first, "n1", bridge=hosts, managed=True)
    made: list[Manager] = []
    try:
        again = _again(first, made)
        assert again.networks["n1"].bridge == hosts
        again.delete_network("n1")
        assert "n1" not in again.networks
        assert link_exists(ns, hosts)  # the row said managed; the bridge says otherwise
        assert _alias(ns, hosts) == ""
    finally:
        for manager in made:
            manager.purge()
    assert link_exists(ns, hosts)  # nor does a purge take it


def test_a_damaged_row_naming_another_networks_bridge_does_not_delete_it(
    manager_factory: ManagerFactory, namespace: str
) -> None:
    ns = namespace
    first = manager_factory(switch_check_interval_s=0)
    a = first.create_network(NetworkSpec(name="a", bridge=bridge_name("a"), netns=ns))
    b = first.create_network(NetworkSpec(name="b", bridge=bridge_name("b"), netns=ns))
    _damage(first, "a", bridge=b.bridge)
    made: list[Manager] = []
    try:
        again = _again(first, made)
        again.delete_network("a")
        assert link_exists(ns, b.bridge)
        assert _alias(ns, b.bridge) == bridge_mark(b)
        assert link_exists(ns, a.bridge)  # a's own bridge, which its row no longer names
        again.delete_network("b")
        assert not link_exists(ns, b.bridge)
    finally:
        for manager in made:
            manager.purge()


def test_an_ovs_row_naming_another_networks_bridge_is_unavailable_and_deletes_nothing(
    ovs_ns: str, manager_factory: ManagerFactory
) -> None:
    first = manager_factory(switch_check_interval_s=0)
    a = first.create_network(
        NetworkSpec(name="oa", bridge=bridge_name("p"), driver="ovs", netns=ovs_ns)
    )
    b = first.create_network(
        NetworkSpec(name="ob", bridge=bridge_name("q"), driver="ovs", netns=ovs_ns)
    )
    switch = ovs_bridges.switch(ovs_ns)
    assert Vsctl(switch).bridge_id(b.bridge, ovs_bridges.NETWORK_ID) == "ob"
    _damage(first, "oa", bridge=b.bridge)
    made: list[Manager] = []
    try:
        again = _again(first, made)
        unavailable = again.stats()["networks_unavailable"]
        assert list(unavailable) == ["oa"]
        assert "network ob's" in unavailable["oa"]
        # not relabelled to the damaged row's network
        assert Vsctl(switch).bridge_id(b.bridge, ovs_bridges.NETWORK_ID) == "ob"
        again.delete_network("oa")
        assert b.bridge in ovs_bridges.bridge_names(ovs_ns)
        assert a.bridge in ovs_bridges.bridge_names(ovs_ns)
        again.delete_network("ob")
        assert b.bridge not in ovs_bridges.bridge_names(ovs_ns)
    finally:
        for manager in made:
            manager.purge()


def _web_on(network: str) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "name": "nsweb",
            "command": ["/bin/busybox", "sleep", "2147483647"],
            "interfaces": [{"name": "eth0", "network": network}],
            "pool": {"size": 0},
        }
    )


def test_a_network_whose_namespace_is_gone_never_makes_the_namespace(
    manager_factory: ManagerFactory, namespace: str
) -> None:
    """pyroute2 creates a namespace it is asked to enter unless told not to: a creation on a
    network whose namespace was gone made an empty one of the operator's name (the operator's
    ``ip netns add`` then failed, and the network's bridge went into the wrong one)."""
    manager = manager_factory(switch_check_interval_s=0)
    manager.create_network(NetworkSpec(name="nsn", bridge=bridge_name("z"), netns=namespace))
    manager.create_template(_web_on("nsn"))
    netns_mod.delete(namespace)
    network.close_handles()  # as a daemon started after the reboot: nothing cached
    with pytest.raises(InstancesError, match="does not exist"):
        manager.create_instance(InstanceRequest(name="z1", template="nsweb"))
    assert not netns_mod.exists(namespace)
    manager.keep_networks()  # the checks do not make it either
    assert not netns_mod.exists(namespace)
    assert "z1" not in manager.instances


def test_a_namespace_made_again_under_its_name_gets_the_networks_bridge(
    manager_factory: ManagerFactory, namespace: str
) -> None:
    """``ip netns del`` then ``ip netns add`` of the same name while the daemon runs: the
    handle cached for the old namespace kept answering (the old namespace lives on while a
    socket holds it), so the check saw the bridge there and never made it in the new one."""
    manager = manager_factory(switch_check_interval_s=0)
    spec = manager.create_network(NetworkSpec(name="nsm", bridge=bridge_name("m"), netns=namespace))
    assert link_exists(namespace, spec.bridge)
    netns_mod.delete(namespace)
    netns_mod.create(namespace)
    assert not link_exists(namespace, spec.bridge)  # the new namespace's answer
    manager.keep_networks()
    assert link_exists(namespace, spec.bridge)
    assert run(["ip", "-n", namespace, "link", "show", spec.bridge]).returncode == 0
    assert _alias(namespace, spec.bridge) == bridge_mark(spec)
