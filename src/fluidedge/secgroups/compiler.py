"""The pure compiler: ports + groups -> a renderer-neutral filter program (the IR).

No I/O here: the nftables renderer (:mod:`fluidedge.secgroups.nft`) and the OpenFlow renderer
(sgovs) both render the same :class:`FilterProgram`, so both data planes give identical verdicts
by construction, and the compiler is unit-tested on its own.

The IR (stable; version :data:`IR_VERSION`)
===========================================

``FilterProgram``
    ``ports``: one :class:`PortFilter` per port, sorted by port id;
    ``address_sets``: the remote-group address sets the ports' clauses refer to, sorted by name;
    ``zones``: ``(network, zone)`` pairs, sorted (one conntrack zone per network, validated:
    a network has one zone and a zone belongs to one network).

``PortFilter`` (one port, i.e. one bridge/switch port named ``device``)
    ``port_security=False``: the port is not filtered at all (no spoofing checks, no
    conntrack, every clause tuple empty). Otherwise:

    *Egress* (packets the port sends), in this order:

    1. Ethernet source must be one of the MACs in ``allowed_sources``, else drop.
    2. ARP: accept iff (sender MAC, sender IP) matches an ``allowed_sources`` entry (IPv4) and
       the Ethernet source is that same MAC; a gratuitous ARP for someone else's address is
       therefore dropped. Other non-IP ethertypes: drop.
    3. IPv4/IPv6 source must match an ``allowed_sources`` (mac, prefix) entry together with the
       Ethernet source, except the unspecified-address cases every host needs: DHCPv4
       discover/request from ``0.0.0.0`` (udp 68 -> 67) and ICMPv6 from ``::`` of types
       :data:`ICMPV6_UNSPEC_OK` (MLD reports, DAD neighbour solicitations).
    4. ICMPv6 neighbour advertisements (136): the target address must be an IPv6
       ``allowed_sources`` entry of the Ethernet source MAC. Router advertisements (134) are
       dropped unless ``allow_router_advertisements``; other ND/MLD types
       (:data:`ICMPV6_EGRESS_OK`) are accepted without conntrack.
    5. DHCP server replies (udp source port 67 over IPv4, 547 over IPv6) are dropped unless
       ``allow_dhcp_server``; DHCP client requests (udp 68 -> 67, 546 -> 547) are accepted.
    6. conntrack in ``zone``: ``established``/``related`` accept, ``invalid`` drop; a ``new``
       connection is accepted iff one of the ``egress`` clauses matches it (the clause's
       remote is the *destination*), else dropped.

    *Ingress* (packets delivered to the port):

    1. ARP: accept. ICMPv6 types :data:`ICMPV6_INGRESS_OK` (MLD query, RA, NS, NA): accept.
       DHCP replies to the client (udp 67 -> 68, 547 -> 546): accept. Other non-IP: drop.
    2. conntrack in ``zone``: ``established``/``related`` accept, ``invalid`` drop; a ``new``
       connection is accepted iff one of the ``ingress`` clauses matches (the clause's remote
       is the *source*), else dropped.

    A packet between two filtered ports of one network must pass the sender's egress and the
    receiver's ingress; both are one conntrack entry in the network's zone.

``Clause`` (an accept condition for a new connection; all present fields must match)
    ``ethertype`` (``IPv4``/``IPv6``), ``protocol`` (number or ``None`` = any), ``port_min``/
    ``port_max`` (destination port range, ``None`` = any; only for protocols with ports),
    ``icmp_type``/``icmp_code`` (``None`` = any), and at most one remote: ``remote_prefix``
    (``None`` with no ``remote_set`` = any address) or ``remote_set`` (the name of an
    :class:`AddressSet` of the same network and ethertype). ``rules`` lists the
    ``group/rule`` ids the clause comes from (identical clauses of several rules are merged).

``AddressSet``
    ``name`` (``rg_<group with '-' as '_'>_<zone>_<4|6>``, a valid nft set name and unique),
    the ``group``, ``network``, ``zone`` and ``ethertype`` it is for, and ``members``: the
    prefixes of that group's ports *on that network* (fixed IPs as host prefixes and allowed
    address pair prefixes), sorted. Per network, so that overlapping subnets of two networks
    never let one network's member admit the other's traffic. It may be empty.

``GroupMembers``
    for each group that a rule of any known group names as a remote (and the family of that
    rule), per network: the ``group``'s members among these ports, as in an ``AddressSet``,
    whether or not a port here names the group. A renderer whose sets are shared with other
    nodes (OVN) adds them as this node's part; the others ignore it.

``SourceAllow``
    ``(mac, prefix)``: the port may send from ``mac`` with a source address in ``prefix``:
    its fixed IPs with its MAC, its allowed address pairs (the pair's MAC or its own), and the
    IPv6 link-local address derived (EUI-64) from each of those MACs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fluidedge.core.fields import Ethertype, IPNetwork
from fluidedge.secgroups.errors import SecgroupUnprocessable
from fluidedge.secgroups.model import (
    PORT_PROTOCOLS,
    Direction,
    Port,
    Rule,
    SecurityGroup,
    ethertype_of,
)

IR_VERSION = 1

# ICMPv6 types (RFC 4443, 4861, 3810).
ICMPV6_MLD_QUERY = 130
ICMPV6_MLD_REPORT = 131
ICMPV6_MLD_DONE = 132
ICMPV6_RS = 133
ICMPV6_RA = 134
ICMPV6_NS = 135
ICMPV6_NA = 136
ICMPV6_MLD2_REPORT = 143
ICMPV6_INGRESS_OK = (ICMPV6_MLD_QUERY, ICMPV6_RA, ICMPV6_NS, ICMPV6_NA)
ICMPV6_EGRESS_OK = (ICMPV6_MLD_REPORT, ICMPV6_MLD_DONE, ICMPV6_RS, ICMPV6_NS, ICMPV6_MLD2_REPORT)
ICMPV6_UNSPEC_OK = (ICMPV6_MLD_REPORT, ICMPV6_MLD_DONE, ICMPV6_NS, ICMPV6_MLD2_REPORT)
DHCPV4_CLIENT, DHCPV4_SERVER = 68, 67
DHCPV6_CLIENT, DHCPV6_SERVER = 546, 547

_LINK_LOCAL = ipaddress.IPv6Network("fe80::/64")


@dataclass(frozen=True)
class SourceAllow:
    mac: str
    prefix: IPNetwork

    @property
    def ethertype(self) -> Ethertype:
        return ethertype_of(self.prefix)


@dataclass(frozen=True)
class Clause:
    ethertype: Ethertype
    protocol: int | None = None
    port_min: int | None = None
    port_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_prefix: IPNetwork | None = None
    remote_set: str | None = None
    rules: tuple[str, ...] = ()

    def key(self) -> tuple[object, ...]:
        """What the clause matches (``rules`` aside), orderable."""
        return (
            self.ethertype,
            -1 if self.protocol is None else self.protocol,
            -1 if self.port_min is None else self.port_min,
            -1 if self.port_max is None else self.port_max,
            -1 if self.icmp_type is None else self.icmp_type,
            -1 if self.icmp_code is None else self.icmp_code,
            (0, 0, 0)
            if self.remote_prefix is None
            else (
                self.remote_prefix.version,
                int(self.remote_prefix.network_address),
                self.remote_prefix.prefixlen,
            ),
            "" if self.remote_set is None else self.remote_set,
        )


@dataclass(frozen=True)
class AddressSet:
    name: str
    group: str
    network: str
    zone: int
    ethertype: Ethertype
    members: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class GroupMembers:
    group: str
    network: str
    ethertype: Ethertype
    members: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class PortFilter:
    port: str
    device: str
    network: str
    zone: int
    mac: str
    port_security: bool
    allowed_sources: tuple[SourceAllow, ...] = ()
    allow_dhcp_server: bool = False
    allow_router_advertisements: bool = False
    ingress: tuple[Clause, ...] = ()
    egress: tuple[Clause, ...] = ()

    def clauses(self, direction: Direction) -> tuple[Clause, ...]:
        return self.ingress if direction == "ingress" else self.egress

    def macs(self) -> tuple[str, ...]:
        return tuple(sorted({s.mac for s in self.allowed_sources}))

    def set_names(self) -> frozenset[str]:
        return frozenset(c.remote_set for c in self.ingress + self.egress if c.remote_set)


@dataclass(frozen=True)
class FilterProgram:
    ports: tuple[PortFilter, ...]
    address_sets: tuple[AddressSet, ...]
    zones: tuple[tuple[str, int], ...]
    contributions: tuple[GroupMembers, ...] = ()

    def port(self, port_id: str) -> PortFilter | None:
        return next((p for p in self.ports if p.port == port_id), None)

    def address_set(self, name: str) -> AddressSet | None:
        return next((s for s in self.address_sets if s.name == name), None)

    def zone_of(self, network: str) -> int | None:
        return dict(self.zones).get(network)

    def rule_count(self) -> int:
        """Clauses over all ports (a measure of the work a renderer installs)."""
        return sum(len(p.ingress) + len(p.egress) for p in self.ports)


def set_name(group: str, zone: int, ethertype: Ethertype) -> str:
    return f"rg_{group.replace('-', '_')}_{zone}_{4 if ethertype == 'IPv4' else 6}"


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 IPv6 link-local address of a MAC (RFC 4291 appendix A)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    return _LINK_LOCAL[int.from_bytes(bytes(eui), "big")]


def allowed_sources(port: Port) -> tuple[SourceAllow, ...]:
    """The (mac, prefix) pairs a port may send from (fixed IPs, pairs, link-locals)."""
    found: set[SourceAllow] = set()
    for addr in port.fixed_ips:
        found.add(SourceAllow(port.mac, ipaddress.ip_network(addr)))
    for pair in port.allowed_address_pairs:
        found.add(SourceAllow(pair.mac or port.mac, pair.ip_prefix))
    for mac in {port.mac} | {s.mac for s in found}:
        found.add(SourceAllow(mac, ipaddress.ip_network(link_local(mac))))
    return tuple(sorted(found, key=lambda s: (s.mac, s.prefix.version, s.prefix)))


def _zones(ports: Iterable[Port]) -> dict[str, int]:
    zones: dict[str, int] = {}
    owner: dict[int, str] = {}
    for port in ports:
        zone = zones.setdefault(port.network, port.zone)
        if zone != port.zone:
            raise SecgroupUnprocessable(
                f"zone: port {port.id} says network {port.network} is zone {port.zone}, "
                f"another port says {zone}"
            )
        net = owner.setdefault(port.zone, port.network)
        if net != port.network:
            raise SecgroupUnprocessable(
                f"zone: {port.zone} is the zone of networks {net} and {port.network}"
            )
    return zones


def _clause(rule: Rule, origin: str, remote_set: str | None) -> Clause:
    low, high = rule.port_range_min, rule.port_range_max
    if rule.protocol not in PORT_PROTOCOLS or (low, high) == (1, 65535):
        low = high = None
    prefix = rule.remote_ip_prefix
    if prefix is not None and prefix.prefixlen == 0:
        prefix = None
    return Clause(
        ethertype=rule.ethertype,
        protocol=rule.protocol,
        port_min=low,
        port_max=high,
        icmp_type=rule.icmp_type,
        icmp_code=rule.icmp_code,
        remote_prefix=prefix,
        remote_set=remote_set,
        rules=(origin,),
    )


def _merge(clauses: Iterable[Clause]) -> tuple[Clause, ...]:
    merged: dict[tuple[object, ...], Clause] = {}
    for clause in clauses:
        key = clause.key()
        seen = merged.get(key)
        if seen is None:
            merged[key] = clause
        else:
            rules = tuple(sorted(set(seen.rules) | set(clause.rules)))
            merged[key] = Clause(**{**seen.__dict__, "rules": rules})
    return tuple(merged[k] for k in sorted(merged))


SetSpec = tuple[str, str, Ethertype]  # (set name, remote group, ethertype)
Clauses = tuple[tuple[Clause, ...], tuple[Clause, ...], tuple[SetSpec, ...]]


def _port_clauses(
    groups: tuple[str, ...], zone: int, by_group: Mapping[str, SecurityGroup]
) -> Clauses:
    """(ingress, egress) clauses of a port's ``groups`` in ``zone``, and the address sets
    they name. Depends on those groups' rules and the zone only (members go into the sets)."""
    by_direction: dict[Direction, list[Clause]] = {"ingress": [], "egress": []}
    specs: dict[str, SetSpec] = {}
    for group_id in groups:
        sg = by_group[group_id]
        for rule in sg.rules:
            remote = None
            if rule.remote_group is not None:
                if rule.remote_group not in by_group:
                    raise SecgroupUnprocessable(
                        f"remote_group: rule {sg.id}/{rule.id} names unknown group "
                        f"{rule.remote_group!r}"
                    )
                remote = set_name(rule.remote_group, zone, rule.ethertype)
                specs.setdefault(remote, (remote, rule.remote_group, rule.ethertype))
            by_direction[rule.direction].append(_clause(rule, f"{sg.id}/{rule.id}", remote))
    return (
        _merge(by_direction["ingress"]),
        _merge(by_direction["egress"]),
        tuple(specs[k] for k in sorted(specs)),
    )


def _check_ports(port_list: list[Port], by_group: Mapping[str, SecurityGroup]) -> None:
    seen_ids: set[str] = set()
    seen_devices: set[str] = set()
    for port in port_list:
        if port.id in seen_ids:
            raise SecgroupUnprocessable(f"port: {port.id} appears twice")
        if port.device in seen_devices:
            raise SecgroupUnprocessable(f"device: {port.device} is the device of two ports")
        seen_ids.add(port.id)
        seen_devices.add(port.device)
        for group in port.groups:
            if group not in by_group:
                raise SecgroupUnprocessable(f"groups: port {port.id} names unknown group {group!r}")


class Compiler:
    """:func:`compile_program` with memory: a change costs what it touches.

    Kept between calls: the clauses of each (groups, zone) combination, valid while those
    groups are the same objects (the model's values are frozen: a changed group is a new
    object) and the remote groups they name exist; each port's :class:`PortFilter`, valid
    while the port and its clauses are the same objects; each address set, reused while its
    members are equal. An unchanged port's filter is therefore the *same object* as in the
    last program, which lets the renderers skip it by identity. The result always equals a
    fresh :func:`compile_program` of the same input (a Hypothesis test replays random change
    sequences against it); the memory only ever holds what the last call used.
    """

    def __init__(self) -> None:
        self._clauses: dict[
            tuple[tuple[str, ...], int], tuple[tuple[SecurityGroup, ...], frozenset[str], Clauses]
        ] = {}
        self._filters: dict[str, tuple[Port, Clauses | None, PortFilter]] = {}
        self._sets: dict[str, AddressSet] = {}
        self._sources: dict[str, tuple[Port, tuple[SourceAllow, ...]]] = {}

    def _port_clauses(self, port: Port, by_group: Mapping[str, SecurityGroup]) -> Clauses:
        key = (port.groups, port.zone)
        objects = tuple(by_group[g] for g in port.groups)
        seen = self._clauses.get(key)
        if seen is not None:
            was, remotes, clauses = seen
            same = len(was) == len(objects) and all(
                a is b for a, b in zip(was, objects, strict=True)
            )
            if same and all(r in by_group for r in remotes):
                return clauses
        clauses = _port_clauses(port.groups, port.zone, by_group)
        remotes = frozenset(r.remote_group for g in objects for r in g.rules if r.remote_group)
        self._clauses[key] = (objects, remotes, clauses)
        return clauses

    def compile(
        self,
        ports: Iterable[Port],
        groups: Mapping[str, SecurityGroup] | Iterable[SecurityGroup],
    ) -> FilterProgram:
        port_list = sorted(ports, key=lambda p: p.id)
        by_group = dict(groups) if isinstance(groups, Mapping) else {g.id: g for g in groups}
        _check_ports(port_list, by_group)
        zones = _zones(port_list)

        # Members per (group, network), in address order.
        members: dict[tuple[str, str], set[IPNetwork]] = {}
        for port in port_list:
            for group in port.groups:
                members.setdefault((group, port.network), set()).update(port.addresses())

        used_clauses: set[tuple[tuple[str, ...], int]] = set()
        specs: dict[str, tuple[SetSpec, str, int]] = {}
        filters: list[PortFilter] = []
        new_filters: dict[str, tuple[Port, Clauses | None, PortFilter]] = {}
        for port in port_list:
            clauses: Clauses | None = None
            if port.port_security:
                clauses = self._port_clauses(port, by_group)
                used_clauses.add((port.groups, port.zone))
                for spec in clauses[2]:
                    specs.setdefault(spec[0], (spec, port.network, port.zone))
            was = self._filters.get(port.id)
            if was is not None and (was[0] is port or was[0] == port) and was[1] is clauses:
                pf = was[2]
            else:
                pf = self._filter(port, clauses)
            filters.append(pf)
            new_filters[port.id] = (port, clauses, pf)
        self._filters = new_filters
        self._clauses = {k: v for k, v in self._clauses.items() if k in used_clauses}

        sets: dict[str, AddressSet] = {}
        for name in sorted(specs):
            (_, group, ethertype), network, zone = specs[name]
            addrs = tuple(
                sorted(
                    a for a in members.get((group, network), set()) if ethertype_of(a) == ethertype
                )
            )
            old = self._sets.get(name)
            if (
                old is not None
                and old.members == addrs
                and (old.group, old.network, old.zone) == (group, network, zone)
            ):
                sets[name] = old
            else:
                sets[name] = AddressSet(name, group, network, zone, ethertype, addrs)
        self._sets = sets
        remotes = {
            (r.remote_group, r.ethertype)
            for g in by_group.values()
            for r in g.rules
            if r.remote_group is not None
        }
        contributions = tuple(
            GroupMembers(
                group,
                network,
                ethertype,
                tuple(sorted(a for a in addrs if ethertype_of(a) == ethertype)),
            )
            for (group, network), addrs in sorted(members.items())
            for ethertype in ("IPv4", "IPv6")
            if (group, ethertype) in remotes
        )
        return FilterProgram(
            ports=tuple(filters),
            address_sets=tuple(sets.values()),
            zones=tuple(sorted(zones.items())),
            contributions=contributions,
        )

    def _filter(self, port: Port, clauses: Clauses | None) -> PortFilter:
        if clauses is None:
            return PortFilter(
                port=port.id,
                device=port.device,
                network=port.network,
                zone=port.zone,
                mac=port.mac,
                port_security=False,
            )
        return PortFilter(
            port=port.id,
            device=port.device,
            network=port.network,
            zone=port.zone,
            mac=port.mac,
            port_security=True,
            allowed_sources=allowed_sources(port),
            allow_dhcp_server=port.allow_dhcp_server,
            allow_router_advertisements=port.allow_router_advertisements,
            ingress=clauses[0],
            egress=clauses[1],
        )


def compile_program(
    ports: Iterable[Port], groups: Mapping[str, SecurityGroup] | Iterable[SecurityGroup]
) -> FilterProgram:
    """The filter program of ``ports`` under ``groups`` (membership follows from the ports).

    Every port a remote group's membership depends on must be among ``ports`` (a port on
    another node would be passed with port_security as it has there). Raises
    :class:`SecgroupUnprocessable` (422: objects each valid that contradict one another) for
    an unknown group, a duplicate port or device, or zones that disagree. Pure: a fresh
    :class:`Compiler` (the driver keeps one, to compile changes incrementally).
    """
    return Compiler().compile(ports, groups)


@dataclass(frozen=True)
class ProgramDelta:
    """What differs between two programs: ports (added, removed or with another filter),
    address sets (added, removed or with other members), and whether the zones did."""

    ports: frozenset[str]
    sets: frozenset[str]
    zones: bool

    def __bool__(self) -> bool:
        return bool(self.ports or self.sets or self.zones)


def delta(old: FilterProgram, new: FilterProgram) -> ProgramDelta:
    """The :class:`ProgramDelta` from ``old`` to ``new`` (identity first: a :class:`Compiler`
    hands back the same objects for what did not change, so this costs little)."""
    before = {p.port: p for p in old.ports}
    after = {p.port: p for p in new.ports}
    ports = set(before.keys() ^ after.keys())
    ports |= {
        k
        for k in before.keys() & after.keys()
        if before[k] is not after[k] and before[k] != after[k]
    }
    sets_before = {s.name: s for s in old.address_sets}
    sets_after = {s.name: s for s in new.address_sets}
    sets = set(sets_before.keys() ^ sets_after.keys())
    sets |= {
        k
        for k in sets_before.keys() & sets_after.keys()
        if sets_before[k] is not sets_after[k] and sets_before[k] != sets_after[k]
    }
    return ProgramDelta(frozenset(ports), frozenset(sets), old.zones != new.zones)
