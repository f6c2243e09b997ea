"""The chain model (networking-sfc's): port pairs, port pair groups, flow classifiers, chains.

Every object is a frozen dataclass checked at construction: a malformed value raises
:class:`~fluidedge.chains.errors.InvalidChain` naming the field and the reason, so the compiler
only ever sees valid, normalised objects. Fields that contradict each other (a port range
without tcp, udp or sctp, a prefix of the other family...) raise
:class:`~fluidedge.chains.errors.ChainUnprocessable` instead: each field is well-formed, which
is all a JSON Schema can say (the API's bodies state every single-field rule as a pattern or a
bound, :data:`PREFIX_PATTERN`, :data:`PROTOCOL_PATTERN`, so a body that passes them reaches
only these 422s). :func:`check_state` adds the checks that span objects (references exist,
nothing shared that the data plane cannot tell apart, one tenant).

- A *port* is named by the host end of an instance interface (its switch port, as the
  security groups' ``Port.device``); the OVS adapter maps it to an OpenFlow port number.
- A *port pair* is one function instance: traffic of the chain enters it on ``ingress`` and
  comes back on ``egress`` (the same port for a one-armed function).
- A *port pair group* lists interchangeable instances of one function; flows are spread over
  its live members and pinned to one of them for their life (see the compiler).
- A *flow classifier* says which traffic a chain takes: ethertype, protocol, prefixes, port
  ranges, and the logical source and destination ports (both required here: the chain is
  entered where the traffic comes from and left towards its destination port, and the
  replies are classified on the destination's port; see docs/chains.md). With
  ``tof_service`` the classifier takes a TOF service's offloaded traffic: its source port is
  the TOF's apps side, and its destination prefix is the service's (:mod:`.tof` fills it in).
- A *port chain* is an ordered, non-empty list of groups plus classifiers, with its number
  (``chain_id``, 1-255: it is part of the OpenFlow registers and cookies), ``symmetric``
  (default: replies traverse the same instances in reverse) and the failure policy applied
  when a group has no live member left (``closed``: drop, the default; ``open``: skip it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fluidedge.chains.errors import (
    ChainConflict,
    ChainObjectNotFound,
    ChainUnprocessable,
    InvalidChain,
)
from fluidedge.core.fields import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
    Ethertype,
    FieldChecks,
    IPNetwork,
)
from fluidedge.core.fields import PROTOCOL_PATTERN as FIELDS_PROTOCOL_PATTERN
from fluidedge.core.patterns import IP_PREFIX

FailurePolicy = Literal["open", "closed"]
FunctionKind = Literal["transparent", "routed"]

ETHERTYPES: tuple[Ethertype, ...] = ("IPv4", "IPv6")
FAILURE_POLICIES: tuple[FailurePolicy, ...] = ("open", "closed")
FUNCTION_KINDS: tuple[FunctionKind, ...] = ("transparent", "routed")
# Protocols whose ports OpenFlow matches (tp_src/tp_dst): a port range needs one of them.
PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP, PROTO_SCTP})

DEFAULT_TENANT = "default"
ID_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
TENANT_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
# A switch port: the host end of an instance's veth (a Linux interface name).
PORT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$"
MAX_DESCRIPTION = 1024
MAX_MEMBERS = 64
MAX_GROUPS = 16
MAX_CLASSIFIERS = 16
CHAIN_ID_MIN, CHAIN_ID_MAX = 1, 255

_ID_RE = re.compile(ID_PATTERN)
_TENANT_RE = re.compile(TENANT_PATTERN)
_PORT_RE = re.compile(PORT_PATTERN)
# A TOF service's name: the TOF's own pattern (fluidedge.tof.models.NAME_PATTERN), restated
# because tof and chains are peers in the package layers (tests/unit/test_layers.py).
TOF_SERVICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_TOF_SERVICE_RE = re.compile(TOF_SERVICE_PATTERN)

# An IP prefix as text, in the forms the parser (``ipaddress.ip_network``) reads and the API
# documents: an address, or an address and a prefix length (``/len``); IPv6 in every RFC 4291
# form (``::`` for one or more zero groups, an IPv4 tail). Narrower than the parser on
# purpose: no dotted netmasks (``/255.0.0.0``), no zone (``%eth0``), no leading zeros in a
# length. Every text it matches is a prefix (tests/unit/chains/test_body_schema.py generates
# them); whether it is of the classifier's family is a rule across fields (a 422).
PREFIX_PATTERN = IP_PREFIX  # fluidedge.core.patterns: one set for every part
# What FieldChecks.protocol reads (fluidedge.core.fields), as the schema states it.
PROTOCOL_PATTERN = FIELDS_PROTOCOL_PATTERN


_checks = FieldChecks(InvalidChain)
_bad = _checks.bad
_clash = FieldChecks(ChainUnprocessable).bad  # well-formed fields that contradict each other
_name = _checks.name
_int = _checks.integer


def _description(value: object) -> str:
    return _checks.description(value, MAX_DESCRIPTION)


def _ids(what: str, value: object, pattern: re.Pattern[str], limit: int) -> tuple[str, ...]:
    if not isinstance(value, tuple):
        raise _bad(what, "must be a list of names")
    for item in value:
        _name(what, item, pattern)
    if len(set(value)) != len(value):
        raise _bad(what, "a name appears twice")
    if len(value) > limit:
        raise _bad(what, f"at most {limit} entries")
    return value


def _unknown(data: Mapping[str, Any], known: Iterable[str]) -> None:
    extra = sorted(set(data) - set(known))
    if extra:
        raise _bad(extra[0], "unknown field")


def _list(data: Mapping[str, Any], key: str) -> tuple[Any, ...]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple):
        raise _bad(key, "must be a list")
    return tuple(value)


def parse_protocol(value: object, ethertype: Ethertype) -> int | None:
    """A protocol name or number 0-255, ``None``/``any`` for any; ``icmp`` on an IPv6
    classifier means icmpv6, as neutron (:meth:`fluidedge.core.fields.FieldChecks.protocol`)."""
    return _checks.protocol(value, ethertype)


def parse_prefix(what: str, value: object) -> IPNetwork | None:
    """An IP prefix (host bits cleared); a bare address is a host route; None is any."""
    return None if value is None else _checks.network(what, value)


@dataclass(frozen=True)
class PortPair:
    """One function instance: its ingress and egress switch ports (equal: one-armed).

    ``kind``: ``transparent`` (bump in the wire: it gets the original frames and sends them
    on unchanged in addressing) or ``routed`` (L3: the switch hands it each packet addressed
    to the MAC of the port it enters by, it routes it out of the other, and the switch
    re-addresses what it sends to the next hop; see ``docs/chains.md``)."""

    id: str
    ingress: str
    egress: str
    tenant: str = DEFAULT_TENANT
    description: str = ""
    kind: FunctionKind = "transparent"

    def __post_init__(self) -> None:
        _name("port pair id", self.id, _ID_RE)
        _name("ingress", self.ingress, _PORT_RE)
        _name("egress", self.egress, _PORT_RE)
        _name("tenant", self.tenant, _TENANT_RE)
        _description(self.description)
        if self.kind not in FUNCTION_KINDS:
            raise _bad("kind", f"must be one of {', '.join(FUNCTION_KINDS)}")

    @property
    def routed(self) -> bool:
        return self.kind == "routed"

    @property
    def one_armed(self) -> bool:
        return self.ingress == self.egress

    def ports(self) -> tuple[str, ...]:
        return (self.ingress,) if self.one_armed else (self.ingress, self.egress)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "ingress": self.ingress,
            "egress": self.egress,
            "description": self.description,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PortPair:
        _unknown(data, ("id", "tenant", "ingress", "egress", "description", "kind"))
        ingress = data.get("ingress", "")
        return cls(
            id=data.get("id", ""),
            ingress=ingress,
            egress=data.get("egress", ingress),
            tenant=data.get("tenant", DEFAULT_TENANT),
            description=data.get("description", ""),
            kind=data.get("kind", "transparent"),
        )


@dataclass(frozen=True)
class PortPairGroup:
    """Interchangeable instances of one function (port pair ids, in no particular order).

    ``tap_enabled`` (networking-sfc's passive tap): the group's function gets a **copy** of
    each packet (requests on its ingress, replies on its egress) and the chain goes on at
    once without waiting for it; what the function sends is dropped. A tap never holds
    traffic up: with no live member the chain skips it whatever its failure policy."""

    id: str
    port_pairs: tuple[str, ...] = ()
    tenant: str = DEFAULT_TENANT
    description: str = ""
    tap_enabled: bool = False

    def __post_init__(self) -> None:
        _name("port pair group id", self.id, _ID_RE)
        _ids("port_pairs", self.port_pairs, _ID_RE, MAX_MEMBERS)
        _name("tenant", self.tenant, _TENANT_RE)
        _description(self.description)
        if not isinstance(self.tap_enabled, bool):
            raise InvalidChain("tap_enabled: want true or false")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "port_pairs": list(self.port_pairs),
            "description": self.description,
            "tap_enabled": self.tap_enabled,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PortPairGroup:
        _unknown(data, ("id", "tenant", "port_pairs", "description", "tap_enabled"))
        return cls(
            id=data.get("id", ""),
            port_pairs=_list(data, "port_pairs"),
            tenant=data.get("tenant", DEFAULT_TENANT),
            description=data.get("description", ""),
            tap_enabled=data.get("tap_enabled", False),
        )


@dataclass(frozen=True)
class FlowClassifier:
    """Which traffic a chain takes; a missing field matches anything."""

    id: str
    logical_source_port: str
    logical_destination_port: str
    ethertype: Ethertype = "IPv4"
    protocol: int | None = None
    source_ip_prefix: IPNetwork | None = None
    destination_ip_prefix: IPNetwork | None = None
    source_port_range_min: int | None = None
    source_port_range_max: int | None = None
    destination_port_range_min: int | None = None
    destination_port_range_max: int | None = None
    tenant: str = DEFAULT_TENANT
    description: str = ""
    tof_service: str | None = None

    def __post_init__(self) -> None:
        _name("flow classifier id", self.id, _ID_RE)
        if self.tof_service is not None:
            _name("tof_service", self.tof_service, _TOF_SERVICE_RE)
            if self.destination_ip_prefix is not None:
                raise _clash(
                    "destination_ip_prefix", "is the TOF service's (give one or the other)"
                )
        _name("logical_source_port", self.logical_source_port, _PORT_RE)
        _name("logical_destination_port", self.logical_destination_port, _PORT_RE)
        if self.logical_source_port == self.logical_destination_port:
            raise _clash("logical_destination_port", "is the logical source port")
        if self.ethertype not in ETHERTYPES:
            raise _bad("ethertype", f"{self.ethertype!r} is not IPv4 or IPv6")
        _name("tenant", self.tenant, _TENANT_RE)
        _description(self.description)
        proto = self.protocol
        if proto is not None:
            _int("protocol", proto, 0, 255)
            if proto == PROTO_ICMP and self.ethertype == "IPv6":
                object.__setattr__(self, "protocol", PROTO_ICMPV6)
            if proto == PROTO_ICMPV6 and self.ethertype == "IPv4":
                raise _clash("protocol", "icmpv6 is an IPv6 protocol (ethertype is IPv4)")
        for side in ("source", "destination"):
            _check_port_range(self, side)
            prefix = getattr(self, f"{side}_ip_prefix")
            if prefix is None:
                continue
            if not isinstance(prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
                raise _bad(f"{side}_ip_prefix", f"{prefix!r} is not an IP prefix")
            if (prefix.version == 4) != (self.ethertype == "IPv4"):
                raise _clash(f"{side}_ip_prefix", f"{prefix} is not an {self.ethertype} prefix")

    def ranges(self) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """(source range, destination range); None where any port matches."""
        return (self._range("source"), self._range("destination"))

    def _range(self, side: str) -> tuple[int, int] | None:
        low = getattr(self, f"{side}_port_range_min")
        high = getattr(self, f"{side}_port_range_max")
        return None if low is None else (low, high)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "ethertype": self.ethertype,
            "protocol": self.protocol,
            "source_ip_prefix": _text(self.source_ip_prefix),
            "destination_ip_prefix": _text(self.destination_ip_prefix),
            "source_port_range_min": self.source_port_range_min,
            "source_port_range_max": self.source_port_range_max,
            "destination_port_range_min": self.destination_port_range_min,
            "destination_port_range_max": self.destination_port_range_max,
            "logical_source_port": self.logical_source_port,
            "logical_destination_port": self.logical_destination_port,
            "tof_service": self.tof_service,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowClassifier:
        _unknown(data, cls.__dataclass_fields__)
        ethertype = data.get("ethertype", "IPv4")
        if ethertype not in ETHERTYPES:
            raise _bad("ethertype", f"{ethertype!r} is not IPv4 or IPv6")
        return cls(
            id=data.get("id", ""),
            tenant=data.get("tenant", DEFAULT_TENANT),
            ethertype=ethertype,
            protocol=parse_protocol(data.get("protocol"), ethertype),
            source_ip_prefix=parse_prefix("source_ip_prefix", data.get("source_ip_prefix")),
            destination_ip_prefix=parse_prefix(
                "destination_ip_prefix", data.get("destination_ip_prefix")
            ),
            source_port_range_min=data.get("source_port_range_min"),
            source_port_range_max=data.get("source_port_range_max"),
            destination_port_range_min=data.get("destination_port_range_min"),
            destination_port_range_max=data.get("destination_port_range_max"),
            logical_source_port=data.get("logical_source_port", ""),
            logical_destination_port=data.get("logical_destination_port", ""),
            description=data.get("description", ""),
            tof_service=data.get("tof_service"),
        )


def _text(prefix: IPNetwork | None) -> str | None:
    return None if prefix is None else str(prefix)


def _check_port_range(c: FlowClassifier, side: str) -> None:
    low_f, high_f = f"{side}_port_range_min", f"{side}_port_range_max"
    low, high = getattr(c, low_f), getattr(c, high_f)
    if low is None and high is None:
        return
    if c.protocol not in PORT_PROTOCOLS:
        raise _clash(low_f, "a port range needs protocol tcp, udp or sctp")
    if low is None:
        raise _clash(low_f, f"{high_f} is given without {low_f}")
    _int(low_f, low, 0, 65535)
    if high is None:
        object.__setattr__(c, high_f, low)
        high = low
    _int(high_f, high, 0, 65535)
    if low > high:
        raise _clash(low_f, f"{low} is above {high_f} {high}")


@dataclass(frozen=True)
class PortChain:
    """Groups in order, the classifiers whose traffic takes them, and the chain's policies."""

    id: str
    chain_id: int
    port_pair_groups: tuple[str, ...]
    flow_classifiers: tuple[str, ...] = ()
    symmetric: bool = True
    failure_policy: FailurePolicy = "closed"
    tenant: str = DEFAULT_TENANT
    description: str = ""

    def __post_init__(self) -> None:
        _name("port chain id", self.id, _ID_RE)
        _int("chain_id", self.chain_id, CHAIN_ID_MIN, CHAIN_ID_MAX)
        _ids("port_pair_groups", self.port_pair_groups, _ID_RE, MAX_GROUPS)
        if not self.port_pair_groups:
            raise _bad("port_pair_groups", "a chain needs at least one group")
        _ids("flow_classifiers", self.flow_classifiers, _ID_RE, MAX_CLASSIFIERS)
        if not isinstance(self.symmetric, bool):
            raise _bad("symmetric", "must be true or false")
        if self.failure_policy not in FAILURE_POLICIES:
            raise _bad("failure_policy", f"{self.failure_policy!r} is not open or closed")
        _name("tenant", self.tenant, _TENANT_RE)
        _description(self.description)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "chain_id": self.chain_id,
            "port_pair_groups": list(self.port_pair_groups),
            "flow_classifiers": list(self.flow_classifiers),
            "symmetric": self.symmetric,
            "failure_policy": self.failure_policy,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], chain_id: int | None = None) -> PortChain:
        """``chain_id`` fills in a number the caller allocated when the data has none."""
        _unknown(data, cls.__dataclass_fields__)
        return cls(
            id=data.get("id", ""),
            chain_id=data.get("chain_id", chain_id),
            port_pair_groups=_list(data, "port_pair_groups"),
            flow_classifiers=_list(data, "flow_classifiers"),
            symmetric=data.get("symmetric", True),
            failure_policy=data.get("failure_policy", "closed"),
            tenant=data.get("tenant", DEFAULT_TENANT),
            description=data.get("description", ""),
        )


@dataclass(frozen=True)
class ChainState:
    """Everything declared, by id; :func:`check_state` says whether it hangs together."""

    port_pairs: Mapping[str, PortPair] = field(default_factory=dict)
    groups: Mapping[str, PortPairGroup] = field(default_factory=dict)
    classifiers: Mapping[str, FlowClassifier] = field(default_factory=dict)
    chains: Mapping[str, PortChain] = field(default_factory=dict)


def _owner(kind: str, ids: Iterable[tuple[str, str]]) -> dict[str, str]:
    """user -> owner over ``(owner, used)`` pairs; a second owner is a conflict."""
    seen: dict[str, str] = {}
    for owner, used in ids:
        if used in seen and seen[used] != owner:
            raise ChainConflict(f"{kind} {used!r} is used by both {seen[used]!r} and {owner!r}")
        seen[used] = owner
    return seen


def check_state(state: ChainState) -> None:
    """The checks across objects (pure); raises on the first problem.

    - references exist, and within one tenant (another tenant's object is a 404, checked
      first: no later conflict reveals it);
    - a port is in at most one pair and is no classifier's logical port (a function's ports
      must be told apart from the traffic's ends by port alone);
    - a pair is in at most one group, a group and a classifier in at most one chain (as
      networking-sfc: a function's return port then names one hop of one chain);
    - chain numbers are unique;
    - a tap group's pairs are transparent.
    """
    pairs, groups = state.port_pairs, state.groups
    classifiers, chains = state.classifiers, state.chains
    for kind, table in (
        ("port pair", pairs),
        ("port pair group", groups),
        ("flow classifier", classifiers),
        ("port chain", chains),
    ):
        for key, obj in table.items():
            if key != obj.id:
                raise InvalidChain(f"{kind} {obj.id!r} stored under {key!r}")
    for g in groups.values():
        for pid in g.port_pairs:
            _ref("port pair", pid, pairs, g.tenant, f"port pair group {g.id!r}")
            if g.tap_enabled and pairs[pid].routed:
                raise ChainConflict(
                    f"port pair group {g.id!r} is a tap: its port pair {pid!r} must be "
                    "transparent (a tap's copies are never routed back)"
                )
    for chain in chains.values():
        where = f"port chain {chain.id!r}"
        for gid in chain.port_pair_groups:
            _ref("port pair group", gid, groups, chain.tenant, where)
        for fid in chain.flow_classifiers:
            _ref("flow classifier", fid, classifiers, chain.tenant, where)
    _owner("port", ((p.id, port) for p in pairs.values() for port in p.ports()))
    function_ports = {port: p.id for p in pairs.values() for port in p.ports()}
    for c in classifiers.values():
        for port in (c.logical_source_port, c.logical_destination_port):
            if port in function_ports:
                raise ChainConflict(
                    f"flow classifier {c.id!r}: port {port!r} belongs to port pair "
                    f"{function_ports[port]!r}"
                )
    _owner("port pair", ((g.id, p) for g in groups.values() for p in g.port_pairs))
    _owner("port pair group", ((c.id, g) for c in chains.values() for g in c.port_pair_groups))
    _owner("flow classifier", ((c.id, f) for c in chains.values() for f in c.flow_classifiers))
    _owner("chain_id", ((c.id, str(c.chain_id)) for c in chains.values()))


def _ref(kind: str, ref: str, table: Mapping[str, Any], tenant: str, where: str) -> None:
    obj = table.get(ref)
    if obj is None:
        raise ChainObjectNotFound(f"{where}: no {kind} {ref!r}")
    if obj.tenant != tenant:
        # Another tenant's object does not exist for this one (its 404, not a 409 that
        # would tell it apart from a missing one).
        raise ChainObjectNotFound(f"{where}: no {kind} {ref!r}")


def chain_ports(state: ChainState, chain: PortChain) -> set[str]:
    """Every switch port ``chain`` names: its members' legs and its classifiers' ends."""
    legs = {
        port
        for g in chain.port_pair_groups
        for p in state.groups[g].port_pairs
        for port in state.port_pairs[p].ports()
    }
    ends = {
        port
        for f in chain.flow_classifiers
        for port in (
            state.classifiers[f].logical_source_port,
            state.classifiers[f].logical_destination_port,
        )
    }
    return legs | ends


def free_chain_id(chains: Iterable[PortChain]) -> int:
    """The smallest chain number no chain uses (a conflict when all 255 are taken)."""
    used = {c.chain_id for c in chains}
    for number in range(CHAIN_ID_MIN, CHAIN_ID_MAX + 1):
        if number not in used:
            return number
    raise ChainConflict(f"all {CHAIN_ID_MAX} chain numbers are in use")
