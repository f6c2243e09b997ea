"""The OpenFlow renderer: a compiled program -> the flow table of one OVS bridge (pure).

The seed's §6 design, in neutron's table layout (``openvswitch_firewall``): register 5 holds
the port (its OpenFlow port number), register 6 the network's conntrack zone; every stateful
step is ``ct(zone=NXM_NX_REG6[0..15])``, so two networks with the same subnet never share a
connection. One bridge is one network, but the zone still comes from the register, as in the
seed, so the tables would not change if networks shared a bridge.

Tables (numbers as neutron's; see docs/security-groups.md)::

    0   classifier      priority 400, reg13=0: in_port of a filtered port -> reg5, reg6,
                        table 71; of an unfiltered port (port_security off) -> reg5, reg6,
                        table 73; priority 200, delivery of accepted packets: reg13=1 ->
                        output:reg5, reg13=2 -> NORMAL; priority 0: anything else (the
                        bridge's own port, unmanaged ports) -> table 60. A service chain's
                        steering (300) and isolation (250) flows sit between 400 and 200,
                        so the chain steers only what the groups accepted (docs/chains.md)
    60  transient       to a filtered port's MAC -> reg5/reg6 of it, table 81; else NORMAL
    71  base egress     port security (MAC, ARP, IPv4/IPv6 source, ND target, DHCP/RA) per
                        reg5; ARP/ND/DHCP-client accepted statelessly -> 73; IP from an
                        allowed source -> ct(table=72, zone=reg6); the rest dropped
    72  rules egress    invalid / ct_mark=1 drop; replies and related -> 73; a new TCP that is
                        not a bare SYN drops; the port's clauses (new and established) -> 73;
                        established that no clause allows: ct_mark := 1 (cut); rest dropped
    73  accept/ingress  to a filtered port's MAC -> reg5 := that port, table 81; new
                        connections to anywhere else are committed; -> 94
    81  base ingress    ARP, allowed ICMPv6 ND types, DHCP replies -> deliver; untracked IP ->
                        ct(table=82, zone=reg6); tracked (by the sender's egress) -> 82
    82  rules ingress   as 72, the remote being the source; new accepted -> ct(commit),
                        deliver (deliver: reg13 := 1, back to table 0)
    93  dropped         drop
    94  accepted        reg13 := 2, back to table 0

Every flow carries cookie :data:`COOKIE`, and every deletion is limited to it: flows of other
components on the bridge (service chains) are never touched.

Remote groups are conjunctions: dimension 1 is the group's members (``nw_src``/``nw_dst``), 2
the rest of the clause (state, protocol, port masks), so a membership change rewrites only the
member flows of that set, not every clause times member. Port ranges become bitmask matches on
``tp_dst``. A rule removal cuts live connections (the established packet finds no clause and
marks its connection ``ct_mark=1``, then every packet of it drops); the driver also deletes
the conntrack entries the new program no longer allows.

Port ranges on dccp/udplite cannot be matched by OpenFlow (no ``tp_dst`` for them): such a
clause is not rendered, i.e. it allows nothing here, where nftables would allow its ports.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

from fluidedge.core.fields import PROTO_ICMP, PROTO_ICMPV6, IPNetwork
from fluidedge.ovs.flows import Flow
from fluidedge.secgroups.compiler import (
    DHCPV4_CLIENT,
    DHCPV4_SERVER,
    DHCPV6_CLIENT,
    DHCPV6_SERVER,
    ICMPV6_EGRESS_OK,
    ICMPV6_INGRESS_OK,
    ICMPV6_NA,
    ICMPV6_RA,
    ICMPV6_UNSPEC_OK,
    AddressSet,
    Clause,
    FilterProgram,
    PortFilter,
)
from fluidedge.secgroups.model import Direction

T_CLASSIFY = 0
T_TRANSIENT = 60
T_BASE_EGRESS = 71
T_RULES_EGRESS = 72
T_ACCEPT_OR_INGRESS = 73
T_BASE_INGRESS = 81
T_RULES_INGRESS = 82
T_DROPPED = 93
T_ACCEPTED = 94
TABLES = (
    T_CLASSIFY,
    T_TRANSIENT,
    T_BASE_EGRESS,
    T_RULES_EGRESS,
    T_ACCEPT_OR_INGRESS,
    T_BASE_INGRESS,
    T_RULES_INGRESS,
    T_DROPPED,
    T_ACCEPTED,
)
REG_PORT = 5
REG_NET = 6
ZONE = f"zone=NXM_NX_REG{REG_NET}[0..15]"
CT_MARK_CUT = "0x1"
COOKIE = 0x5E5E
# Protocols whose destination port OpenFlow can match (tp_dst).
_OF_PORT_PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp"}

P_CLAUSE = 70
P_CONJ = 69
# Table 0: our classifier sits above a service chain's steering (300) and isolation (250)
# for packets on their way in (reg13 = 0); accepted packets come back with reg13 = 1 (deliver
# to reg5's port) or 2 (NORMAL), meet the chain's steering first and our delivery at 200.
P_SG_CLASSIFY = 400
P_DELIVER = 200
REG_STAGE = 13
STAGE_PORT = 1
STAGE_NORMAL = 2
DELIVER_PORT = f"set_field:{STAGE_PORT}->reg{REG_STAGE},resubmit(,{T_CLASSIFY})"
DELIVER_NORMAL = f"set_field:{STAGE_NORMAL}->reg{REG_STAGE},resubmit(,{T_CLASSIFY})"
ALL_BITS = 0xFFFFFFFFFFFFFFFF


def port_masks(low: int, high: int) -> list[str]:
    """``[low, high]`` as the fewest ``value/mask`` matches (aligned power-of-two blocks)."""
    return list(_port_masks(low, high))


@functools.lru_cache(maxsize=4096)
def _port_masks(low: int, high: int) -> tuple[str, ...]:
    if (low, high) == (1, 65535):
        return ()
    out: list[str] = []
    value = low
    while value <= high:
        size = value & -value if value else 1 << 16
        while value + size - 1 > high:
            size >>= 1
        if size == 1:
            out.append(str(value))
        else:
            out.append(f"0x{value:04x}/0x{(0xFFFF ^ (size - 1)):04x}")
        value += size
    return tuple(out)


def _net(prefix: IPNetwork) -> str:
    if prefix.prefixlen == prefix.max_prefixlen:
        return str(prefix.network_address)
    return str(prefix)


def _ipfield(version: int, side: str) -> str:
    """``nw_src``/``nw_dst`` (IPv4) or ``ipv6_src``/``ipv6_dst``."""
    return f"{'nw' if version == 4 else 'ipv6'}_{side}"


def _dl(ethertype: str) -> str:
    return "ip" if ethertype == "IPv4" else "ipv6"


def _clause_match(clause: Clause) -> list[str] | None:
    """The protocol part of a clause, one match text per port mask (None: not renderable)."""
    v6 = clause.ethertype == "IPv6"
    base = _dl(clause.ethertype)
    proto = clause.protocol
    if proto is None:
        return [base]
    if clause.port_min is not None and clause.port_max is not None:
        name = _OF_PORT_PROTOCOLS.get(proto)
        if name is None:
            return None
        name = f"{name}6" if v6 else name
        masks = port_masks(clause.port_min, clause.port_max)
        return [f"{name},tp_dst={m}" for m in masks] or [name]
    if proto in (PROTO_ICMP, PROTO_ICMPV6) and clause.icmp_type is not None:
        text = f"{'icmp6' if v6 else 'icmp'},icmp_type={clause.icmp_type}"
        if clause.icmp_code is not None:
            text += f",icmp_code={clause.icmp_code}"
        return [text]
    if proto in _OF_PORT_PROTOCOLS:
        return [f"{_OF_PORT_PROTOCOLS[proto]}{'6' if v6 else ''}"]
    if proto == PROTO_ICMP and not v6:
        return ["icmp"]
    if proto == PROTO_ICMPV6 and v6:
        return ["icmp6"]
    return [f"{base},nw_proto={proto}"]


class _Table:
    """Flows under construction: one identity has one action list; conjunction actions of
    one identity (a member or a clause shared by several conjunctions) are merged."""

    def __init__(self) -> None:
        self.flows: dict[tuple[int, int, str], str] = {}
        self.conj: dict[tuple[int, int, str], set[str]] = {}

    def add(self, table: int, priority: int, match: str, actions: str) -> None:
        key = (table, priority, match)
        if actions.startswith("conjunction("):
            if key in self.flows:
                raise ValueError(f"ovs_render: {key} is both conjunctive and not")
            self.conj.setdefault(key, set()).add(actions)
            return
        seen = self.flows.get(key)
        if key in self.conj or (seen is not None and seen != actions):
            raise ValueError(f"ovs_render: two actions for one flow {key}: {actions}")
        self.flows[key] = actions

    def result(self) -> list[Flow]:
        items = list(self.flows.items())
        items += [(key, ",".join(sorted(acts))) for key, acts in self.conj.items()]
        items.sort(key=lambda item: item[0])
        return [Flow(t, p, m, actions) for (t, p, m), actions in items]


def _set_regs(ofport: int, zone: int, table: int) -> str:
    return f"set_field:{ofport}->reg{REG_PORT},set_field:{zone}->reg{REG_NET},resubmit(,{table})"


def _common(t: _Table) -> None:
    t.add(T_CLASSIFY, 0, "", f"resubmit(,{T_TRANSIENT})")
    t.add(T_TRANSIENT, 0, "", f"resubmit(,{T_ACCEPTED})")
    for table in (T_BASE_EGRESS, T_RULES_EGRESS, T_BASE_INGRESS, T_RULES_INGRESS, T_DROPPED):
        t.add(table, 0, "", "drop")
    for dl in ("ip", "ipv6"):
        t.add(
            T_ACCEPT_OR_INGRESS,
            90,
            f"ct_state=+new-est,{dl}",
            f"ct(commit,{ZONE}),resubmit(,{T_ACCEPTED})",
        )
    t.add(T_ACCEPT_OR_INGRESS, 80, "", f"resubmit(,{T_ACCEPTED})")
    # Accepted: back to table 0 with reg13 set (a chain's steering, priority 300, may take
    # it there), else delivered: to the port whose ingress accepted it, or by NORMAL.
    t.add(T_ACCEPTED, 0, "", DELIVER_NORMAL)
    to_port = f"output:NXM_NX_REG{REG_PORT}[0..15]"
    t.add(T_CLASSIFY, P_DELIVER, f"reg{REG_STAGE}={STAGE_PORT}", to_port)
    t.add(T_CLASSIFY, P_DELIVER, f"reg{REG_STAGE}={STAGE_NORMAL}", "NORMAL")


def _egress_security(t: _Table, p: PortFilter, reg: str) -> None:
    """Table 71 for one port: what it may send, before conntrack (IR egress steps 1-5)."""
    accept = f"resubmit(,{T_ACCEPT_OR_INGRESS})"
    drop = f"resubmit(,{T_DROPPED})"
    track = f"ct(table={T_RULES_EGRESS},{ZONE})"
    src4 = [s for s in p.allowed_sources if s.prefix.version == 4]
    src6 = [s for s in p.allowed_sources if s.prefix.version == 6]
    for mac in p.macs():
        # ARP probes (RFC 5227: sender 0.0.0.0) and DHCP discovery from 0.0.0.0.
        t.add(T_BASE_EGRESS, 95, f"{reg},arp,dl_src={mac},arp_spa=0.0.0.0", accept)
        t.add(
            T_BASE_EGRESS,
            95,
            f"{reg},udp,dl_src={mac},nw_src=0.0.0.0,tp_src={DHCPV4_CLIENT},tp_dst={DHCPV4_SERVER}",
            accept,
        )
        for icmp_type in ICMPV6_UNSPEC_OK:
            t.add(
                T_BASE_EGRESS,
                95,
                f"{reg},icmp6,dl_src={mac},ipv6_src=::,icmp_type={icmp_type}",
                accept,
            )
    # ARP: (frame MAC, sender IP) and (sender MAC, sender IP) must both be the port's pairs.
    for a in src4:
        for b in src4:
            if a.prefix.overlaps(b.prefix):
                spa = a.prefix if a.prefix.prefixlen >= b.prefix.prefixlen else b.prefix
                t.add(
                    T_BASE_EGRESS,
                    94,
                    f"{reg},arp,dl_src={a.mac},arp_sha={b.mac},arp_spa={_net(spa)}",
                    accept,
                )
    for s in src4:
        src = f"dl_src={s.mac},nw_src={_net(s.prefix)}"
        if not p.allow_dhcp_server:
            t.add(T_BASE_EGRESS, 70, f"{reg},udp,{src},tp_src={DHCPV4_SERVER}", drop)
        t.add(T_BASE_EGRESS, 65, f"{reg},ip,{src}", track)
    for s in src6:
        src = f"dl_src={s.mac},ipv6_src={_net(s.prefix)}"
        if not p.allow_router_advertisements:
            t.add(T_BASE_EGRESS, 70, f"{reg},icmp6,{src},icmp_type={ICMPV6_RA}", drop)
        if not p.allow_dhcp_server:
            t.add(T_BASE_EGRESS, 70, f"{reg},udp6,{src},tp_src={DHCPV6_SERVER}", drop)
        # Neighbour advertisements: the target must be an address of the sending MAC.
        for target in src6:
            if target.mac == s.mac:
                t.add(
                    T_BASE_EGRESS,
                    75,
                    f"{reg},icmp6,{src},icmp_type={ICMPV6_NA},nd_target={_net(target.prefix)}",
                    f"resubmit(,{T_ACCEPT_OR_INGRESS})",
                )
        t.add(T_BASE_EGRESS, 72, f"{reg},icmp6,{src},icmp_type={ICMPV6_NA}", drop)
        t.add(T_BASE_EGRESS, 65, f"{reg},ipv6,{src}", track)


def _stateful(t: _Table, table: int, reg: str, accept_est: str) -> None:
    """The port's fixed flows of a rules table (72 or 82)."""
    drop = f"resubmit(,{T_DROPPED})"
    t.add(table, 50, f"{reg},ct_state=+inv+trk", drop)
    t.add(table, 50, f"{reg},ct_mark={CT_MARK_CUT}", drop)
    for state in ("+est-rel+rpl", "-new-est+rel-inv"):
        t.add(table, 50, f"{reg},ct_state={state},ct_mark=0", accept_est)
    # A new TCP connection starts with a bare SYN (an ACK without a SYN is no connection).
    for dl in ("tcp", "tcp6"):
        t.add(table, 75, f"{reg},ct_state=+new-est,{dl},tcp_flags=-syn", drop)
        t.add(table, 75, f"{reg},ct_state=+new-est,{dl},tcp_flags=+syn+ack", drop)
        t.add(table, 75, f"{reg},ct_state=+new-est,{dl},tcp_flags=+syn+rst", drop)
        t.add(table, 75, f"{reg},ct_state=+new-est,{dl},tcp_flags=+syn+fin", drop)
    t.add(table, 40, f"{reg},ct_state=-est", drop)
    for dl in ("ip", "ipv6"):
        # Established, but no clause allows it any more: cut it (every later packet drops).
        t.add(
            table,
            40,
            f"{reg},ct_state=+est,{dl}",
            f"ct(commit,{ZONE},exec(set_field:{CT_MARK_CUT}->ct_mark))",
        )


class ConjIds:
    """Conjunction ids that stay with their clause across renders.

    An id depends on the (port, direction, clause, state) it stands for, not on the order of
    rendering, so adding a remote-group rule to one port does not renumber every later port's
    conjunctions (which would turn a one-port change into a bundle rewriting the table). Ids of
    clauses gone from the last render are reused. Keep one per bridge (the renderer does).
    Keys start with the port id: a port rendered alone (:class:`BridgeFlows`) frees its own
    ids only (:meth:`finish_port`).
    """

    def __init__(self) -> None:
        self.ids: dict[tuple[object, ...], int] = {}
        self.used: set[tuple[object, ...]] = set()
        self._taken: set[int] = set()

    def take(self, key: tuple[object, ...]) -> int:
        self.used.add(key)
        found = self.ids.get(key)
        if found is None:
            found = next(i for i in range(1, len(self._taken) + 2) if i not in self._taken)
            self.ids[key] = found
            self._taken.add(found)
        return found

    def start(self) -> None:
        self.used = set()

    def finish(self) -> None:
        """Forget the ids of clauses the last render did not use."""
        self.ids = {k: v for k, v in self.ids.items() if k in self.used}
        self._taken = set(self.ids.values())

    def finish_port(self, port: str) -> None:
        """Forget the ids of ``port``'s clauses its last render did not use."""
        for key in [k for k in self.ids if k[0] == port and k not in self.used]:
            self._taken.discard(self.ids.pop(key))
        self.used = {k for k in self.used if k[0] != port}


def _clauses(
    t: _Table,
    conj: ConjIds,
    p: PortFilter,
    direction: Direction,
    *,
    reg: str,
    sets: Mapping[str, AddressSet],
    accept_new: str,
    accept_est: str,
) -> None:
    table = T_RULES_EGRESS if direction == "egress" else T_RULES_INGRESS
    side = "dst" if direction == "egress" else "src"
    for clause in p.clauses(direction):
        matches = _clause_match(clause)
        if matches is None:
            continue
        version = 4 if clause.ethertype == "IPv4" else 6
        remote = ""
        if clause.remote_prefix is not None:
            remote = f",{_ipfield(version, side)}={_net(clause.remote_prefix)}"
        for state, action in (("+new-est", accept_new), ("+est-rel-rpl", accept_est)):
            if clause.remote_set is None:
                for m in matches:
                    t.add(table, P_CLAUSE, f"{reg},ct_state={state},{m}{remote}", action)
                continue
            members = sets.get(clause.remote_set)
            if members is None or not members.members:
                continue  # an empty group admits nobody
            cid = conj.take((p.port, direction, clause.key(), state))
            for member in members.members:
                t.add(
                    table,
                    P_CONJ,
                    f"{reg},{_dl(clause.ethertype)},{_ipfield(version, side)}={_net(member)}",
                    f"conjunction({cid},1/2)",
                )
            for m in matches:
                t.add(table, P_CONJ, f"{reg},ct_state={state},{m}", f"conjunction({cid},2/2)")
            t.add(table, P_CONJ, f"conj_id={cid},{_dl(clause.ethertype)}", action)


def common_flows() -> list[Flow]:
    """The flows every filtered bridge has, whatever its ports."""
    t = _Table()
    _common(t)
    return t.result()


def port_flows(
    p: PortFilter, ofport: int, sets: Mapping[str, AddressSet], conj: ConjIds
) -> list[Flow]:
    """One port's flows (its classifier, delivery, port-security and clause flows): they
    depend on the port's filter, its OpenFlow number and the members of the sets its clauses
    name, nothing else, so :class:`BridgeFlows` renders a port again only when one of those
    changed."""
    t = _Table()
    reg = f"reg{REG_PORT}={ofport}"
    classify = f"reg{REG_STAGE}=0,in_port={ofport}"
    if not p.port_security:
        t.add(T_CLASSIFY, P_SG_CLASSIFY, classify, _set_regs(ofport, p.zone, T_ACCEPT_OR_INGRESS))
        return t.result()
    t.add(T_CLASSIFY, P_SG_CLASSIFY, classify, _set_regs(ofport, p.zone, T_BASE_EGRESS))
    t.add(T_TRANSIENT, 90, f"dl_dst={p.mac}", _set_regs(ofport, p.zone, T_BASE_INGRESS))
    t.add(
        T_ACCEPT_OR_INGRESS,
        100,
        f"reg{REG_NET}={p.zone},dl_dst={p.mac}",
        f"set_field:{ofport}->reg{REG_PORT},resubmit(,{T_BASE_INGRESS})",
    )
    _egress_security(t, p, reg)
    to_next = f"resubmit(,{T_ACCEPT_OR_INGRESS})"
    _stateful(t, T_RULES_EGRESS, reg, to_next)
    _clauses(t, conj, p, "egress", reg=reg, sets=sets, accept_new=to_next, accept_est=to_next)
    # Ingress (table 81): stateless accepts, then conntrack. Accepted packets are delivered
    # through table 0 again (reg13 = 1), where a service chain may steer them.
    out = DELIVER_PORT
    t.add(T_BASE_INGRESS, 100, f"{reg},arp", out)
    for icmp_type in ICMPV6_INGRESS_OK:
        t.add(T_BASE_INGRESS, 100, f"{reg},icmp6,icmp_type={icmp_type}", out)
    t.add(T_BASE_INGRESS, 95, f"{reg},udp,tp_src={DHCPV4_SERVER},tp_dst={DHCPV4_CLIENT}", out)
    t.add(T_BASE_INGRESS, 95, f"{reg},udp6,tp_src={DHCPV6_SERVER},tp_dst={DHCPV6_CLIENT}", out)
    for dl in ("ip", "ipv6"):
        t.add(
            T_BASE_INGRESS,
            90,
            f"{reg},ct_state=-trk,{dl}",
            f"ct(table={T_RULES_INGRESS},{ZONE})",
        )
        t.add(T_BASE_INGRESS, 80, f"{reg},ct_state=+trk,{dl}", f"resubmit(,{T_RULES_INGRESS})")
    commit = f"ct(commit,{ZONE}),{out}"
    _stateful(t, T_RULES_INGRESS, reg, out)
    _clauses(t, conj, p, "ingress", reg=reg, sets=sets, accept_new=commit, accept_est=out)
    # DHCP client traffic out of the port is accepted statefully (nftables: return).
    for dl, sport, dport in (
        ("udp", DHCPV4_CLIENT, DHCPV4_SERVER),
        ("udp6", DHCPV6_CLIENT, DHCPV6_SERVER),
    ):
        for state in ("+new-est", "+est-rel-rpl"):
            t.add(
                T_RULES_EGRESS,
                P_CLAUSE,
                f"{reg},ct_state={state},{dl},tp_src={sport},tp_dst={dport}",
                to_next,
            )
    # ND and MLD the port may send without conntrack (IR egress step 4).
    for s in p.allowed_sources:
        if s.prefix.version != 6:
            continue
        src = f"dl_src={s.mac},ipv6_src={_net(s.prefix)}"
        for icmp_type in ICMPV6_EGRESS_OK:
            t.add(T_BASE_EGRESS, 95, f"{reg},icmp6,{src},icmp_type={icmp_type}", to_next)
        if p.allow_router_advertisements:
            t.add(T_BASE_EGRESS, 95, f"{reg},icmp6,{src},icmp_type={ICMPV6_RA}", to_next)
    return t.result()


def _merge_ports(common: list[Flow], per_port: Iterable[tuple[str, list[Flow]]]) -> list[Flow]:
    """The table: common flows plus every port's; two ports giving one identity (e.g. one MAC
    on two ports) is an error, as two actions for one flow within a port."""
    owner: dict[tuple[int, int, str], str] = {f.key: "" for f in common}
    out = list(common)
    for port, flows in per_port:
        for f in flows:
            seen = owner.setdefault(f.key, port)
            if seen != port:
                raise ValueError(f"ovs_render: ports {seen or '(common)'} and {port} share {f.key}")
        out += flows
    out.sort()
    return out


def render(
    program: FilterProgram, ofports: Mapping[str, int], conj: ConjIds | None = None
) -> list[Flow]:
    """The whole flow table of a bridge: ``ofports`` maps the devices on it to their OpenFlow
    port numbers; ports of ``program`` on other bridges (devices not in ``ofports``) are left
    out, as are devices of ``ofports`` that ``program`` does not name (they go through the
    classifier's default: unfiltered, but filtered ports' ingress still applies to them)."""
    conj = conj if conj is not None else ConjIds()
    conj.start()
    sets = {s.name: s for s in program.address_sets}
    per_port = [
        (p.port, port_flows(p, ofports[p.device], sets, conj))
        for p in program.ports
        if p.device in ofports
    ]
    conj.finish()
    return _merge_ports(common_flows(), per_port)


def _set_members(p: PortFilter, sets: Mapping[str, AddressSet]) -> tuple[object, ...]:
    found = tuple((name, sets[name].members if name in sets else None) for name in p.set_names())
    return tuple(sorted(found, key=lambda item: str(item[0])))


class BridgeFlows:
    """One bridge's table, rendered incrementally: a port's flows are rendered again only when
    its filter (the compiler hands back the same object for an unchanged port), its OpenFlow
    number or the members of a set it names changed, and :meth:`update` returns the flow-mods
    of the ports that changed only. ``flows()`` is always what :func:`render` would give for
    the same program (the unit tests check it)."""

    def __init__(self) -> None:
        self.conj = ConjIds()
        self.ports: dict[str, tuple[PortFilter, int, tuple[object, ...], list[Flow]]] = {}
        self.owner: dict[tuple[int, int, str], str] = {}
        self.common = common_flows()
        for f in self.common:
            self.owner[f.key] = ""

    def flows(self) -> list[Flow]:
        return _merge_ports(self.common, ((k, v[3]) for k, v in self.ports.items()))

    def update(self, program: FilterProgram, ofports: Mapping[str, int]) -> list[str]:
        """Bring the table to ``program``; the flow-mods (deletions, then additions)."""
        sets = {s.name: s for s in program.address_sets}
        wanted = {p.port: p for p in program.ports if p.device in ofports}
        old_flows: list[Flow] = []
        new_flows: list[Flow] = []
        owner = dict(self.owner)
        staged: dict[str, tuple[PortFilter, int, tuple[object, ...], list[Flow]] | None] = {}
        for port in self.ports.keys() - wanted.keys():
            old_flows += self.ports[port][3]
            staged[port] = None
            self.conj.used = {k for k in self.conj.used if k[0] != port}
            self.conj.finish_port(port)
        for port, p in wanted.items():
            ofport = ofports[p.device]
            members = _set_members(p, sets)
            was = self.ports.get(port)
            if was is not None and (was[0] is p or was[0] == p) and was[1:3] == (ofport, members):
                continue
            self.conj.used = {k for k in self.conj.used if k[0] != port}
            flows = port_flows(p, ofport, sets, self.conj)
            self.conj.finish_port(port)
            if was is not None:
                old_flows += was[3]
            new_flows += flows
            staged[port] = (p, ofport, members, flows)
        for f in old_flows:
            owner.pop(f.key, None)
        for port, entry in staged.items():
            for f in entry[3] if entry is not None else ():
                seen = owner.setdefault(f.key, port)
                if seen != port:
                    raise ValueError(
                        f"ovs_render: ports {seen or '(common)'} and {port} share {f.key}"
                    )
        for port, entry in staged.items():
            if entry is None:
                del self.ports[port]
            else:
                self.ports[port] = entry
        self.owner = owner
        return diff(old_flows, new_flows)


def texts(flows: Iterable[Flow]) -> list[str]:
    return [f.text(COOKIE) for f in flows]


def owned(spec: str = "") -> str:
    """A flow-mod match limited to our cookie: a deletion never touches a flow another
    component (service chains) installed, even one with the same match (no ``spec``: every
    flow of ours)."""
    ours = f"cookie={COOKIE:#x}/{ALL_BITS:#x}"
    return f"{ours},{spec}" if spec else ours


def install_all(flows: Iterable[Flow]) -> list[str]:
    """Flow-mods replacing every flow of ours (and only ours) on a bridge with ``flows``."""
    return [f"delete cookie={COOKIE:#x}/{ALL_BITS:#x}", *(f"add {f.text(COOKIE)}" for f in flows)]


def uninstall() -> list[str]:
    """Flow-mods removing our flows and leaving the bridge a learning switch."""
    return [f"delete cookie={COOKIE:#x}/{ALL_BITS:#x}", "add table=0,priority=0,actions=NORMAL"]


def diff(old: Sequence[Flow], new: Sequence[Flow]) -> list[str]:
    """The flow-mods turning flows ``old`` into ``new``: deletions (strict, limited to our
    cookie), then additions and changed actions (an ``add`` of an existing identity replaces
    its actions)."""
    before = {(f.table, f.priority, f.match): f for f in old}
    mods = []
    seen = set()
    for f in new:
        key = (f.table, f.priority, f.match)
        seen.add(key)
        was = before.get(key)
        if was is None or was.actions != f.actions:
            mods.append(f"add {f.text(COOKIE)}")
    gone = [f"delete_strict {owned(before[k].spec())}" for k in sorted(before.keys() - seen)]
    return gone + mods


def flows_per_port(flows: Sequence[Flow], ofport: int) -> int:
    """How many flows belong to ``ofport``: its reg5 flows, classifier and delivery flows."""
    reg = f"reg{REG_PORT}={ofport}"
    inport = f"in_port={ofport}"
    load = f"set_field:{ofport}->reg{REG_PORT}"

    def mine(flow: Flow) -> bool:
        fields = flow.match.split(",")
        return reg in fields or inport in fields or flow.actions.startswith(load)

    return sum(1 for f in flows if mine(f))
