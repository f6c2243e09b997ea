"""The OVN engine as fluidedge runs it: instances on different chassis reach each other over
geneve, tenants with the same subnet stay apart, the central survives losing its leaders, a
chassis restart keeps its ports."""

from __future__ import annotations

import re

import pytest

from fluidedge.ovn.central import DB_NAMES
from tests.fixtures.ovn_lab import Instance, OvnLab, run
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root


def _switch(lab: OvnLab, ls: str, ports: dict[str, str]) -> None:
    """Logical switch ``ls`` with logical ports name -> "mac ip"."""
    commands: list[list[str]] = [["ls-add", ls]]
    for name, addresses in ports.items():
        commands += [["lsp-add", ls, name], ["lsp-set-addresses", name, addresses]]
    lab.nbctl.transact(commands)


def _bound(lab: OvnLab, *lsps: str) -> None:
    for lsp in lsps:
        lab.nbctl.run("wait-until", "Logical_Switch_Port", lsp, "up=true", wait="hv")


def _reaches(src: Instance, dst: str) -> bool:
    """A ping answered within a deadline (the first packet may go to neighbour learning)."""
    return wait_until(lambda: src.ping(dst), timeout=15)


def _neighbour_mac(inst: Instance, addr: str) -> str | None:
    out = inst.sh("ip", "neigh", "show", addr).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def test_instances_on_three_chassis_reach_each_other(ovn: OvnLab) -> None:
    p = ovn.prefix
    ports = {f"{p}-a": "02:10:00:00:00:01 10.20.0.1", f"{p}-b": "02:10:00:00:00:02 10.20.0.2",
             f"{p}-c": "02:10:00:00:00:03 10.20.0.3"}  # fmt: skip
    _switch(ovn, f"{p}-net", ports)
    a = ovn.instance("a", 0, f"{p}-a", "02:10:00:00:00:01", "10.20.0.1")
    b = ovn.instance("b", 1, f"{p}-b", "02:10:00:00:00:02", "10.20.0.2")
    c = ovn.instance("c", 2, f"{p}-c", "02:10:00:00:00:03", "10.20.0.3")
    _bound(ovn, *ports)
    assert _reaches(a, "10.20.0.2")
    assert _reaches(b, "10.20.0.3")
    assert _reaches(c, "10.20.0.1")
    # each chassis claimed exactly its own port
    assert ovn.chassis[1].bound_ports() >= {f"{p}-b"}
    assert f"{p}-a" not in ovn.chassis[1].bound_ports()
    # and the packets crossed as geneve between the chassis (tunnel ports on br-int)
    tunnels = ovn.chassis[0].vsctl("--bare", "--columns=type", "list", "Interface").split()
    assert tunnels.count("geneve") == 2


def test_tenants_with_the_same_subnet_stay_apart(ovn: OvnLab) -> None:
    p = ovn.prefix
    macs = {"x1": "02:11:00:00:00:01", "x2": "02:11:00:00:00:02",
            "y1": "02:12:00:00:00:01", "y2": "02:12:00:00:00:02"}  # fmt: skip
    _switch(ovn, f"{p}-tx", {f"{p}-x1": macs["x1"], f"{p}-x2": macs["x2"]})
    _switch(ovn, f"{p}-ty", {f"{p}-y1": macs["y1"], f"{p}-y2": macs["y2"]})
    x1 = ovn.instance("x1", 0, f"{p}-x1", macs["x1"], "10.0.0.1")
    ovn.instance("x2", 1, f"{p}-x2", macs["x2"], "10.0.0.2")
    y1 = ovn.instance("y1", 1, f"{p}-y1", macs["y1"], "10.0.0.1")
    ovn.instance("y2", 2, f"{p}-y2", macs["y2"], "10.0.0.2")
    _bound(ovn, f"{p}-x1", f"{p}-x2", f"{p}-y1", f"{p}-y2")
    assert _reaches(x1, "10.0.0.2")
    assert _reaches(y1, "10.0.0.2")
    # the same address answers from the tenant's own instance only
    assert _neighbour_mac(x1, "10.0.0.2") == macs["x2"]
    assert _neighbour_mac(y1, "10.0.0.2") == macs["y2"]
    # and a tenant's broadcast never reaches the other (no other MAC learned)
    x1.sh("ping", "-b", "-c", "2", "-W", "1", "10.0.0.255", check=False)
    assert macs["y1"] not in x1.sh("ip", "neigh").stdout


def test_losing_the_leaders_and_active_northd_keeps_traffic_and_changes(ovn: OvnLab) -> None:
    p = ovn.prefix
    ports = {f"{p}-a": "02:13:00:00:00:01 10.21.0.1", f"{p}-b": "02:13:00:00:00:02 10.21.0.2"}
    _switch(ovn, f"{p}-ha", ports)
    a = ovn.instance("a", 0, f"{p}-a", "02:13:00:00:00:01", "10.21.0.1")
    ovn.instance("b", 1, f"{p}-b", "02:13:00:00:00:02", "10.21.0.2")
    _bound(ovn, *ports)
    assert _reaches(a, "10.21.0.2")
    central = ovn.central
    # the active northd first (losing the SB leader makes it drop its lock for a moment)
    assert wait_until(central.northd_active, timeout=30)
    active = next(m for m in central.members if central.northd_status(m) == "active")
    central.kill_member_daemon(active, "northd")
    killed = []
    for kind in ("nb", "sb"):
        leader = central.leader(kind)
        assert leader is not None, f"no {DB_NAMES[kind]} leader"
        central.kill_member_daemon(leader, kind)
        killed.append((leader, kind))
    # the data plane does not depend on the central: traffic keeps flowing at once
    result = a.sh("ping", "-c", "10", "-i", "0.05", "-W", "1", "10.21.0.2", check=False)
    received = int(re.search(r"(\d+) received", result.stdout).group(1))  # type: ignore[union-attr]
    assert received >= 8, result.stdout
    # new leaders are elected and a standby northd takes over
    assert wait_until(lambda: central.leader("nb") is not None, timeout=30)
    assert wait_until(lambda: central.leader("sb") is not None, timeout=30)
    assert wait_until(central.northd_active, timeout=30)
    # a change made now reaches the chassis: a new port on chassis 2 becomes reachable (the
    # lab's client names all three members; the dead one is skipped)
    nb = ovn.nbctl
    nb.transact([["lsp-add", f"{p}-ha", f"{p}-c"],
                 ["lsp-set-addresses", f"{p}-c", "02:13:00:00:00:03 10.21.0.3"]])  # fmt: skip
    ovn.instance("c", 2, f"{p}-c", "02:13:00:00:00:03", "10.21.0.3")
    nb.run("wait-until", "Logical_Switch_Port", f"{p}-c", "up=true", wait="hv")
    assert _reaches(a, "10.21.0.3")
    # the killed members rejoin their clusters
    central.start()
    for member, kind in killed:
        assert wait_until(
            lambda m=member, k=kind: "Status: cluster member" in central.cluster_status(m, k),
            timeout=30,
        )


def test_a_restarted_chassis_keeps_its_ports(ovn: OvnLab) -> None:
    p = ovn.prefix
    ports = {f"{p}-a": "02:14:00:00:00:01 10.22.0.1", f"{p}-b": "02:14:00:00:00:02 10.22.0.2"}
    _switch(ovn, f"{p}-rs", ports)
    a = ovn.instance("a", 0, f"{p}-a", "02:14:00:00:00:01", "10.22.0.1")
    ovn.instance("b", 1, f"{p}-b", "02:14:00:00:00:02", "10.22.0.2")
    _bound(ovn, *ports)
    assert _reaches(a, "10.22.0.2")
    host = ovn.chassis[1]
    host.stop()
    assert not host.running()
    assert not a.ping("10.22.0.2")  # its switch is gone: nothing forwards to b
    host.start()
    assert f"{p}-b" in host.bound_ports()  # the port came back from the switch's database
    _bound(ovn, f"{p}-b")
    assert _reaches(a, "10.22.0.2")


def test_central_files_are_private(ovn: OvnLab) -> None:
    for path in (ovn.central.root, *(m.root for m in ovn.central.members)):
        assert path.stat().st_mode & 0o077 == 0, path
    for chassis in ovn.chassis:
        assert chassis.ovn_dir.stat().st_mode & 0o077 == 0
        assert chassis.ovs.root.stat().st_mode & 0o077 == 0
    # and no daemon of ours uses the system's directories
    out = run("ls", "/var/run/ovn", check=False).stdout.split()
    assert not [f for f in out if ovn.prefix in f]
