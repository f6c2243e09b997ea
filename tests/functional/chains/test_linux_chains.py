"""What only the Linux-bridge data plane (the tc/eBPF program) has, real packets.

The scenarios both drivers share are in ``test_chain_paths.py``. Here, on a Linux bridge with
hosts A and B and transparent functions (namespaces bridging ``in`` to ``out``, packet
sockets inside counting what they saw): a function's legs out of the bridge, a program
removed by hand, a restarted adapter adopting what the last one left, a member that dies
skipped in the kernel, a one-armed function, and what only the kernel path can show on this
machine: a stream of 10,000 datagrams/s through three chain changes loses and reorders
nothing.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from fluidedge.chains.linuxbridge import HANDLE, PREF, LinuxChains
from fluidedge.chains.model import ChainState, PortPair, PortPairGroup
from fluidedge.chains.tcplan import PORT_VAL
from fluidedge.linux import tc
from fluidedge.linux.libbpf import BpfMap
from fluidedge.linux.proc import run
from fluidedge.linux.sockbuf import size_buffers
from tests.fixtures.wait import wait_until

from . import udp_stream
from .chain_lab import (
    Function,
    LinuxChainLab,
    drop_counters,
    echo,
    group_state,
    moved,
    owners,
)

pytestmark = pytest.mark.root

PORT = 7000


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LinuxChainLab]:
    lab = LinuxChainLab(tmp_path)
    try:
        lab.host("a", "net", "02:00:00:00:0a:01", "10.0.0.1/24")
        lab.host("b", "net", "02:00:00:00:0a:02", "10.0.0.2/24")
        yield lab
    finally:
        lab.close()


def _state(
    lab: LinuxChainLab, fns: list[Function], *, policy: str = "closed", protocol: int = 17
) -> ChainState:
    return group_state(lab, fns, policy=policy, protocol=protocol, port=PORT, ports=10)


def _runs(missing: set[int]) -> str:
    """Missing sequence numbers as ``first+length`` runs."""
    runs: list[list[int]] = []
    for n in sorted(missing):
        if runs and n == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([n, 1])
    return " ".join(f"{first}+{length}" for first, length in runs)


def _filters(lab: LinuxChainLab, dev: str) -> str:
    return run(["tc", "-n", lab.switch, "filter", "show", "dev", dev, "ingress"]).stdout


def test_function_legs_are_out_of_the_bridge_until_and_after_a_chain(lab: LinuxChainLab) -> None:
    """A declared pair with no chain: its legs get nothing from the bridge and send nothing
    into it (A and B talk directly); with the chain gone, a leg that was not plugged isolated
    gets its bridge flags back and our filter leaves it."""
    f1 = lab.function("f1")
    # The function forwards nothing here: two plain ports of one bridge joined by a wire are
    # an L2 loop, whose broadcast storm (seen on Debian 12's kernel in the VM tier) starves
    # the machine. Its packet sockets still see what reaches its legs.
    for leg in ("in", "out"):
        run(["ip", "-n", f1.netns, "link", "set", leg, "nomaster"])
    # A port that is a plain bridge port (not plugged isolated) becomes a function's leg.
    plain = Function("p", f1.netns, f1.ingress, f1.egress)
    for dev in (f1.ingress, f1.egress):
        tc.unisolate(lab.switch, dev, tc.PLUGGED)  # flags back to a plain port's too
    plane = lab.plane()
    pairs = ChainState(port_pairs={"p": PortPair("p", plain.ingress, plain.egress)})
    plane.apply(pairs)
    info = run(["bridge", "-n", lab.switch, "-d", "link", "show", "dev", f1.ingress]).stdout
    assert "learning off" in info, info
    assert "flood off" in info, info
    assert f"pref {PREF} bpf" in _filters(lab, f1.ingress)
    assert tc.isolation(_filters(lab, f1.ingress)) == tc.CHAINED
    lab.udp_echo(lab.hosts["net/b"], PORT)
    client = lab.udp_client(lab.hosts["net/a"])
    f1.seen()
    for _ in range(5):
        assert echo(client, ("10.0.0.2", PORT))
    assert all(not c for c in f1.seen().values())  # nothing reached the function
    plane.apply(ChainState())
    info = run(["bridge", "-n", lab.switch, "-d", "link", "show", "dev", f1.ingress]).stdout
    assert "learning on" in info, info
    assert f"pref {PREF} bpf" not in _filters(lab, f1.ingress)
    assert tc.isolation(_filters(lab, f1.ingress)) is None
    assert "bpf" not in run(["tc", "-n", lab.switch, "filter", "show", "dev", f1.ingress,
                             "egress"]).stdout  # fmt: skip
    client.close()


def test_a_program_removed_by_hand_is_noticed_and_put_back(lab: LinuxChainLab) -> None:
    f1 = lab.function("f1")
    plane = lab.plane()
    state = _state(lab, [f1])
    plane.apply(state)
    assert plane.intact()
    a = lab.hosts["net/a"].device
    run(["tc", "-n", lab.switch, "qdisc", "del", "dev", a, "clsact"])  # another tool's doing
    assert not plane.intact()
    assert plane.apply(state) > 0  # started over: maps rewritten, the program re-attached
    assert plane.intact()
    assert f"pref {PREF} bpf" in _filters(lab, a)
    lab.udp_echo(lab.hosts["net/b"], PORT)
    client = lab.udp_client(lab.hosts["net/a"])
    assert echo(client, ("10.0.0.2", PORT))
    assert f1.seen()["in"][(client.getsockname()[1], PORT)] >= 1
    client.close()


def test_a_bridge_that_does_not_exist_has_nothing_to_steer(lab: LinuxChainLab) -> None:
    """A network whose bridge (or namespace) is gone is no error at start: no ports, no
    chain there, and the state still checks and applies elsewhere."""
    f1 = lab.function("f1")
    state = _state(lab, [f1])
    for plane in (LinuxChains(lab.switch, "nosuchbr"), LinuxChains("fe-no-such-ns", "br")):
        assert plane.ofports() == {}
        plane.check(state)
        assert plane.apply(state) == 0
        assert plane.plan is not None
        assert plane.plan.ports == {}


def test_restart_adopts_what_the_last_daemon_left(lab: LinuxChainLab) -> None:
    """A new adapter (a restarted daemon) on a bridge an earlier one chained: the chain keeps
    flowing meanwhile (the kernel holds the program), the same flow lands on the same member
    (the same hash over the same members), a port the new state no longer uses loses the old
    program, and a second apply writes nothing."""
    f1, f2, f3 = lab.function("f1"), lab.function("f2"), lab.function("f3")
    first = lab.plane()
    state = _state(lab, [f1, f2])
    first.apply(_state(lab, [f1, f2, f3]))
    lab.udp_echo(lab.hosts["net/b"], PORT)
    client = lab.udp_client(lab.hosts["net/a"])
    assert echo(client, ("10.0.0.2", PORT))
    owner = owners([f1, f2, f3], PORT)[0][client.getsockname()[1]]
    first.close()  # the daemon is gone: the programs stay
    assert echo(client, ("10.0.0.2", PORT))
    restarted = lab.plane()
    full = _state(lab, [f1, f2, f3])
    restarted.apply(full)
    assert echo(client, ("10.0.0.2", PORT))
    assert owners([f1, f2, f3], PORT)[0][client.getsockname()[1]] == owner
    assert restarted.apply(full) == 0  # nothing to do the second time
    # Another restart with f3's pair gone from the state: f3's legs lose the program.
    restarted.close()
    again = lab.plane()
    again.apply(state)
    assert f"pref {PREF} bpf" not in _filters(lab, f3.ingress)
    assert f"handle 0x{int(HANDLE):x}" not in _filters(lab, f3.egress)
    assert tc.isolation(_filters(lab, f3.ingress)) == tc.PLUGGED  # plugged isolated: stays so
    assert echo(client, ("10.0.0.2", PORT))
    client.close()


def test_a_member_that_dies_is_skipped_at_its_next_packet(lab: LinuxChainLab) -> None:
    """A function instance dies (its legs vanish) and nobody re-applies: the program finds the
    pinned member's legs gone at the flow's next packet and picks a live sibling (a closed
    chain whose last member died drops, an open one skips), before any poll notices."""
    f1, f2 = lab.function("f1"), lab.function("f2")
    plane = lab.plane()
    plane.apply(_state(lab, [f1, f2]))
    lab.udp_echo(lab.hosts["net/b"], PORT)
    clients = [lab.udp_client(lab.hosts["net/a"]) for _ in range(12)]
    for c in clients:
        assert echo(c, ("10.0.0.2", PORT))
    fwd, _ = owners([f1, f2], PORT)
    assert set(fwd.values()) == {"f1", "f2"}
    lab.unplug(f1)  # no apply: the data plane finds out alone
    for c in clients:
        assert echo(c, ("10.0.0.2", PORT))
    after, after_rev = owners([f2], PORT)
    assert set(after) == {c.getsockname()[1] for c in clients} == set(after_rev)
    lab.unplug(f2)
    assert not echo(clients[0], ("10.0.0.2", PORT), timeout=1.0)  # closed: dropped
    assert plane.stats()["all_members_dead"] >= 1
    for c in clients:
        c.close()


def test_one_armed_function(lab: LinuxChainLab) -> None:
    """A one-armed function (ingress == egress): the direction comes from the 5-tuple."""
    f1 = lab.function("f1")
    run(["ip", "-n", f1.netns, "link", "set", "out", "nomaster"])
    run(["ip", "-n", f1.netns, "link", "set", "in", "type", "bridge_slave", "hairpin", "on"])
    base = _state(lab, [f1])
    state = replace(base, port_pairs={"f1": PortPair("f1", f1.ingress, f1.ingress)})
    lab.plane().apply(state)
    lab.udp_echo(lab.hosts["net/b"], PORT)
    client = lab.udp_client(lab.hosts["net/a"])
    sport = client.getsockname()[1]
    for _ in range(3):
        assert echo(client, ("10.0.0.2", PORT))
    seen = f1.seen()["in"]
    assert seen[(sport, PORT)] >= 3
    assert seen[(PORT, sport)] >= 3
    client.close()


@dataclass
class Stream:
    """A sequence-numbered stream from host A to B's :data:`PORT` (``udp_stream``, a process
    of its own) and what B received, in arrival order (a thread of the test)."""

    sender: Any
    received: list[int] = field(default_factory=list)
    sent: int = 0
    mean: int = 0

    def sending(self) -> bool:
        return bool(self.sender.poll() is None)


@contextlib.contextmanager
def _stream(lab: LinuxChainLab, count: int, sport: int, rate: int = 10000) -> Iterator[Stream]:
    """Stream ``count`` datagrams at ``rate``/s while the body runs; on a normal exit, wait for
    the sender's end and its figures (``sent``, ``mean``), then for B to have them all (5 s)."""
    a, b = lab.hosts["net/a"], lab.hosts["net/b"]
    server = lab.udp_server(b, PORT)
    size_buffers(server, receive=16 << 20)
    server.settimeout(2.0)
    done = threading.Event()
    stream = Stream(udp_stream.start(a.netns, "10.0.0.2", PORT, rate, count, sport=sport))

    def receive() -> None:
        while not done.is_set():
            try:
                stream.received.append(struct.unpack("!Q", server.recv(64)[:8])[0])
            except OSError:
                continue

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        yield stream
        out, _ = stream.sender.communicate(timeout=30)
        stream.sent, stream.mean = (int(x) for x in out.split())
    finally:
        if stream.sending():
            stream.sender.kill()
        wait_until(lambda: len(stream.received) >= count, timeout=5)
        done.set()
        thread.join(timeout=5)


def test_changes_under_10000_datagrams_per_second_lose_and_reorder_nothing(
    lab: LinuxChainLab,
) -> None:
    """Make-before-break at the issue's rate: 30,000 sequence-numbered datagrams at
    10,000/s (a sender process of its own) through a chain while its group gains a member,
    the chain is replaced (another failure policy and a second group: every rule rewritten)
    and the second group leaves it again. B receives every datagram once, in order, and the
    flow stays on its member; a new flow afterwards takes the new path at once. (A member
    that *dies* loses what was inside it; its flows' next packets go to a sibling at once:
    ``test_a_member_that_dies_is_skipped_at_its_next_packet``.)"""
    f1, f2, f3 = lab.function("f1"), lab.function("f2"), lab.function("f3")
    a, b = lab.hosts["net/a"], lab.hosts["net/b"]
    plane = lab.plane()
    one = _state(lab, [f1])
    pairs = {f.name: PortPair(f.name, f.ingress, f.egress) for f in (f1, f2, f3)}
    base = replace(one, port_pairs=pairs)
    plane.apply(base)
    count, sport = 30000, 40123
    namespaces = [lab.switch, a.netns, b.netns, f1.netns, f2.netns, f3.netns]
    drops, program = drop_counters(namespaces), plane.stats()
    with _stream(lab, count, sport) as stream:
        received = stream.received
        assert wait_until(lambda: len(received) > 5000, timeout=20)
        both = replace(base, groups={"g": PortPairGroup("g", ("f1", "f2"))})
        marks = [len(received)]
        plane.apply(both)  # a member joins
        assert wait_until(lambda: len(received) > 12000, timeout=20)
        two = replace(
            both,
            groups={**both.groups, "h": PortPairGroup("h", ("f3",))},
            chains={
                "ch": replace(both.chains["ch"], port_pair_groups=("g", "h"), failure_policy="open")
            },
        )
        marks.append(len(received))
        plane.apply(two)  # every rule rewritten, a second hop
        assert wait_until(lambda: len(received) > 20000, timeout=20)
        marks.append(len(received))
        plane.apply(both)  # the second hop leaves (f3's packets in flight drain back)
    assert stream.sent == count
    assert stream.mean > 8000, f"the sender ran at {stream.mean}/s: not the rate this test is about"
    lost = count - len(set(received))
    shot = {  # the program's own drops (a tc drop is in no link's counters)
        name: n - program[name]
        for name, n in plane.stats().items()
        if (name.endswith("_dropped") or name == "too_many_hops") and n > program[name]
    }
    assert lost == 0, (
        f"{lost} of {count} lost: {_runs(set(range(count)) - set(received))}, changes at "
        f"{marks}; the kernel's drop counters that moved: {moved(drops, drop_counters(namespaces))}"
        f"; the chain program's: {shot}"
    )
    assert received == sorted(received), "reordered"
    assert len(received) == count, "duplicated"
    # The flow stayed on f1: its pin there counted every datagram (the packet sockets in the
    # functions cannot hold 30,000 frames), and f2 saw none of it.
    pinned = {
        (f["sport"], f["dport"]): f["packets"]
        for f in plane.member_flows(f1.ingress)
        if f["position"] == 1 << 8 | 1
    }
    assert pinned[(sport, PORT)] == count
    assert (sport, PORT) not in f2.seen()["in"]
    assert all(f["sport"] != sport for f in plane.member_flows(f2.ingress))
    # New flows take the new path at once: through g to B, not through f3 any more.
    for fn in (f1, f2, f3):
        fn.seen()  # what the stream left in the packet sockets (full: f1's dropped the rest)
    lab.udp_echo(b, PORT + 1)
    fresh = [lab.udp_client(a) for _ in range(8)]
    for c in fresh:
        assert echo(c, ("10.0.0.2", PORT + 1))
    fwd, _ = owners([f1, f2], PORT + 1)
    assert {c.getsockname()[1] for c in fresh} == set(fwd)
    assert not f3.seen()["in"]
    for c in fresh:
        c.close()


def test_entries_rewritten_under_traffic_are_never_read_half_replaced(
    lab: LinuxChainLab,
) -> None:
    """The program reads a port's and a group's map entry while the adapter replaces them:
    a reader sees the old entry or the new, never another key's. (Preallocated hash maps broke
    that: a replaced element is recycled by the next replacement at once, which a CI run met
    as one datagram taken to a hop not yet steering; ``tests/unit/test_bpf_maps.py`` holds
    every map to the rule, since the recycling window is too narrow for a test to hit at
    will.) Through a chain A -> f1 -> f3 -> B, 20,000 datagrams at 10,000/s while the chain
    is rewritten as fast as the adapter can (hundreds of times): its failure policy (both
    groups' entries) and its classifier's port range (every port's rules) in turn. Every
    datagram arrives once and in order, and each crossed f1 then f3: f1's pin on the first
    hop and f3's on the second counted all of them, and neither function was ever picked on
    the other's hop."""
    f1, f3 = lab.function("f1"), lab.function("f3")
    plane = lab.plane()
    one = _state(lab, [f1])
    hops = replace(
        one,
        port_pairs={**one.port_pairs, "f3": PortPair("f3", f3.ingress, f3.egress)},
        groups={**one.groups, "h": PortPairGroup("h", ("f3",))},
        chains={"ch": replace(one.chains["ch"], port_pair_groups=("g", "h"))},
    )
    wider = group_state(lab, [f1], port=PORT, ports=11).classifiers
    states = [
        hops,
        replace(hops, chains={"ch": replace(hops.chains["ch"], failure_policy="open")}),
        replace(hops, classifiers=wider),
        replace(
            hops,
            classifiers=wider,
            chains={"ch": replace(hops.chains["ch"], failure_policy="open")},
        ),
    ]
    plane.apply(states[0])
    count, sport = 20000, 40124
    rewrites = 0
    with _stream(lab, count, sport) as stream:
        received = stream.received
        assert wait_until(lambda: len(received) > 1000, timeout=20)
        while stream.sending():
            rewrites += 1
            plane.apply(states[rewrites % len(states)])
    assert stream.sent == count
    assert rewrites >= 200, f"only {rewrites} rewrites: not the race this test is about"
    lost = count - len(set(received))
    assert lost == 0, f"{lost} of {count} lost: {_runs(set(range(count)) - set(received))}"
    assert received == sorted(received), "reordered"
    assert len(received) == count, "duplicated"
    first, second = 1 << 8 | 1, 1 << 8 | 2
    pins = {
        (fn.name, f["position"]): f["packets"]
        for fn in (f1, f3)
        for f in plane.member_flows(fn.ingress)
        if (f["sport"], f["dport"]) == (sport, PORT)
    }
    assert pins == {("f1", first): count, ("f3", second): count}, f"{rewrites} rewrites"


@pytest.mark.parametrize("made_first", ["f1", "f3"])
def test_ports_switch_where_packets_come_back_before_where_they_are_sent_from(
    lab: LinuxChainLab, monkeypatch: pytest.MonkeyPatch, made_first: str
) -> None:
    """The adapter switches port entries one at a time, and each write is slowed here to
    5 ms, so a packet meets ports on both sides of a switch: a chain gains a second hop (f3)
    and loses it again under 2,000 datagrams/s. None is lost. Switched in ifindex order (as
    before ``.tcorder``), with f1 made first, f1's return leg steered into f3 while f3's
    return leg still dropped what no rule took (one of 30,000 datagrams lost at 10,000/s in
    CI, dozens here); with f3 made first, the switch back turned f3's return leg away before
    f1's stopped sending it packets."""
    made = {name: lab.function(name) for name in (made_first, *({"f1", "f3"} - {made_first}))}
    f1, f3 = made["f1"], made["f3"]
    plane = lab.plane()
    one = _state(lab, [f1])
    base = replace(one, port_pairs={**one.port_pairs, "f3": PortPair("f3", f3.ingress, f3.egress)})
    hops = replace(
        base,
        groups={**base.groups, "h": PortPairGroup("h", ("f3",))},
        chains={"ch": replace(base.chains["ch"], port_pair_groups=("g", "h"))},
    )
    plane.apply(base)
    write = BpfMap.update

    def slow(self: BpfMap, key: bytes, value: bytes, flags: int = 0) -> None:
        write(self, key, value, flags)
        if len(value) == PORT_VAL.size:  # a port's entry
            time.sleep(0.005)

    monkeypatch.setattr(BpfMap, "update", slow)
    count, sport = 6000, 40125
    with _stream(lab, count, sport, rate=2000) as stream:
        received = stream.received
        assert wait_until(lambda: len(received) > 1000, timeout=20)
        plane.apply(hops)
        assert wait_until(lambda: len(received) > 3000, timeout=20)
        plane.apply(base)
    assert stream.sent == count
    lost = count - len(set(received))
    assert lost == 0, f"{lost} of {count} lost: {_runs(set(range(count)) - set(received))}"
    assert received == sorted(received), "reordered"
    crossed = sum(f["packets"] for f in plane.member_flows(f3.ingress) if f["sport"] == sport)
    assert crossed > 500, "the stream did not cross f3"
