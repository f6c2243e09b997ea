"""The pure compiler from chain intent to the maps of the Linux-bridge data plane (tc/eBPF).

The same forwarder as :mod:`.compiler` (OpenFlow on ``ovs`` networks), for ``linuxbridge``
networks: a tc program (``chains.bpf.c``) on the ingress of every bridge port a chain
touches reads these tables, before the bridge sees the frame:

- a **port** (by ifindex): its rules in order, and whether it is a function's leg
  (``isolate``: what no rule takes is dropped, so a function never reaches the bridge);
- a **rule**: a classifier (family, protocol, prefixes, port ranges, read as ranges: no
  mask expansion) and what it does: *enter* a chain position in a direction, or *deliver*
  to a port (the chain's end); a routed function's return also re-addresses the frame;
- a **group** (by position ``chain_id << 8 | k``): its live members (ingress and egress
  ifindex, MACs for routed ones), k of n, the failure policy, tap or not.

Where a packet is in a chain is known from the port it comes from and its 5-tuple (a function's
legs serve one position of one chain, :func:`.model.check_state`), as in the OpenFlow design:
the classifier on the source port enters position 1 forward, the reversed classifier on the
destination port enters position n in reverse, a member's egress (forward) or ingress (reverse)
leg enters the next position or delivers. Flow affinity is the program's (a pin per position
and flow, both directions, :data:`PIN_IDLE` 300 s idle): these tables only say who is live.

The C structs and the formats below are one layout: keep them equal (the functional test
``test_tc_program.py`` runs the program on packets built from these bytes).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from fluidedge.chains.errors import ChainConflict
from fluidedge.chains.model import (
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    chain_ports,
    check_state,
)

FWD, REV = 1, 2
PORT_ISOLATE = 1
MAX_RULES = 64  # per port (chains.bpf.c MAX_RULES)
MAX_MEMBERS = 16  # per group (MAX_MEMBERS)
MAX_ALL_RULES = 16384  # the rules array (half of it per generation)
PIN_IDLE = 300

PORT_VAL = struct.Struct("=4I")  # first, count, flags, pad
RULE = struct.Struct("=16I4I4H4B6s2x")
MEMBER = struct.Struct("=2I6s6sB3x")
GROUP_HEAD = struct.Struct("=I4B")
PIN_KEY = struct.Struct("=16s16sI2H2B2x")
PIN_VAL = struct.Struct("=2IQ2Q2Q")  # member, index, last, packets[2], bytes[2]
ST_NAMES = (
    "steered",
    "to_member",
    "delivered",
    "closed_dropped",
    "isolated_dropped",
    "no_group_dropped",
    "new_pins",
    "tap_copies",
    "malformed",
    "too_many_hops",
    "all_members_dead",
)

_FULL = (0, 0xFFFF)


def _mac(text: str | None) -> bytes:
    return bytes(6) if text is None else bytes.fromhex(text.replace(":", ""))


def _words(address: bytes) -> tuple[int, int, int, int]:
    """16 bytes (an IPv4 address padded with zeros) as four native-order words holding the
    network-order bytes, as the program reads ``saddr``/``in6_addr``."""
    padded = address.ljust(16, b"\0")
    a, b, c, d = struct.unpack("=4I", padded)
    return a, b, c, d


@dataclass(frozen=True)
class Match:
    """A classifier as the program tests it (one direction)."""

    family: int
    proto: int
    src: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    dst: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    sports: tuple[int, int] = _FULL
    dports: tuple[int, int] = _FULL

    def fields(self) -> list[int]:
        out: list[int] = []
        for prefix in (self.src, self.dst):
            if prefix is None:
                out += [0] * 8
            else:
                out += _words(prefix.network_address.packed)
                out += _words(prefix.netmask.packed)
        return out


@dataclass(frozen=True)
class Rule:
    """A classifier on a port and what it does: enter ``position`` in ``direction``
    (``deliver``: (forward end, reverse end) ifindexes), or deliver to ``out``; ``mac``: set
    the frame's destination MAC first (a routed function's return)."""

    match: Match
    position: int = 0
    direction: int = FWD
    deliver: tuple[int, int] = (0, 0)
    out: int = 0
    mac: str | None = None

    def pack(self) -> bytes:
        m = self.match
        return RULE.pack(
            *m.fields(),
            self.position,
            self.deliver[0],
            self.deliver[1],
            self.out,
            *m.sports,
            *m.dports,
            m.family,
            m.proto,
            self.direction,
            1 if self.mac else 0,
            _mac(self.mac),
        )


@dataclass(frozen=True)
class Member:
    ingress: int
    egress: int
    in_mac: str | None = None
    out_mac: str | None = None

    @property
    def routed(self) -> bool:
        return self.in_mac is not None

    def pack(self) -> bytes:
        return MEMBER.pack(
            self.ingress, self.egress, _mac(self.in_mac), _mac(self.out_mac), int(self.routed)
        )


@dataclass(frozen=True)
class Group:
    k: int
    n: int
    members: tuple[Member, ...]
    open: bool = False
    tap: bool = False

    def pack(self) -> bytes:
        body = b"".join(m.pack() for m in self.members)
        body = body.ljust(MEMBER.size * MAX_MEMBERS, b"\0")
        return GROUP_HEAD.pack(len(self.members), self.k, self.n, self.open, self.tap) + body


@dataclass(frozen=True)
class PortPlan:
    rules: tuple[Rule, ...] = ()
    isolate: bool = False


@dataclass(frozen=True)
class Plan:
    """What one bridge's program is given: ports by ifindex, groups by position; the
    classifiers left out (a port not on the bridge); the functions' legs (by name)."""

    ports: Mapping[int, PortPlan] = field(default_factory=dict)
    groups: Mapping[int, Group] = field(default_factory=dict)
    inactive: tuple[str, ...] = ()
    function_ports: frozenset[str] = frozenset()


def position_of(chain_id: int, k: int) -> int:
    return chain_id << 8 | k


def matches(c: FlowClassifier, reverse: bool = False) -> Match:
    """The classifier as the program tests it; ``reverse``: the replies' view."""
    src, dst = c.source_ip_prefix, c.destination_ip_prefix
    sports, dports = c.ranges()
    if reverse:
        src, dst, sports, dports = dst, src, dports, sports
    return Match(
        4 if c.ethertype == "IPv4" else 6,
        c.protocol or 0,
        src,
        dst,
        sports or _FULL,
        dports or _FULL,
    )


def _live(pair: PortPair, ifindex: Mapping[str, int], macs: Mapping[str, str]) -> bool:
    ports = pair.ports()
    return all(p in ifindex for p in ports) and (not pair.routed or all(p in macs for p in ports))


class _Ports:
    def __init__(self) -> None:
        self.rules: dict[int, list[Rule]] = {}
        self.isolate: set[int] = set()

    def add(self, port: int, rule: Rule) -> None:
        rules = self.rules.setdefault(port, [])
        for other in rules:
            if other.match == rule.match and other != rule:
                raise ChainConflict(
                    f"two chains steer the same traffic from one port (ifindex {port}): "
                    "their classifiers overlap"
                )
        if rule not in rules:
            rules.append(rule)


def _chain(  # noqa: PLR0917 (one call site, the compiler's state spelled out)
    state: ChainState,
    chain: PortChain,
    ifindex: Mapping[str, int],
    macs: Mapping[str, str],
    ports: _Ports,
    groups: dict[int, Group],
) -> tuple[list[str], set[str]]:
    n = len(chain.port_pair_groups)
    pgroups = [state.groups[g] for g in chain.port_pair_groups]
    members: list[list[PortPair]] = []
    routed = False
    for pg in pgroups:
        pairs = [state.port_pairs[p] for p in pg.port_pairs]
        routed = routed or any(p.routed for p in pairs)
        live = [p for p in pairs if _live(p, ifindex, macs)]
        members.append(sorted(live, key=lambda p: ifindex[p.ingress]))
    inactive: list[str] = []
    classifiers: list[FlowClassifier] = []
    for fid in chain.flow_classifiers:
        c = state.classifiers[fid]
        ends = (c.logical_source_port, c.logical_destination_port)
        if all(p in ifindex for p in ends) and (not routed or all(p in macs for p in ends)):
            classifiers.append(c)
        else:
            inactive.append(fid)
    legs = {port for g in members for pair in g for port in pair.ports()}
    for port in legs:
        ports.isolate.add(ifindex[port])
    for k, g in enumerate(members, start=1):
        if len(g) > MAX_MEMBERS:
            raise ChainConflict(
                f"chain {chain.id}: group {pgroups[k - 1].id} has {len(g)} live members, "
                f"the Linux-bridge data plane takes {MAX_MEMBERS}"
            )
        groups[position_of(chain.chain_id, k)] = Group(
            k,
            n,
            tuple(
                Member(
                    ifindex[p.ingress],
                    ifindex[p.egress],
                    macs[p.ingress] if p.routed else None,
                    macs[p.egress] if p.routed else None,
                )
                for p in g
            ),
            open=chain.failure_policy == "open",
            tap=pgroups[k - 1].tap_enabled,
        )
    first, last = position_of(chain.chain_id, 1), position_of(chain.chain_id, n)
    for c in classifiers:
        src, dst = ifindex[c.logical_source_port], ifindex[c.logical_destination_port]
        deliver = (dst, src)
        fwd, rev = matches(c), matches(c, reverse=True)
        one_armed = any(
            pair.one_armed for g, pg in zip(members, pgroups, strict=True) if not pg.tap_enabled
            for pair in g
        )  # fmt: skip
        if chain.symmetric and one_armed and fwd == rev:
            raise ChainConflict(
                f"chain {chain.id}: classifier {c.id} looks the same in both directions, "
                "which a one-armed function's port cannot tell apart"
            )
        ports.add(src, Rule(fwd, first, FWD, deliver))
        if chain.symmetric:
            ports.add(dst, Rule(rev, last, REV, deliver))
        for k, g in enumerate(members, start=1):
            if pgroups[k - 1].tap_enabled:
                continue  # a tap's copies never come back: its legs only drop
            for pair in g:
                to_dst = macs[c.logical_destination_port] if pair.routed else None
                to_src = macs[c.logical_source_port] if pair.routed else None
                if k < n:
                    nxt = Rule(fwd, position_of(chain.chain_id, k + 1), FWD, deliver, mac=to_dst)
                else:
                    nxt = Rule(fwd, out=dst, mac=to_dst)
                ports.add(ifindex[pair.egress], nxt)
                if chain.symmetric:
                    if k > 1:
                        prev = Rule(
                            rev, position_of(chain.chain_id, k - 1), REV, deliver, mac=to_src
                        )
                    else:
                        prev = Rule(rev, out=src, mac=to_src)
                    ports.add(ifindex[pair.ingress], prev)
    return inactive, legs


def compile_plan(
    state: ChainState, ifindex: Mapping[str, int], macs: Mapping[str, str] | None = None
) -> Plan:
    """The program's tables for the bridge whose ports are ``ifindex`` (name -> ifindex);
    ``macs``: the MAC behind each port, which routed functions need. Pure.

    As :func:`.compiler.compile_chain`: a classifier whose ends are not on the bridge is left
    out (``inactive``), a member whose legs are not both there is dead and left out of its
    group; the legs of declared pairs no chain here uses are isolated too."""
    check_state(state)
    macs = macs or {}
    ports = _Ports()
    groups: dict[int, Group] = {}
    inactive: list[str] = []
    legs: set[str] = set()
    for chain in sorted(state.chains.values(), key=lambda c: c.chain_id):
        if not chain_ports(state, chain) & set(ifindex):
            continue
        gone, used = _chain(state, chain, ifindex, macs, ports, groups)
        inactive += gone
        legs |= used
    idle = {port for p in state.port_pairs.values() for port in p.ports()} & set(ifindex)
    for port in idle - legs:
        ports.isolate.add(ifindex[port])
    legs |= idle
    plans: dict[int, PortPlan] = {}
    for index in sorted(set(ports.rules) | ports.isolate):
        rules = tuple(ports.rules.get(index, ()))
        if len(rules) > MAX_RULES:
            raise ChainConflict(
                f"port ifindex {index}: {len(rules)} chain rules, the Linux-bridge data plane "
                f"takes {MAX_RULES} per port"
            )
        plans[index] = PortPlan(rules, index in ports.isolate)
    if sum(len(p.rules) for p in plans.values()) > MAX_ALL_RULES // 2:
        raise ChainConflict(f"more than {MAX_ALL_RULES // 2} chain rules on one bridge")
    return Plan(plans, groups, tuple(inactive), frozenset(legs))
