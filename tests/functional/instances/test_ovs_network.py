"""Instance networks on the ``ovs`` driver: our own ovsdb-server/ovs-vswitchd, real traffic.

Two instances on an Open vSwitch bridge (userspace netdev datapath) reach each other over TCP
(an HTTP fetch), UDP-free ICMP and IPv6; their veths are OVS ports carrying external_ids; a
network inside a namespace gets a switch of its own there; deleting everything stops the
daemons and leaves no port, bridge or directory behind.
"""

from __future__ import annotations

import os

import pytest

from fluidedge.instances.errors import NotABridge, RuntimeFailure
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec
from fluidedge.instances.network import bridge_mac, mac_for
from fluidedge.linux import netns as netns_mod
from fluidedge.linux import procfs
from fluidedge.linux.proc import run
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.ovs_datapath import DATAPATH
from tests.fixtures.wait import wait_until

from .conftest import ManagerFactory, bridge_name, in_netns, web

pytestmark = pytest.mark.root


def _instance(manager: Manager, name: str, *addresses: str) -> int:
    inst = manager.create_instance(
        InstanceRequest.model_validate(
            {
                "name": name,
                "template": "web",
                "interfaces": {"eth0": {"addresses": list(addresses)}},
            }
        )
    )
    assert inst.pid is not None
    return inst.pid


def _two_on(manager: Manager, network: str, bridge: str, netns: str, net24: str) -> tuple[int, int]:
    """An ovs network ``network`` on ``bridge`` in ``netns``, the web template on it, and
    instances a and b at ``net24``.2 and .3 (their pids)."""
    manager.create_network(NetworkSpec(name=network, bridge=bridge, driver="ovs", netns=netns))
    manager.create_template(web(network, pool=2))
    assert manager.wait_pools(60)
    return _instance(manager, "a", f"{net24}.2/24"), _instance(manager, "b", f"{net24}.3/24")


def _fetch(pid: int, target: str) -> str:
    """GET the peer's page, retrying while the switch learns the neighbours (first packets)."""
    argv = ("curl", "-s", "-g", "--max-time", "3", f"http://{target}:8080/")
    got = [in_netns(pid, *argv)]

    def fetched() -> bool:
        if got[0].returncode != 0:
            got[0] = in_netns(pid, *argv)
        return got[0].returncode == 0

    wait_until(fetched, 20)  # the caller asserts on the page
    return got[0].stdout


def test_instances_on_an_ovs_network_talk_and_teardown_is_clean(
    ovs_ns: str, manager_factory: ManagerFactory
) -> None:
    manager = manager_factory(pool_scale=1)
    bridge = bridge_name("o")
    spec = manager.create_network(
        NetworkSpec(name="ovsnet", bridge=bridge, driver="ovs", netns=ovs_ns)
    )
    assert spec.driver == "ovs"
    switch = ovs_bridges.switch(ovs_ns)
    assert switch.root.name == f"ns-{ovs_ns}"
    # The bridge's own interface is in the namespace, not here.
    assert run(["ip", "-n", ovs_ns, "link", "show", bridge]).returncode == 0
    assert run(["ip", "link", "show", bridge], check=False).returncode != 0
    assert switch.running()
    # Private directories under the manager's state dir, 0700; nothing under /var/run.
    assert switch.root.is_relative_to(manager.state_dir)
    assert oct(switch.root.stat().st_mode & 0o777) == "0o700"
    assert Vsctl(switch).run("get", "Bridge", bridge, "datapath_type").strip() == DATAPATH
    assert Vsctl(switch).run("get", "Bridge", bridge, "fail_mode").strip() == "secure"
    manager.create_template(web("ovsnet", pool=2))
    assert manager.wait_pools(60)
    a = _instance(manager, "a", "198.18.30.2/24", "2001:db8:30::2/64")
    b = _instance(manager, "b", "198.18.30.3/24", "2001:db8:30::3/64")

    ports = ovs_bridges.ports(bridge, ovs_ns)
    ifaces = Vsctl(switch).interfaces()
    inst_a = manager.instances["a"]
    host_a = inst_a.interfaces[0].host_ifname
    assert host_a in ports
    assert ifaces[host_a]["external_ids"] == {
        "attached-mac": mac_for(host_a),  # the instance end's MAC (routed chain functions)
        "fluidedge-iface": "eth0",
        "fluidedge-network": "ovsnet",
    }
    ofport = ifaces[host_a]["ofport"]
    assert isinstance(ofport, int)
    assert ofport > 0
    # Not on any Linux bridge: no master on the userspace datapath, the kernel datapath's own
    # device on the kernel's.
    words = run(["ip", "-n", ovs_ns, "-d", "link", "show", host_a]).stdout.split()
    master = words[words.index("master") + 1] if "master" in words else None
    assert master == ("ovs-system" if DATAPATH == "system" else None)
    # No IPv6 on the switch-side ends (not isolated ports either): the port's kernel sends
    # the instance no chatter of its own; the instances' IPv6 crosses the switch (below).
    for host in (host_a, manager.instances["b"].interfaces[0].host_ifname):
        sysctl = run(
            ["ip", "netns", "exec", ovs_ns, "sysctl", "-n", f"net.ipv6.conf.{host}.disable_ipv6"]
        )
        assert sysctl.stdout.strip() == "1"
        assert run(["ip", "-n", ovs_ns, "-6", "-o", "addr", "show", "dev", host]).stdout == ""
    # Real traffic through ovs-vswitchd: TCP (over both families) and ICMP.
    assert _fetch(b, "198.18.30.2") == "hello from a\n"
    assert _fetch(a, "[2001:db8:30::3]") == "hello from b\n"
    assert in_netns(a, "ping", "-c", "1", "-W", "2", "198.18.30.3").returncode == 0
    # The datapath carried it: the base flow counted packets.
    stats = Ofctl(switch, bridge).dump_with_stats()
    assert any("n_packets=0" not in flow and "NORMAL" in flow for flow in stats), stats

    # Deleting an instance removes its OVS port with its veth.
    manager.delete_instance("a")
    assert host_a not in ovs_bridges.ports(bridge, ovs_ns)
    assert host_a not in Vsctl(switch).interfaces()
    # The bridge kept its own MAC while ports came and went (not its lowest port's).
    own = run(["ip", "-n", ovs_ns, "-o", "link", "show", bridge]).stdout
    assert f"link/ether {bridge_mac(spec)} " in own, own

    manager.purge()
    assert not switch.running()
    assert not switch.root.exists()
    assert run(["ip", "-n", ovs_ns, "link", "show", bridge], check=False).returncode != 0
    assert run(["ip", "-n", ovs_ns, "link", "show", "ovs-netdev"], check=False).returncode != 0


def test_an_interface_that_is_not_our_bridge_is_not_adopted(
    ovs_ns: str, manager_factory: ManagerFactory
) -> None:
    manager = manager_factory(pool_scale=0)
    name = bridge_name("x")
    run(["ip", "-n", ovs_ns, "link", "add", name, "type", "veth", "peer", "name", "y0"])
    with pytest.raises(NotABridge, match="not a bridge of fluidedge's Open vSwitch"):
        manager.create_network(NetworkSpec(name="x", bridge=name, driver="ovs", netns=ovs_ns))
    assert "x" not in manager.networks


def test_restart_adopts_the_running_switch_and_its_ports(
    ovs_ns: str, manager_factory: ManagerFactory
) -> None:
    """A daemon restart (stop + a new manager on the same state) keeps the switch: same pids,
    same ports, traffic still flows; nothing is started twice."""
    first = manager_factory(pool_scale=1)
    bridge = bridge_name("r")
    a, b = _two_on(first, "rnet", bridge, ovs_ns, "198.18.32")
    switch = ovs_bridges.switch(ovs_ns)
    pids = switch.pids()
    first.stop()
    again = Manager(first.config, first.tables.store, first.state_dir)
    again.start()
    try:
        assert ovs_bridges.switch(ovs_ns).pids() == pids
        expected = {i.host_ifname for x in again.instances.values() for i in x.interfaces}
        expected |= {i.host_ifname for p in again.pools.values() for s in p.ready for i in s.ifaces}
        assert set(ovs_bridges.ports(bridge, ovs_ns)) == expected
        assert _fetch(a, "198.18.32.3") == "hello from b\n"
        assert b
    finally:
        again.purge()
        first.purge()


def test_a_network_created_on_a_dead_switch_restores_its_other_bridges(
    ovs_ns: str, manager_factory: ManagerFactory
) -> None:
    """The switch of a namespace died; the next network created there restarts it, which
    brings back its bridges without flows (``fail_mode=secure``: they drop everything). The
    creation restores them in order at once, whatever the part's check interval (here off)."""
    manager = manager_factory(pool_scale=1, switch_check_interval_s=0)
    first = bridge_name("a")
    a, b = _two_on(manager, "first", first, ovs_ns, "198.18.40")
    assert _fetch(b, "198.18.40.2") == "hello from a\n"
    switch = ovs_bridges.switch(ovs_ns)
    _db, vswitchd = switch.pids()
    assert vswitchd is not None
    os.kill(vswitchd, 9)
    assert wait_until(lambda: switch.pids()[1] is None, 10)

    manager.create_network(
        NetworkSpec(name="second", bridge=bridge_name("b"), driver="ovs", netns=ovs_ns)
    )
    assert Ofctl(switch, first).dump()  # the first bridge has its flow again
    assert _fetch(a, "198.18.40.3") == "hello from b\n"


def _network_in_its_namespace(
    factory: ManagerFactory, tag: str, network: str
) -> tuple[Manager, str]:
    """A manager (no pool, no periodic check) and an ovs network ``network`` in a namespace
    made for it, whose name is returned; the caller deletes the namespace."""
    manager = factory(pool_scale=0, switch_check_interval_s=0)
    ns = f"fb{tag}{os.getpid() % 100000}"
    netns_mod.create(ns)
    try:
        manager.create_network(
            NetworkSpec(name=network, bridge=bridge_name(network[0]), driver="ovs", netns=ns)
        )
    except BaseException:
        netns_mod.delete(ns)
        raise
    return manager, ns


def test_a_dead_switch_whose_namespace_went_is_forgotten(
    manager_factory: ManagerFactory,
) -> None:
    """A namespace deleted under an ovs network takes the switch's bridges with it: the check
    forgets the dead switch instead of restarting it (in a namespace made later under that
    name, which is another one)."""
    _manager, ns = _network_in_its_namespace(manager_factory, "q", "gone")
    try:
        switch = ovs_bridges.switch(ns)
        for pid in switch.pids():
            assert pid is not None
            os.kill(pid, 9)
        assert wait_until(lambda: switch.pids() == (None, None), 10)
    finally:
        netns_mod.delete(ns)
    assert ovs_bridges.revive() == []
    assert switch.pids() == (None, None)  # not restarted
    netns_mod.create(ns)  # the same name again: not the switch's namespace
    try:
        assert ovs_bridges.revive() == []
        assert switch.pids() == (None, None)
    finally:
        netns_mod.delete(ns)


def test_a_network_whose_namespace_went_is_deleted_with_its_running_switch(
    manager_factory: ManagerFactory,
) -> None:
    """``ip netns del`` under an ovs network removes the name, not the namespace: the switch's
    daemons still run in it, unreachable by name. Deleting the network stops them and removes
    the switch's directory (it used to return early, leaving both for good)."""
    manager, ns = _network_in_its_namespace(manager_factory, "r", "orphan")
    try:
        switch = ovs_bridges.switch(ns)
        pids = switch.pids()
        assert None not in pids
    finally:
        netns_mod.delete(ns)
    assert not netns_mod.exists(ns)
    assert switch.running()  # alive in the nameless namespace
    assert ovs_bridges.revive() == []  # alive: nothing to restart or forget
    manager.delete_network("orphan")
    assert switch.pids() == (None, None)
    # gone (or a zombie: this machine's pid 1 does not reap the detached daemons), once the
    # signal is delivered and acted on (a loaded host takes a moment)
    assert wait_until(
        lambda: not any(procfs.process_running(pid) for pid in pids if pid is not None), 10
    ), pids
    assert not switch.root.exists()


def test_a_namespace_made_again_under_the_name_is_not_given_the_old_switch(
    manager_factory: ManagerFactory,
) -> None:
    """``ip netns del`` then ``ip netns add`` of the same name: the old switch still runs in
    the old, nameless namespace. A network created in the new one is refused with the reason
    (adopted, its bridge was made there, out of the new namespace's reach, and the creation
    failed with "bridge did not appear"); once the old network is deleted (its switch with
    it), the same creation works in the new namespace."""
    manager, ns = _network_in_its_namespace(manager_factory, "n", "old")
    try:
        netns_mod.delete(ns)
        netns_mod.create(ns)  # another namespace, the same name
        again = NetworkSpec(name="new", bridge=bridge_name("n"), driver="ovs", netns=ns)
        refused = r"whose name was deleted; namespace .* is another"
        with pytest.raises(RuntimeFailure, match=refused):
            manager.create_network(again)
        assert "new" not in manager.networks
        manager.delete_network("old")
        manager.create_network(again)
        switch = ovs_bridges.switch(ns)
        vswitchd = switch.pids()[1]
        assert os.stat(f"/proc/{vswitchd}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
        assert bridge_name("n") in run(["ip", "-n", ns, "-br", "link"]).stdout
        manager.delete_network("new")
    finally:
        netns_mod.delete(ns)
