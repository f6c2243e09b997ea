"""The chains' tc program (``chains.bpf.c``) run by the kernel on crafted frames
(``BPF_PROG_TEST_RUN``), its maps written with the compiler's own packing (:mod:`.tcplan`):
the C structs and the Python formats are one layout, and bad frames are counted, never fatal.

A test run hands the program an skb whose device is the namespace's loopback (ifindex 1), so
the tables are written for "port" 1, and a member whose legs are the loopback is alive.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Ether

from fluidedge.chains.linuxbridge import LinuxChains
from fluidedge.chains.tcplan import (
    FWD,
    PIN_KEY,
    PIN_VAL,
    PORT_ISOLATE,
    PORT_VAL,
    Group,
    Match,
    Member,
    Rule,
)
from fluidedge.linux.libbpf import BpfMap, prog_test_run

pytestmark = pytest.mark.root

TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = 0, 2, 7
LO = 1
GONE = 0x7FFFFFF0  # an ifindex no device has
_U32 = struct.Struct("=I")


@pytest.fixture
def plane() -> Iterator[LinuxChains]:
    chains = LinuxChains(None, "none")
    try:
        chains._load()
        yield chains
    finally:
        chains.close()


def _maps(plane: LinuxChains) -> dict[str, BpfMap]:
    return plane._maps


def _port(plane: LinuxChains, rules: list[Rule], *, isolate: bool = False) -> None:
    maps = _maps(plane)
    for i, rule in enumerate(rules):
        maps["rules"].update(_U32.pack(i), rule.pack())
    flags = PORT_ISOLATE if isolate else 0
    maps["ports"].update(_U32.pack(LO), PORT_VAL.pack(0, len(rules), flags, 0))


def _run(plane: LinuxChains, frame: bytes) -> int:
    assert plane._obj is not None
    retval, _ = prog_test_run(plane._obj.prog_fd("chain_ingress"), frame)
    return retval


def _udp(dport: int = 7000, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    return bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=40000, dport=dport) / (b"x" * 10))


MATCH = Match(4, 17, None, ipaddress.ip_network("10.0.0.2/32"), dports=(7000, 7009))


def test_a_rule_delivers_what_it_matches_and_passes_the_rest(plane: LinuxChains) -> None:
    _port(plane, [Rule(MATCH, out=LO)])
    assert _run(plane, _udp()) == TC_ACT_REDIRECT
    assert _run(plane, _udp(7009)) == TC_ACT_REDIRECT
    assert _run(plane, _udp(7010)) == TC_ACT_OK  # outside the range: the bridge's
    assert _run(plane, _udp(dst="10.0.0.3")) == TC_ACT_OK
    tcp = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=7000))
    assert _run(plane, tcp) == TC_ACT_OK  # another protocol
    stats = plane.stats()
    assert stats["steered"] == stats["delivered"] == 2


def test_ipv6_prefixes_and_ports(plane: LinuxChains) -> None:
    match = Match(6, 17, ipaddress.ip_network("fd00::/64"), None, sports=(40000, 40000))
    _port(plane, [Rule(match, out=LO)])
    frame = Ether() / IPv6(src="fd00::1", dst="fd01::2") / UDP(sport=40000, dport=1)
    assert _run(plane, bytes(frame)) == TC_ACT_REDIRECT
    other = Ether() / IPv6(src="fd01::1", dst="fd00::2") / UDP(sport=40000, dport=1)
    assert _run(plane, bytes(other)) == TC_ACT_OK
    assert _run(plane, _udp()) == TC_ACT_OK  # IPv4: another family
    # Extension headers before the transport (hop-by-hop, routing, a first fragment): the
    # ports are found after them; a later fragment has none.
    base = IPv6(src="fd00::1", dst="fd01::2")
    udp = UDP(sport=40000, dport=1) / (b"x" * 16)
    for ext in (
        IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(),
        IPv6ExtHdrDestOpt(),
        IPv6ExtHdrFragment(offset=0, m=1),
    ):
        assert _run(plane, bytes(Ether() / base / ext / udp)) == TC_ACT_REDIRECT, ext
    later = Ether() / base / IPv6ExtHdrFragment(offset=8, nh=17) / (b"y" * 16)
    assert _run(plane, bytes(later)) == TC_ACT_OK
    # Past MAX_EXT extension headers the protocol is not UDP: not this classifier's.
    deep = IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt()
    assert _run(plane, bytes(Ether() / base / deep / IPv6ExtHdrDestOpt() / udp)) == TC_ACT_OK


def test_malformed_frames_are_counted_and_never_steered(plane: LinuxChains) -> None:
    _port(plane, [Rule(MATCH, out=LO)])
    whole = _udp()
    v6 = bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2", nh=17))
    # (A test run needs the whole IPv4/IPv6 header; the program reads it with a bounds check
    # all the same, and a frame cut inside it is counted like these.)
    bad = [
        whole[:14] + bytes([0x42]) + whole[15:],  # IHL 2 (< 5)
        whole[:14] + bytes([0x4F]) + whole[15:],  # IHL 15: the ports lie past the frame
        whole[: 14 + 20 + 2],  # UDP ports cut short
        v6[: 14 + 40] + b"\0",  # IPv6, UDP ports cut short
    ]
    for frame in bad:
        assert _run(plane, frame) == TC_ACT_OK  # a plain port: the bridge's to judge
    assert plane.stats()["malformed"] == len(bad)
    _port(plane, [Rule(MATCH, out=LO)], isolate=True)
    for frame in bad:
        assert _run(plane, frame) == TC_ACT_SHOT  # a function's leg: dropped
    assert _run(plane, bytes(Ether(type=0x0806) / (b"\0" * 28))) == TC_ACT_SHOT  # ARP too
    assert plane.stats()["isolated_dropped"] == len(bad) + 1


def test_a_group_pins_the_flow_with_the_layout_the_adapter_reads(plane: LinuxChains) -> None:
    maps = _maps(plane)
    position = 3 << 8 | 1
    maps["groups"].update(_U32.pack(position), Group(1, 1, (Member(LO, LO),)).pack())
    _port(plane, [Rule(MATCH, position, FWD, (LO, LO))])
    for _ in range(3):
        assert _run(plane, _udp()) == TC_ACT_REDIRECT
    pins = maps["pins"].items()
    assert len(pins) == 1
    key, value = pins[0]
    a, b, pos, pa, pb, family, proto = PIN_KEY.unpack(key)
    assert (ipaddress.ip_address(a[:4]), pa) == (ipaddress.ip_address("10.0.0.1"), 40000)
    assert (ipaddress.ip_address(b[:4]), pb) == (ipaddress.ip_address("10.0.0.2"), 7000)
    assert (pos, family, proto) == (position, 4, 17)
    member, index, _, p0, p1, b0, _ = PIN_VAL.unpack(value)
    assert (member, index, p0, p1) == (LO, 0, 3, 0)
    assert b0 == 3 * len(_udp())
    assert plane.stats()["new_pins"] == 1
    # The reply (the other direction) finds the same pin.
    reply = bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=7000, dport=40000))
    rev = Match(4, 17, ipaddress.ip_network("10.0.0.2/32"), None, sports=(7000, 7009))
    _port(plane, [Rule(rev, position, 2, (LO, LO))])
    assert _run(plane, reply) == TC_ACT_REDIRECT
    _, value = maps["pins"].items()[0]
    assert PIN_VAL.unpack(value)[4] == 1
    assert plane.stats()["new_pins"] == 1


@pytest.mark.parametrize(("open_", "want"), [(False, TC_ACT_SHOT), (True, TC_ACT_REDIRECT)])
def test_members_whose_legs_are_gone_are_dead(plane: LinuxChains, open_: bool, want: int) -> None:
    maps = _maps(plane)
    position = 4 << 8 | 1
    group = Group(1, 1, (Member(GONE, GONE), Member(GONE - 1, LO)), open=open_)
    maps["groups"].update(_U32.pack(position), group.pack())
    _port(plane, [Rule(MATCH, position, FWD, (LO, LO))])
    assert _run(plane, _udp()) == want  # closed: dropped; open: skipped to the end
    stats = plane.stats()
    assert stats["all_members_dead"] == 1
    assert stats["closed_dropped" if not open_ else "delivered"] == 1
    assert maps["pins"].items() == []


def test_a_position_with_no_group_drops(plane: LinuxChains) -> None:
    _port(plane, [Rule(MATCH, 9 << 8 | 1, FWD, (LO, LO))])
    assert _run(plane, _udp()) == TC_ACT_SHOT
    assert plane.stats()["no_group_dropped"] == 1
