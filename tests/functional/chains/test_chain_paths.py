"""Service function chains on both data planes, real packets: ``ovs`` (a real ovs-vswitchd,
userspace datapath, OpenFlow) and ``linuxbridge`` (a Linux bridge, the tc/eBPF program).

Host A sends to host B; the chain's classifier steers A's UDP to B through a group of
transparent functions (namespaces bridging ``in`` to ``out``), and B's replies back through the
same function. What each function saw is read from packet sockets inside it. The scenarios
that hold for any driver take ``lab`` (both drivers); the OpenFlow-only ones (the table a
restart reconciles, a ~1,000/s stream through changes) take ``chain_lab``; the tc/eBPF-only
ones are in ``test_linux_chains.py``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fluidedge.chains.compiler import T_PIN
from fluidedge.chains.linuxbridge import LinuxChains
from fluidedge.chains.model import (
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
)
from fluidedge.chains.ovs import OvsChains
from fluidedge.linux.proc import run
from fluidedge.ovs.ofctl import Ofctl
from tests.fixtures.wait import wait_until

from .chain_lab import ChainLab, Function, LinuxChainLab, echo, group_state, owners

pytestmark = pytest.mark.root

PORT = 7000


@pytest.fixture(params=["ovs", "linuxbridge"])
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ChainLab]:
    """A chain lab on either driver."""
    made = ChainLab(tmp_path) if request.param == "ovs" else LinuxChainLab(tmp_path)
    try:
        yield made
    finally:
        made.close()


def _state(
    lab: ChainLab, fns: list[Function], *, policy: str = "closed", protocol: int = 17
) -> ChainState:
    return group_state(lab, fns, policy=policy, protocol=protocol, port=PORT)


def _hosts(lab: ChainLab) -> None:
    lab.host("a", "net", "02:00:00:00:0a:01", "10.0.0.1/24")
    lab.host("b", "net", "02:00:00:00:0a:02", "10.0.0.2/24")


def test_traffic_and_replies_traverse_the_function(lab: ChainLab) -> None:
    _hosts(lab)
    f1 = lab.function("f1")
    chains = lab.plane()
    chains.apply(_state(lab, [f1]))
    lab.udp_echo(lab.hosts["net/b"], PORT)
    client = lab.udp_client(lab.hosts["net/a"])
    sport = client.getsockname()[1]
    for _ in range(5):
        assert echo(client, ("10.0.0.2", PORT))
    seen = f1.seen()
    assert seen["in"][(sport, PORT)] >= 5  # every request passed the function...
    assert seen["out"][(PORT, sport)] >= 5  # ...and every reply, in reverse
    # Traffic the classifier does not take (another port) goes directly.
    lab.udp_echo(lab.hosts["net/b"], PORT + 1)
    assert echo(client, ("10.0.0.2", PORT + 1))
    seen = f1.seen()
    assert (sport, PORT + 1) not in seen["in"]
    assert (PORT + 1, sport) not in seen["out"]
    if isinstance(chains, LinuxChains):  # the program's counters and the flow's pin
        stats = chains.stats()
        assert stats["to_member"] >= 10
        assert stats["delivered"] >= 10
        flows = chains.member_flows(f1.ingress)
        got = {(f["src"], f["sport"], f["dst"], f["dport"]): f["packets"] for f in flows}
        assert got[("10.0.0.1", sport, "10.0.0.2", PORT)] >= 5
        assert got[("10.0.0.2", PORT, "10.0.0.1", sport)] >= 5
    client.close()


def test_tcp_through_the_chain(lab: ChainLab) -> None:
    _hosts(lab)
    f1 = lab.function("f1")
    lab.plane().apply(_state(lab, [f1], protocol=6))
    lab.tcp_server(lab.hosts["net/b"], PORT)
    assert lab.tcp_connects(lab.hosts["net/a"], "10.0.0.2", PORT, 5.0)
    fwd: Counter[tuple[int, int]] = Counter()
    rev: Counter[tuple[int, int]] = Counter()

    def handshake_seen() -> bool:
        seen = f1.seen()
        fwd.update(seen["in"])
        rev.update(seen["out"])
        # SYN and ACK forward, SYN-ACK in reverse (the last ACK may still be on its way).
        return (
            sum(n for (_, d), n in fwd.items() if d == PORT) >= 2
            and sum(n for (s, _), n in rev.items() if s == PORT) >= 1
        )

    assert wait_until(handshake_seen, timeout=10), (fwd, rev)


def test_group_spreads_flows_and_a_removed_member_moves_only_its_flows(
    lab: ChainLab,
) -> None:
    _hosts(lab)
    fns = [lab.function(f"f{i}") for i in range(3)]
    chains = lab.plane()
    chains.apply(_state(lab, fns))
    lab.udp_echo(lab.hosts["net/b"], PORT)
    clients = [lab.udp_client(lab.hosts["net/a"]) for _ in range(30)]
    for _ in range(2):
        for c in clients:
            assert echo(c, ("10.0.0.2", PORT))
    fwd, rev = owners(fns, PORT)
    sports = {c.getsockname()[1] for c in clients}
    assert set(fwd) == sports
    assert rev == fwd
    spread = Counter(fwd.values())
    # 30 flows over 3 members by a hash: each gets some (all on <3 members: p < 1e-5).
    assert set(spread) == {"f0", "f1", "f2"}, spread
    if isinstance(chains, OvsChains):
        pins = Ofctl(lab.daemons, lab.bridge).dump(f"table={T_PIN}")
        assert len(pins) == 60  # both directions of 30 flows learned
    else:
        assert chains.stats()["new_pins"] == 30  # one pin per flow, both directions

    gone = fns[1]
    lab.unplug(gone)
    chains.apply(_state(lab, fns))  # the compiler finds f1's ports gone: dead member
    for c in clients:
        assert echo(c, ("10.0.0.2", PORT))
    after, after_rev = owners([fns[0], fns[2]], PORT)
    assert set(after) == sports
    assert after_rev == after
    for sport, owner in fwd.items():
        if owner != gone.name:
            assert after[sport] == owner  # the others' flows did not move
    moved = {s for s, o in fwd.items() if o == gone.name}
    assert moved
    assert all(after[s] in ("f0", "f2") for s in moved)
    for c in clients:
        c.close()


@pytest.mark.parametrize("policy", ["closed", "open"])
def test_failure_policy_when_the_group_empties(lab: ChainLab, policy: str) -> None:
    _hosts(lab)
    f1 = lab.function("f1")
    chains = lab.plane()
    chains.apply(_state(lab, [f1], policy=policy))
    lab.udp_echo(lab.hosts["net/b"], PORT)
    client = lab.udp_client(lab.hosts["net/a"])
    assert echo(client, ("10.0.0.2", PORT))
    lab.unplug(f1)
    chains.apply(_state(lab, [f1], policy=policy))
    if policy == "open":
        assert echo(client, ("10.0.0.2", PORT))  # the hop is skipped
    else:
        assert not echo(client, ("10.0.0.2", PORT), timeout=1.0)  # dropped
        other = lab.udp_client(lab.hosts["net/a"])
        lab.udp_echo(lab.hosts["net/b"], PORT + 1)
        assert echo(other, ("10.0.0.2", PORT + 1))  # unclassified traffic still flows
        other.close()
    client.close()


def test_restart_reconciles_the_table(chain_lab: ChainLab) -> None:
    _hosts(chain_lab)
    f1, f2 = chain_lab.function("f1"), chain_lab.function("f2")
    ofctl = Ofctl(chain_lab.daemons, chain_lab.bridge)
    first = OvsChains(chain_lab.daemons, chain_lab.bridge)
    state = _state(chain_lab, [f1, f2])
    first.apply(state)
    chain_lab.udp_echo(chain_lab.hosts["net/b"], PORT)
    client = chain_lab.udp_client(chain_lab.hosts["net/a"])
    assert echo(client, ("10.0.0.2", PORT))
    owner = owners([f1, f2], PORT)[0][client.getsockname()[1]]

    def table() -> list[str]:
        return sorted(
            re.sub(r"cookie=0x[0-9a-f]+, ", "", line)
            for line in ofctl.dump()
            if "table=41" not in line
        )

    before = table()
    # Flows of a chain (number 9) and a pin the restarted daemon no longer declares.
    ofctl.bundle(
        [
            "add cookie=0xc4a1000900000003,table=0,priority=300,in_port=1,icmp,actions=drop",
            "add cookie=0xc4a2000009010005,table=41,priority=10,reg7=2305,ip,actions=drop",
        ]
    )
    restarted = OvsChains(chain_lab.daemons, chain_lab.bridge)
    restarted.apply(state)
    assert table() == before  # same flows, nothing stale, no duplicates
    assert echo(client, ("10.0.0.2", PORT))
    assert owners([f1, f2], PORT)[0][client.getsockname()[1]] == owner  # the pin survived
    assert restarted.apply(state) == 0  # nothing to do the second time
    client.close()


def test_one_armed_function(chain_lab: ChainLab) -> None:
    """A one-armed function (ingress == egress): the direction comes from the 5-tuple."""
    _hosts(chain_lab)
    f1 = chain_lab.function("f1")
    # The function's ``out`` leg is left unused: frames come back on ``in`` via hairpin.
    chain_lab.unplug(f1)
    chain_lab.vsctl.add_port(chain_lab.bridge, f1.ingress, {"fluidedge-network": "net"})
    run(["ip", "-n", f1.netns, "link", "set", "out", "nomaster"])
    run(["ip", "-n", f1.netns, "link", "set", "in", "type", "bridge_slave", "hairpin", "on"])
    state = _state(chain_lab, [f1])
    pair = PortPair("f1", f1.ingress, f1.ingress)
    state = ChainState({"f1": pair}, state.groups, state.classifiers, state.chains)
    OvsChains(chain_lab.daemons, chain_lab.bridge).apply(state)
    chain_lab.udp_echo(chain_lab.hosts["net/b"], PORT)
    client = chain_lab.udp_client(chain_lab.hosts["net/a"])
    sport = client.getsockname()[1]
    for _ in range(3):
        assert echo(client, ("10.0.0.2", PORT))
    seen = f1.seen()["in"]
    assert seen[(sport, PORT)] >= 3
    assert seen[(PORT, sport)] >= 3
    client.close()


def test_ipv6_chain(lab: ChainLab) -> None:
    a = lab.host("a", "net", "02:00:00:00:0a:01", "fd00::1/64")
    b = lab.host("b", "net", "02:00:00:00:0a:02", "fd00::2/64")
    f1 = lab.function("f1")
    state = ChainState(
        port_pairs={"f1": PortPair("f1", f1.ingress, f1.egress)},
        groups={"g": PortPairGroup("g", ("f1",))},
        classifiers={
            "c": FlowClassifier(
                "c",
                a.device,
                b.device,
                ethertype="IPv6",
                protocol=17,
                source_ip_prefix=ipaddress.ip_network("fd00::/64"),
            )
        },
        chains={"ch": PortChain("ch", 1, ("g",), ("c",))},
    )
    lab.plane().apply(state)
    server = lab.udp_server(b, PORT, socket.AF_INET6)
    assert lab.udp_reaches(a, server, "fd00::2", PORT, 5.0)
    frames = 0
    while True:
        try:
            frame, addr = f1.sockets["in"].recvfrom(2048)
        except BlockingIOError:
            break
        if addr[2] != 4 and frame[12:14] == b"\x86\xdd" and frame[20] == 17:
            frames += 1
    assert frames >= 1


def test_changes_under_a_stream_lose_and_reorder_nothing(chain_lab: ChainLab) -> None:
    """Make-before-break: sequence-numbered UDP (~1,000/s) flows through a chain while its
    group gains a member, the chain is replaced (another failure policy: a new version of every
    flow) and a new flow starts. The existing flow loses nothing, is never reordered and stays
    on its instance; the replies keep coming back."""
    _hosts(chain_lab)
    f1, f2 = chain_lab.function("f1"), chain_lab.function("f2")
    plane = OvsChains(chain_lab.daemons, chain_lab.bridge)
    pairs = {f.name: PortPair(f.name, f.ingress, f.egress) for f in (f1, f2)}
    base = _state(chain_lab, [f1])
    state = ChainState(pairs, base.groups, base.classifiers, base.chains)
    plane.apply(state)
    chain_lab.udp_echo(chain_lab.hosts["net/b"], PORT)
    client = chain_lab.udp_client(chain_lab.hosts["net/a"])
    assert echo(client, ("10.0.0.2", PORT))
    f1.seen()
    received: list[int] = []
    sent = [0]
    stop = threading.Event()

    def stream() -> None:
        client.settimeout(0.0)
        while not stop.is_set():
            client.sendto(struct.pack("!Q", sent[0]), ("10.0.0.2", PORT))
            sent[0] += 1
            time.sleep(0.001)
            with contextlib.suppress(OSError):
                while True:
                    received.append(struct.unpack("!Q", client.recv(64)[:8])[0])

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        wait_until(lambda: len(received) > 200, timeout=10)
        both = ChainState(pairs, {"g": PortPairGroup("g", ("f1", "f2"))}, state.classifiers,
                          state.chains)  # fmt: skip
        plane.apply(both)  # a member joins
        wait_until(lambda: len(received) > 600, timeout=10)
        chain = replace(state.chains["ch"], failure_policy="open")
        plane.apply(replace(both, chains={"ch": chain}))  # every flow in a new version
        wait_until(lambda: len(received) > 1000, timeout=10)
    finally:
        stop.set()
        thread.join()
    client.settimeout(1.0)
    with contextlib.suppress(OSError):
        while True:  # the last echoes in flight
            received.append(struct.unpack("!Q", client.recv(64)[:8])[0])
    assert received == sorted(received), "reordered"
    assert len(received) == len(set(received)) == sent[0], (len(received), sent[0])
    sport = client.getsockname()[1]
    assert (sport, PORT) not in f2.seen()["in"]  # the existing flow stayed on f1
    assert f1.seen()["in"][(sport, PORT)] >= 1000
    # A new flow may land on either member now (both are in the group).
    fresh = [chain_lab.udp_client(chain_lab.hosts["net/a"]) for _ in range(16)]
    for c in fresh:
        assert echo(c, ("10.0.0.2", PORT))
    owner_of, _ = owners([f1, f2], PORT)
    assert "f2" in {owner_of[c.getsockname()[1]] for c in fresh}  # 16 flows: p(none on f2) = 2^-16
    for c in [client, *fresh]:
        c.close()


def test_a_tap_group_mirrors_each_packet_once_and_holds_nothing_up(lab: ChainLab) -> None:
    """Chain: f1 (a function) then a tap group (a mirror). The tap gets a copy of each
    request (on its ingress) and reply (on its egress) that crossed f1; B gets each request
    once (the copies the tap's own bridge sends back never reach anyone); with the tap's
    ports gone, its group is skipped although the chain is closed."""
    _hosts(lab)
    f1, tap = lab.function("f1"), lab.function("tap")
    state = _state(lab, [f1])
    state = replace(
        state,
        port_pairs={**state.port_pairs, "tap": PortPair("tap", tap.ingress, tap.egress)},
        groups={**state.groups, "t": PortPairGroup("t", ("tap",), tap_enabled=True)},
        chains={"ch": replace(state.chains["ch"], port_pair_groups=("g", "t"))},
    )
    chains = lab.plane()
    chains.apply(state)
    server = lab.udp_server(lab.hosts["net/b"], PORT)
    server.settimeout(0.2)
    got: Counter[bytes] = Counter()
    stop = threading.Event()

    def serve() -> None:  # an echo server counting each datagram it got
        while not stop.is_set():
            try:
                data, peer = server.recvfrom(64)
            except OSError:
                continue
            got[data] += 1
            server.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = lab.udp_client(lab.hosts["net/a"])
    sport = client.getsockname()[1]
    try:
        for _ in range(20):
            assert echo(client, ("10.0.0.2", PORT))
        seen_f1, seen_tap = f1.seen(), tap.seen()
        requests = sum(got.values())
        assert requests >= 20
        # Each request B got crossed f1 once and was copied to the tap once; each reply too.
        assert seen_f1["in"][(sport, PORT)] == requests
        assert seen_tap["in"][(sport, PORT)] == requests
        assert seen_f1["out"][(PORT, sport)] == seen_tap["out"][(PORT, sport)] >= 20
        # Nothing else reached the tap: no traffic of the chain's in the other directions.
        assert (PORT, sport) not in seen_tap["in"]
        assert (sport, PORT) not in seen_tap["out"]
        # What the tap saw, flow by flow, from the pins: the request direction and the
        # replies (on ovs all but the first request, which learned the pin; its flow
        # counters follow the traffic late, pushed by the revalidators: polled).
        replies = seen_tap["out"][(PORT, sport)]
        first = 1 if isinstance(chains, OvsChains) else 0
        want = {("10.0.0.1", sport, "10.0.0.2", PORT, 17): requests - first,
                ("10.0.0.2", PORT, "10.0.0.1", sport, 17): replies}  # fmt: skip
        if isinstance(chains, LinuxChains):
            assert chains.stats()["tap_copies"] == requests + replies
        last: list[dict[tuple[str, int, str, int, int], int]] = [{}]

        def settled() -> bool:
            last[0] = {(f["src"], f["sport"], f["dst"], f["dport"], f["protocol"]): f["packets"]
                       for f in chains.member_flows(tap.ingress)}  # fmt: skip
            return last[0] == want

        assert wait_until(settled, timeout=20, period=0.2), (last[0], want)
        # The chain does not wait for the tap: with the tap forwarding nothing (its bridge
        # down), traffic still flows, and the tap still gets its copies.
        run(["ip", "-n", tap.netns, "link", "set", "br0", "down"])
        assert echo(client, ("10.0.0.2", PORT))
        assert tap.seen()["in"][(sport, PORT)] >= 1
        # The tap's instance goes: the closed chain skips its group, traffic flows through f1.
        lab.unplug(tap)
        chains.apply(state)
        assert echo(client, ("10.0.0.2", PORT))
        assert f1.seen()["in"][(sport, PORT)] >= 1
    finally:
        stop.set()
        thread.join(timeout=5)
        client.close()
