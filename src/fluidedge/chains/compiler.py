"""The pure compiler from chain intent to the OpenFlow flows of one ``ovs`` network's bridge.

The seed's §4.3.2.2 forwarder without NSH: a function sees the original frame (addresses,
TOS and payload unchanged, no VLAN, no NSH header, no mark). Where a packet is in a chain is
known by the switch alone, from the port it comes from and its 5-tuple: a function's ports
belong to one pair, the pair to one group, the group to one chain (:func:`.model.check_state`),
so a packet coming back from a function's egress port that matches the chain's classifier is
at the next hop; one from its ingress port matching the reversed classifier goes the other way.

Registers (the security groups use reg5/reg6; these do not meet them)::

    reg7   position: chain_id << 8 | k for the chain's k-th group (1-based)
    reg8   direction: 1 forward (source -> destination), 2 reverse (replies)
    reg9   the member a flow is pinned to (its ingress OpenFlow port; 0 = not chosen yet)
    reg10  the member index multipath picked among the group's live members
    reg11  the forward delivery port (the classifier's logical destination)
    reg12  the reverse delivery port (the classifier's logical source)

Tables (numbers clear of the security groups' 0/60/71-73/81/82/93/94)::

    0   classify   priority 300: a classifier on its source port -> enter(first group, fwd);
                   the reversed classifier on its destination port -> enter(last, rev);
                   from a member's egress (fwd) / ingress (rev) -> enter(next) or output to
                   the delivery port; priority 250: anything else from a function port drops
                   (a transparent function's own frames never reach the learning switch)
    41  pins       learned: (position, 5-tuple) -> reg9, both directions of a flow at once
    42  pick       not pinned: multipath(symmetric_l3l4+udp, hrw) over the live members -> 43;
                   pinned -> 44; no live member: failure policy (open: next hop; closed: drop)
    43  map        member index -> reg9 := member, learn both pins, -> 44
    44  out        (position, direction, member) -> output to its ingress (fwd) or egress (rev);
                   a pin naming a member that is gone -> pick again; a tap group's member:
                   output a copy to it, then on to the next hop at once (:func:`_skip`)

Routed (L3) functions: a routed member is entered with ``eth_dst`` set to the MAC of the port
it enters by (its ingress forward, its egress in reverse), and what it sends back that matches
the classifier gets ``eth_dst`` set to the delivery port's MAC before the next hop (a routed
next member sets it again): the function routes between its legs, and its neighbour table
needs no real entry. A routed member whose MACs are unknown is dead; a classifier of a chain
with a routed function whose ports' MACs are unknown is inactive.

Flow affinity: the first packet of a flow (either direction) picks a member by a symmetric hash
of its 5-tuple and *learns* a pin for both directions (idle timeout :data:`PIN_IDLE`), so
every later packet, and every reply, goes to that member whatever happens to the group:
adding a member changes no existing flow, removing one deletes only its pins (cookie
``PIN_COOKIE | position << 16 | member``), and only its flows move to a sibling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fluidedge.chains.errors import ChainConflict
from fluidedge.chains.model import (
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    chain_ports,
    check_state,
)
from fluidedge.core.fields import PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP
from fluidedge.ovs.flows import Flow

T_CLASSIFY = 0
T_PIN = 41
T_PICK = 42
T_MAP = 43
T_OUT = 44
TABLES = (T_CLASSIFY, T_PIN, T_PICK, T_MAP, T_OUT)
P_STEER = 300
P_ISOLATE = 250
FWD, REV = 1, 2
PIN_IDLE = 300
CHAIN_COOKIE = 0xC4A1 << 48
PIN_COOKIE = 0xC4A2 << 48
COOKIE_MASK = 0xFFFF << 48
HASH = "symmetric_l3l4+udp"

_PROTO_NAME = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_SCTP: "sctp"}


@dataclass(frozen=True)
class ChainFlows:
    """What one chain puts on a bridge: its flows and the (position, member) pins it may own."""

    chain: str
    chain_id: int
    flows: tuple[Flow, ...]
    members: frozenset[tuple[int, int]]
    positions: tuple[int, ...]
    inactive: tuple[str, ...] = ()
    function_ports: frozenset[str] = frozenset()


def chain_cookie(chain_id: int, version: int) -> int:
    return CHAIN_COOKIE | chain_id << 32 | (version & 0xFFFFFFFF)


def pin_cookie(position: int, member: int) -> int:
    return PIN_COOKIE | position << 16 | member


def position_of(chain_id: int, k: int) -> int:
    return chain_id << 8 | k


def port_masks(low: int, high: int) -> list[str]:
    """``[low, high]`` as the fewest ``value/mask`` matches (aligned power-of-two blocks)."""
    out: list[str] = []
    value = low
    while value <= high:
        size = value & -value if value else 1 << 16
        while value + size - 1 > high:
            size >>= 1
        out.append(str(value) if size == 1 else f"{value:#06x}/{0xFFFF ^ (size - 1):#06x}")
        value += size
    return out


def _l3(c: FlowClassifier) -> str:
    return "ip" if c.ethertype == "IPv4" else "ipv6"


def classifier_matches(c: FlowClassifier, reverse: bool = False) -> list[str]:
    """The classifier as OpenFlow matches (one per source x destination port mask); with
    ``reverse`` the replies' view (addresses and ports swapped)."""
    v6 = c.ethertype == "IPv6"
    proto = c.protocol
    if proto in _PROTO_NAME:
        base = _PROTO_NAME[proto] + ("6" if v6 else "")
    elif proto == PROTO_ICMP and not v6:
        base = "icmp"
    elif proto == PROTO_ICMPV6 and v6:
        base = "icmp6"
    elif proto is None:
        base = _l3(c)
    else:
        base = f"{_l3(c)},nw_proto={proto}"
    field = "ipv6" if v6 else "nw"
    src, dst = c.source_ip_prefix, c.destination_ip_prefix
    src_ports, dst_ports = c.ranges()
    if reverse:
        src, dst = dst, src
        src_ports, dst_ports = dst_ports, src_ports
    parts = [base]
    for side, prefix in (("src", src), ("dst", dst)):
        if prefix is not None and prefix.prefixlen > 0:
            text = (
                str(prefix.network_address)
                if prefix.prefixlen == prefix.max_prefixlen
                else str(prefix)
            )
            parts.append(f"{field}_{side}={text}")
    head = ",".join(parts)
    out = [head]
    for side, ports in (("tp_src", src_ports), ("tp_dst", dst_ports)):
        if ports is None or (ports[0] <= 1 and ports[1] == 65535):
            continue
        masks = port_masks(*ports)
        out = [f"{m},{side}={mask}" for m in out for mask in masks]
    return out


def _enter(position: int, direction: int, deliver: tuple[int, int]) -> str:
    dst, src = deliver
    return (
        f"set_field:{position}->reg7,set_field:{direction}->reg8,set_field:0->reg9,"
        f"set_field:{dst}->reg11,set_field:{src}->reg12,"
        f"resubmit(,{T_PIN}),resubmit(,{T_PICK})"
    )


def _learn(position: int, member: int, v6: bool, proto: str | None, reverse: bool) -> str:
    """A learn action pinning a flow (``reverse``: its replies) at ``position`` to ``member``."""
    ip_src, ip_dst = (
        ("NXM_NX_IPV6_SRC[]", "NXM_NX_IPV6_DST[]")
        if v6
        else (
            "NXM_OF_IP_SRC[]",
            "NXM_OF_IP_DST[]",
        )
    )
    fields = ["NXM_NX_REG7[]", f"eth_type={'0x86dd' if v6 else '0x800'}"]
    pairs = [(ip_src, ip_dst)]
    if proto is None:
        fields.append("NXM_OF_IP_PROTO[]")
    else:
        number = PROTO_TCP if proto == "TCP" else PROTO_UDP
        fields.append(f"nw_proto={number}")
        pairs.append((f"NXM_OF_{proto}_SRC[]", f"NXM_OF_{proto}_DST[]"))
    for a, b in pairs:
        if reverse:
            fields += [f"{a}={b}", f"{b}={a}"]
        else:
            fields += [a, b]
    priority = 10 if proto is None else 20
    return (
        f"learn(table={T_PIN},idle_timeout={PIN_IDLE},priority={priority},"
        f"cookie={pin_cookie(position, member):#x},{','.join(fields)},"
        f"load:{member:#x}->NXM_NX_REG9[])"
    )


# (match, learn protocol) per family: TCP and UDP pinned by 5-tuple, the rest by addresses.
_VARIANTS: dict[bool, tuple[tuple[str, str | None, int], ...]] = {
    False: (("tcp", "TCP", 30), ("udp", "UDP", 30), ("ip", None, 20)),
    True: (("tcp6", "TCP", 30), ("udp6", "UDP", 30), ("ipv6", None, 20)),
}


class _Flows:
    def __init__(self) -> None:
        self.flows: dict[tuple[int, int, str], str] = {}

    def add(self, table: int, priority: int, match: str, actions: str) -> None:
        key = (table, priority, match)
        seen = self.flows.get(key)
        if seen is not None and seen != actions:
            raise ChainConflict(f"two classifiers of one chain steer one flow differently: {key}")
        self.flows[key] = actions

    def result(self) -> tuple[Flow, ...]:
        return tuple(sorted(Flow(t, p, m, a) for (t, p, m), a in self.flows.items()))


def _live(pair: PortPair, ofports: Mapping[str, int], macs: Mapping[str, str]) -> bool:
    """Both ports on the bridge (and, for a routed function, their MACs known)."""
    ports = pair.ports()
    return all(p in ofports for p in ports) and (not pair.routed or all(p in macs for p in ports))


def compile_chain(
    state: ChainState,
    chain: PortChain,
    ofports: Mapping[str, int],
    macs: Mapping[str, str] | None = None,
) -> ChainFlows:
    """One chain's flows on the bridge whose ports are ``ofports`` (switch port -> number);
    ``macs``: the MAC behind each port (the instance's interface), which routed functions
    need (theirs, and those of the classifiers' ports the chain delivers to).

    A classifier whose source or destination port is not on the bridge is left out (listed in
    ``inactive``); a member whose ports are not both there is dead and left out of its group.
    """
    macs = macs or {}
    t = _Flows()
    groups = [state.groups[g] for g in chain.port_pair_groups]
    taps = [g.tap_enabled for g in groups]
    n = len(groups)
    positions = tuple(position_of(chain.chain_id, k) for k in range(1, n + 1))
    members: list[list[PortPair]] = []
    routed = False
    for group in groups:
        pairs = [state.port_pairs[p] for p in group.port_pairs]
        routed = routed or any(p.routed for p in pairs)
        members.append(
            sorted(
                (p for p in pairs if _live(p, ofports, macs)),
                key=lambda p: ofports[p.ingress],
            )
        )
    inactive: list[str] = []
    classifiers = []
    for fid in chain.flow_classifiers:
        c = state.classifiers[fid]
        ends = (c.logical_source_port, c.logical_destination_port)
        # A chain with a routed function re-addresses packets to their delivery port's MAC.
        if all(p in ofports for p in ends) and (not routed or all(p in macs for p in ends)):
            classifiers.append(c)
        else:
            inactive.append(fid)
    families = sorted({c.ethertype == "IPv6" for c in classifiers})
    # Isolation: a function's ports never reach the learning switch (and the adapter takes
    # them out of its floods, or a function bridging its legs would learn the hosts' MACs
    # from flooded copies on the wrong leg).
    for g in members:
        for pair in g:
            for port in pair.ports():
                t.add(T_CLASSIFY, P_ISOLATE, f"in_port={ofports[port]}", "drop")
    for c in classifiers:
        deliver = (ofports[c.logical_destination_port], ofports[c.logical_source_port])
        fwd = classifier_matches(c)
        rev = classifier_matches(c, reverse=True)
        one_armed = any(
            pair.one_armed for g, tap in zip(members, taps, strict=True) if not tap for pair in g
        )
        if chain.symmetric and one_armed and set(fwd) & set(rev):
            raise ChainConflict(
                f"chain {chain.id}: classifier {c.id} looks the same in both directions, "
                "which a one-armed function's port cannot tell apart"
            )
        src, dst = deliver[1], deliver[0]
        for m in fwd:
            t.add(T_CLASSIFY, P_STEER, f"in_port={src},{m}", _enter(positions[0], FWD, deliver))
        if chain.symmetric:
            for m in rev:
                t.add(
                    T_CLASSIFY, P_STEER, f"in_port={dst},{m}", _enter(positions[-1], REV, deliver)
                )
        for k, g in enumerate(members):
            if taps[k]:
                continue  # a tap's copies never come back: its ports only drop (above)
            nxt = _enter(positions[k + 1], FWD, deliver) if k + 1 < n else f"output:{dst}"
            prev = _enter(positions[k - 1], REV, deliver) if k > 0 else f"output:{src}"
            for pair in g:
                # What a routed function sends is addressed to its own next hop (whatever
                # its neighbour table says): the switch re-addresses it to the delivery
                # port's MAC (a routed next function's entry re-addresses it again).
                out_fwd, out_rev = nxt, prev
                if pair.routed:
                    out_fwd = f"set_field:{macs[c.logical_destination_port]}->eth_dst,{nxt}"
                    out_rev = f"set_field:{macs[c.logical_source_port]}->eth_dst,{prev}"
                for m in fwd:
                    t.add(T_CLASSIFY, P_STEER, f"in_port={ofports[pair.egress]},{m}", out_fwd)
                if chain.symmetric:
                    for m in rev:
                        t.add(T_CLASSIFY, P_STEER, f"in_port={ofports[pair.ingress]},{m}", out_rev)
    live: set[tuple[int, int]] = set()
    if classifiers:
        for k, g in enumerate(members):
            _group(t, chain, positions, k, g, ofports, macs, families, live, tap=taps[k])
    return ChainFlows(
        chain=chain.id,
        chain_id=chain.chain_id,
        flows=t.result(),
        members=frozenset(live),
        positions=positions,
        inactive=tuple(inactive),
        function_ports=frozenset(port for g in members for pair in g for port in pair.ports()),
    )


def _skip(positions: Sequence[int], k: int, direction: int) -> str:
    """Past the chain's k-th group (0-based) in ``direction``: enter the next group (the
    previous one in reverse), or output to the delivery port (reg11 forward, reg12 reverse).
    A fail-open chain's empty group, and a tap after its copy."""
    if direction == FWD:
        if k + 1 < len(positions):
            return (
                f"set_field:{positions[k + 1]}->reg7,set_field:0->reg9,"
                f"resubmit(,{T_PIN}),resubmit(,{T_PICK})"
            )
        return "output:NXM_NX_REG11[0..15]"
    if k > 0:
        return (
            f"set_field:{positions[k - 1]}->reg7,set_field:0->reg9,"
            f"resubmit(,{T_PIN}),resubmit(,{T_PICK})"
        )
    return "output:NXM_NX_REG12[0..15]"


def _group(  # noqa: PLR0917 (one call site, the compiler's state spelled out)
    t: _Flows,
    chain: PortChain,
    positions: Sequence[int],
    k: int,
    g: Sequence[PortPair],
    ofports: Mapping[str, int],
    macs: Mapping[str, str],
    families: Sequence[bool],
    live: set[tuple[int, int]],
    *,
    tap: bool = False,
) -> None:
    """Tables 42-44 of the chain's k-th group (0-based) with live members ``g``; ``tap``: the
    member gets a copy and the packet goes on to the next hop at once (:func:`_skip`)."""
    pos = positions[k]
    if g:
        t.add(
            T_PICK,
            20,
            f"reg7={pos},reg9=0",
            f"multipath({HASH},0,hrw,{len(g)},0,NXM_NX_REG10[0..15]),resubmit(,{T_MAP})",
        )
    else:
        # No live member: the chain's failure policy.
        # No live member: the chain's failure policy (a tap is always skipped).
        for direction in (FWD, REV):
            action = (
                "drop"
                if chain.failure_policy == "closed" and not tap
                else _skip(positions, k, direction)
            )
            t.add(T_PICK, 20, f"reg7={pos},reg8={direction},reg9=0", action)
    t.add(T_PICK, 10, f"reg7={pos}", f"resubmit(,{T_OUT})")
    for index, pair in enumerate(g):
        member = ofports[pair.ingress]
        live.add((pos, member))
        for v6 in families:
            for match, proto, priority in _VARIANTS[v6]:
                learns = ",".join(
                    _learn(pos, member, v6, proto, reverse) for reverse in (False, True)
                )
                t.add(
                    T_MAP,
                    priority,
                    f"reg7={pos},reg10={index},{match}",
                    f"set_field:{member}->reg9,{learns},resubmit(,{T_OUT})",
                )
        egress = ofports[pair.egress]
        # A routed function gets the packet addressed to the MAC of the port it enters by.
        to_in = f"set_field:{macs[pair.ingress]}->eth_dst," if pair.routed else ""
        to_out = f"set_field:{macs[pair.egress]}->eth_dst," if pair.routed else ""
        then_fwd = f",{_skip(positions, k, FWD)}" if tap else ""
        then_rev = f",{_skip(positions, k, REV)}" if tap else ""
        t.add(
            T_OUT,
            20,
            f"reg7={pos},reg8={FWD},reg9={member}",
            f"{to_in}output:{member}{then_fwd}",
        )
        t.add(
            T_OUT,
            20,
            f"reg7={pos},reg8={REV},reg9={member}",
            f"{to_out}output:{egress}{then_rev}",
        )
    # A pin naming a member that is gone (its pins not deleted yet): pick again.
    t.add(T_OUT, 1, f"reg7={pos}", f"set_field:0->reg9,resubmit(,{T_PICK})")


def compile_bridge(
    state: ChainState, ofports: Mapping[str, int], macs: Mapping[str, str] | None = None
) -> dict[str, ChainFlows]:
    """Every chain's flows on one bridge (chains with no port there are left out); ``macs``:
    see :func:`compile_chain`. Pure."""
    check_state(state)
    out: dict[str, ChainFlows] = {}
    seen: dict[tuple[int, int, str], str] = {}
    for chain in sorted(state.chains.values(), key=lambda c: c.chain_id):
        if not chain_ports(state, chain) & set(ofports):
            continue
        compiled = compile_chain(state, chain, ofports, macs)
        for flow in compiled.flows:
            other = seen.get(flow.key)
            if other is not None:
                raise ChainConflict(
                    f"chains {other} and {chain.id} both steer {flow.match} "
                    "(their classifiers overlap on one source port)"
                )
            seen[flow.key] = chain.id
        out[chain.id] = compiled
    # Ports of declared pairs that no chain on this bridge steers yet are isolated too
    # (number 0): a transparent function bridging two legs of one network is a loop
    # until it is.
    used = {port for cf in out.values() for port in cf.function_ports}
    idle = sorted(
        {port for p in state.port_pairs.values() for port in p.ports()} & set(ofports) - used
    )
    if idle:
        out[""] = ChainFlows(
            chain="",
            chain_id=0,
            flows=tuple(
                sorted(Flow(T_CLASSIFY, P_ISOLATE, f"in_port={ofports[p]}", "drop") for p in idle)
            ),
            members=frozenset(),
            positions=(),
            function_ports=frozenset(idle),
        )
    return out
