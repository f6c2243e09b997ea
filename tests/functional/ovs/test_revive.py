"""A switch of ours that dies under the daemon is restarted, and its flows come back in order.

A real switch (the registry of :mod:`fluidedge.ovs.bridges`, as the instances part uses it) in
a namespace of the test's own, a bridge with two "hosts" (namespaces on veths) that ping each
other through it. ``kill -9`` of ``ovs-vswitchd`` (an OOM kill) or of ``ovsdb-server`` stops
all forwarding; :func:`bridges.revive` restarts the pair from its database (bridge and ports
kept), calls the restorers while the bridge still has no flow (nothing forwards unfiltered
meanwhile), then gives it its learning-switch flow: the hosts ping again. A restorer that
fails leaves the bridge without flows, dropping, until a later revive succeeds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fluidedge.linux.proc import run
from fluidedge.ovs import bridges, tool
from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.netns import scratch_netns
from tests.fixtures.ovs_datapath import DATAPATH
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

TAG = f"rv{os.getpid() % 100000}"
BRIDGE = f"{TAG}br"
HOSTS = {"a": "10.77.0.1", "b": "10.77.0.2"}
BASE = "priority=0 actions=NORMAL"  # bridges.BASE_FLOW as ovs-ofctl dumps it


@dataclass
class Switch:
    ns: str
    daemons: OvsDaemons
    hosts: dict[str, str]  # host name -> its namespace

    def pings(self, src: str, dst: str, tries: int = 5) -> bool:
        """One ping of ``tries`` answered (a host's neighbour entry may need a second ARP
        once the switch forwards again)."""
        argv = ["ip", "netns", "exec", self.hosts[src], "ping", "-c", "1", "-W", "1", HOSTS[dst]]
        return any(run(argv, check=False).returncode == 0 for _ in range(tries))

    def flows(self) -> list[str]:
        return Ofctl(self.daemons, BRIDGE).dump()


@pytest.fixture
def switch(own_registry: Path) -> Iterator[Switch]:
    with scratch_netns(f"{TAG}s") as ns, contextlib.ExitStack() as stack:
        assert bridges.ensure_bridge(BRIDGE, ns, "net")
        daemons = bridges.switch(ns)
        stack.callback(daemons.destroy)
        hosts = {}
        for index, (name, address) in enumerate(HOSTS.items()):
            host = stack.enter_context(scratch_netns(f"{TAG}{name}"))
            port = f"{TAG}p{index}"
            peer = ["peer", "eth0", "netns", host]
            run(["ip", "-n", ns, "link", "add", port, "type", "veth", *peer])
            run(["ip", "-n", host, "addr", "add", f"{address}/24", "dev", "eth0"])
            run(["ip", "-n", host, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", port, "up"])
            bridges.add_port(BRIDGE, ns, port, {"fluidedge-network": "net"})
            hosts[name] = host
        yield Switch(ns, daemons, hosts)


def _kill(pidfile: Path) -> int:
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # reaped by PID 1 (the daemons detach)
    return pid


@pytest.mark.parametrize("victim", ["ovs-vswitchd", "ovsdb-server"])
def test_a_killed_daemon_is_restarted_and_the_flows_come_back_after_the_restorers(
    switch: Switch, victim: str, caplog: pytest.LogCaptureFixture
) -> None:
    daemons = switch.daemons
    assert switch.pings("a", "b")
    assert bridges.revive() == []  # nothing died: nothing done
    generation = daemons.generation
    pidfile = daemons.vswitchd_pidfile if victim == "ovs-vswitchd" else daemons.db_pidfile
    killed = _kill(pidfile)
    if victim == "ovs-vswitchd" and DATAPATH == "netdev":
        # nothing forwards any more (the kernel datapath would go on with the flows it
        # cached until they expire: nothing revalidates them)
        assert not switch.pings("a", "b", tries=1)

    seen: list[tuple[str | None, list[str]]] = []
    bridges.add_restorer(lambda netns: seen.append((netns, switch.flows())))
    with caplog.at_level(logging.INFO, logger="fluidedge.ovs"):
        assert bridges.revive() == [switch.ns]

    assert seen == [(switch.ns, [])]  # called once, while the bridge held no flow
    assert daemons.running()
    assert killed not in daemons.pids()
    assert daemons.generation == generation + 1
    vsctl = Vsctl(daemons)
    assert vsctl.bridges() == [BRIDGE]  # from its database
    assert sorted(vsctl.ports(BRIDGE)) == [f"{TAG}p0", f"{TAG}p1"]
    assert switch.flows() == [BASE]
    assert switch.pings("a", "b")
    assert switch.pings("b", "a")
    said = [r.getMessage() for r in caplog.records]
    assert any(f"{victim} of the switch of namespace {switch.ns} died" in m for m in said), said
    assert any("is whole again" in m for m in said), said

    assert bridges.revive() == []  # whole: nothing more to do
    assert len(seen) == 1


def test_a_failed_restorer_leaves_the_bridge_dropping_until_it_succeeds(switch: Switch) -> None:
    failing = True

    def restorer(_netns: str | None) -> None:
        if failing:
            raise RuntimeError("the tables could not be installed")

    bridges.add_restorer(restorer)
    _kill(switch.daemons.vswitchd_pidfile)
    with pytest.raises(RuntimeError, match="could not be installed"):
        bridges.revive()
    assert switch.daemons.running()  # restarted,
    assert switch.flows() == []  # but without its flows: it forwards nothing
    assert not switch.pings("a", "b", tries=1)
    with pytest.raises(RuntimeError):
        bridges.revive()  # tried again while it fails (the daemon logs it once)

    failing = False
    assert bridges.revive() == [switch.ns]
    assert switch.flows() == [BASE]
    assert switch.pings("a", "b")


def test_a_switch_whose_last_bridge_went_is_not_revived(switch: Switch) -> None:
    bridges.delete_bridge(BRIDGE, switch.ns)  # the switch stops with its last bridge
    assert switch.daemons.pids() == (None, None)
    assert bridges.revive() == []
    assert switch.daemons.pids() == (None, None)


def test_a_switch_restarted_by_a_new_daemon_gets_its_flows_after_the_restorers(
    switch: Switch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch died while no daemon ran: the next daemon's first look at the network (a
    fresh registry, as in a new process) restarts it, but gives its bridge no flow; the
    daemon's first revive, once its parts have started, does: the restorers' first."""
    _kill(switch.daemons.vswitchd_pidfile)
    monkeypatch.setattr(bridges, "_switches", {})
    monkeypatch.setattr(bridges, "_kept", {})
    assert BRIDGE in bridges.declared_bridges(switch.ns)  # restarts it: the bridge is ours
    assert not bridges.ensure_bridge(BRIDGE, switch.ns, "net")
    daemons = bridges.switch(switch.ns)
    assert daemons.running()
    switch.daemons = daemons
    assert switch.flows() == []  # no learning switch before the restorers ran
    assert not switch.pings("a", "b", tries=1)

    seen: list[list[str]] = []
    bridges.add_restorer(lambda _netns: seen.append(switch.flows()))
    assert bridges.revive() == [switch.ns]
    assert seen == [[]]
    assert switch.flows() == [BASE]
    assert switch.pings("a", "b")


def test_every_flow_deleted_from_outside_is_put_back_after_the_restorers(
    switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    """``ovs-ofctl del-flows`` on a bridge of ours, the switch alive: a ``fail_mode=secure``
    bridge with no flow forwards nothing, and no other check puts back the learning-switch
    flow. The switch check sees the empty bridge and restores it as after a restart."""
    assert switch.pings("a", "b")
    seen: list[list[str]] = []
    bridges.add_restorer(lambda _netns: seen.append(switch.flows()))
    assert bridges.revive() == []  # whole: no restorer called
    assert seen == []
    tool.run(["ovs-ofctl", "del-flows", switch.daemons.mgmt(BRIDGE)], switch.daemons.env)
    assert switch.flows() == []
    # (the kernel datapath drops its cached flows once revalidated: soon, not at once)
    assert wait_until(lambda: not switch.pings("a", "b", tries=1), timeout=10)
    with caplog.at_level(logging.ERROR, logger="fluidedge.ovs"):
        assert bridges.revive() == [switch.ns]
    assert seen == [[]]  # the restorers first, while nothing forwards unfiltered
    assert switch.flows() == [BASE]
    assert switch.pings("a", "b")
    said = [r.getMessage() for r in caplog.records]
    assert any(f"every flow of bridge {BRIDGE}" in m and "deleted from outside" in m for m in said)
    assert bridges.revive() == []
    assert len(seen) == 1


def test_a_bridge_given_its_flow_while_it_was_looked_at_is_not_reported(
    switch: Switch, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The look for emptied bridges runs without the registry's lock (every port plugged
    takes it), so it can see a bridge that :func:`bridges.ensure_bridge` is making and has
    not given its flow yet. What it saw is confirmed under the lock: here the flow comes
    between the look and the confirmation, as it would once the creation lets the lock go."""
    tool.run(["ovs-ofctl", "del-flows", switch.daemons.mgmt(BRIDGE)], switch.daemons.env)
    real = bridges._lock
    entries = [0]
    at_confirmation, go = threading.Event(), threading.Event()

    class HeldAtConfirmation:
        """The registry's lock, held back at its second taking in a pass (the first is the
        pass's list of switches; the second, the confirmation)."""

        def __enter__(self) -> object:
            entries[0] += 1
            if entries[0] == 2:
                at_confirmation.set()
                go.wait(30)
            return real.__enter__()

        def __exit__(self, *exc: object) -> None:
            real.__exit__(*exc)

    monkeypatch.setattr(bridges, "_lock", HeldAtConfirmation())
    done: list[list[str | None]] = []
    with caplog.at_level(logging.ERROR, logger="fluidedge.ovs"):
        thread = threading.Thread(target=lambda: done.append(bridges.revive()))
        thread.start()
        assert at_confirmation.wait(30)  # the look saw the bridge empty
        Ofctl(switch.daemons, BRIDGE).bundle([f"add {bridges.BASE_FLOW}"])
        go.set()
        thread.join(30)
    assert done == [[]]
    assert not [r for r in caplog.records if "deleted from outside" in r.getMessage()]
    assert switch.flows() == [BASE]
