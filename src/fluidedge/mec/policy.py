"""Pure policy of the ME platform: who may act for which app, what a discovery query or a
subscription's filter matches, and what a traffic rule becomes in the TOF.

No I/O here: :mod:`fluidedge.mec.platform` calls these with its in-memory state, and the unit
tests call them directly.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from fluidedge.core.fields import decimal
from fluidedge.mec.errors import (
    MecForbidden,
    MecInvalid,
    MecPreconditionFailed,
    MecUnprocessable,
    MecUnsupported,
)
from fluidedge.mec.models import (
    Action,
    FilteringCriteria,
    InterfaceType,
    LocalityType,
    RuleState,
    ServiceInfo,
    TrafficRule,
)

# This platform is one MEC host: every service registered here is local to every app here.
HOST_LOCAL = True
# The default scope of a service that names none (MEC 011: the platform decides).
DEFAULT_SCOPE = LocalityType.MEC_HOST


@dataclass(frozen=True)
class Caller:
    """Who sent an Mp1 request: the operator (admin token) or one app instance (its token)."""

    app_instance_id: str | None  # None: the admin

    @property
    def admin(self) -> bool:
        return self.app_instance_id is None


ADMIN = Caller(None)


def check_acts_for(caller: Caller, app_instance_id: str) -> None:
    """An app's token acts only for its own appInstanceId (MEC 011: 403 Forbidden otherwise)."""
    if not caller.admin and caller.app_instance_id != app_instance_id:
        raise MecForbidden(
            f"this token belongs to app instance {caller.app_instance_id}, not {app_instance_id}"
        )


@dataclass(frozen=True)
class ServiceQuery:
    """The query filters of ``GET /services`` and ``GET /applications/{id}/services``
    (``scope_of_locality`` is checked by the route: its schema is LocalityType's enum).
    ``ser_instance_id`` and ``ser_name`` are None when absent, so that a parameter given with
    an empty value still counts as given."""

    ser_instance_id: tuple[str, ...] | None = None
    ser_name: tuple[str, ...] | None = None
    ser_category_id: str | None = None
    consumed_local_only: bool | None = None
    is_local: bool | None = None
    scope_of_locality: LocalityType | None = None

    def check(self) -> None:
        """MEC 011: either ser_instance_id, ser_name or ser_category_id, or none of them; two
        or three of them are a 400 (the rule spans parameters, which no parameter's schema can
        say: the routes' descriptions say it)."""
        given = [
            name
            for name, value in (
                ("ser_instance_id", self.ser_instance_id),
                ("ser_name", self.ser_name),
                ("ser_category_id", self.ser_category_id),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise MecInvalid(
                f"query: only one of ser_instance_id, ser_name, ser_category_id may be given "
                f"(got {', '.join(given)})"
            )


def visible_across_tenants(info: ServiceInfo) -> bool:
    """Whether a service is offered to every tenant's apps: its producer gave it the widest
    scope, ``MEC_SYSTEM``. Any narrower scope (the default is ``MEC_HOST``) keeps it within
    its producer's tenant."""
    return info.scope_of_locality is LocalityType.MEC_SYSTEM


def can_discover(viewer_tenant: str | None, owner_tenant: str, info: ServiceInfo) -> bool:
    """Whether an app of ``viewer_tenant`` (None: the admin) sees a service of
    ``owner_tenant``'s app."""
    return viewer_tenant is None or viewer_tenant == owner_tenant or visible_across_tenants(info)


def effective(info: ServiceInfo) -> ServiceInfo:
    """``info`` with the platform's defaults filled in (scope, consumedLocalOnly, isLocal)."""
    return info.model_copy(
        update={
            "scope_of_locality": info.scope_of_locality or DEFAULT_SCOPE,
            "consumed_local_only": (
                True if info.consumed_local_only is None else info.consumed_local_only
            ),
            "is_local": HOST_LOCAL,
        }
    )


def matches_query(info: ServiceInfo, query: ServiceQuery) -> bool:
    """Whether a stored (effective) service answers ``query``."""
    checks = [
        query.ser_instance_id is None or info.ser_instance_id in query.ser_instance_id,
        query.ser_name is None or info.ser_name in query.ser_name,
        query.ser_category_id is None
        or (info.ser_category is not None and info.ser_category.id == query.ser_category_id),
        query.consumed_local_only is None or info.consumed_local_only == query.consumed_local_only,
        query.is_local is None or info.is_local == query.is_local,
        query.scope_of_locality is None or info.scope_of_locality is query.scope_of_locality,
    ]
    return all(checks)


def discover(services: Iterable[ServiceInfo], query: ServiceQuery) -> list[ServiceInfo]:
    query.check()
    return [s for s in services if matches_query(s, query)]


def matches_criteria(criteria: FilteringCriteria | None, info: ServiceInfo) -> bool:
    """Whether a service availability subscription's filter matches ``info`` (its state after
    the change); absent criteria match every service, present members are ANDed."""
    if criteria is None:
        return True
    checks = [
        criteria.ser_instance_ids is None or info.ser_instance_id in criteria.ser_instance_ids,
        criteria.ser_names is None or info.ser_name in criteria.ser_names,
        criteria.ser_categories is None
        or (info.ser_category is not None and info.ser_category in criteria.ser_categories),
        criteria.states is None or info.state in criteria.states,
        criteria.is_local is None or criteria.is_local == (info.is_local is True),
    ]
    return all(checks)


def change_type(before: ServiceInfo | None, after: ServiceInfo | None) -> str | None:
    """The ChangeType of a registration change (None when nothing a subscriber sees changed)."""
    if before is None and after is not None:
        return "ADDED"
    if after is None:
        return "REMOVED"
    if before is None:
        return None
    if before.state != after.state:
        return "STATE_CHANGED"
    if before != after:
        return "ATTRIBUTES_CHANGED"
    return None


def tof_service_name(app_instance_id: str, rule_id: str, index: int) -> str:
    """The TOF service name of a rule's ``index``-th destination (TOF names: 63 chars of
    ``[A-Za-z0-9_.-]``, so the rule id, which may hold other characters, is hashed)."""
    digest = hashlib.sha256(rule_id.encode()).hexdigest()[:10]
    return f"mec-{app_instance_id[:36]}-{digest}-{index}"


class TofTarget(NamedTuple):
    """One TOF service a traffic rule asks for (what :class:`fluidedge.tof.models.Service`
    carries, in this package's terms: the platform does not import the TOF).

    ``classified``: a service with a match (protocols, destination port ranges, priority,
    source prefixes and source port ranges) and an action (``offload``, ``drop``, ``pass``,
    ``duplicate``), which may share its service IP with other classified ones; otherwise a
    plain offload owning the address."""

    service_ip: str
    application_ip: str
    classified: bool = False
    protocols: tuple[int, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()
    priority: int = 0
    action: str = "offload"
    sources: tuple[str, ...] = ()
    source_ports: tuple[tuple[int, int], ...] = ()


class Classifier(NamedTuple):
    """One TrafficFilter's classification beyond its destination address."""

    protocols: tuple[int, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()
    sources: tuple[str, ...] = ()
    source_ports: tuple[tuple[int, int], ...] = ()


# MEC 011 actions the TOF carries out, and as what (docs/me-platform.md).
_ACTIONS = {
    Action.FORWARD_DECAPSULATED: "offload",
    Action.DROP: "drop",
    Action.PASSTHROUGH: "pass",
    Action.DUPLICATE_DECAPSULATED: "duplicate",
    Action.FORWARD_ENCAPSULATED: "forward_encapsulated",
    Action.DUPLICATE_ENCAPSULATED: "duplicate_encapsulated",
}
_PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "ICMPV6": 58}
_PORTED = frozenset({6, 17, 132})
_UNSUPPORTED_FILTERS = (
    ("token", "token"),
    ("src_tunnel_address", "srcTunnelAddress"),
    ("tgt_tunnel_address", "tgtTunnelAddress"),
    ("src_tunnel_port", "srcTunnelPort"),
    ("dst_tunnel_port", "dstTunnelPort"),
    ("q_ci", "qCI"),
    ("d_scp", "dSCP"),
    ("t_c", "tC"),
)


def tof_services(rule: TrafficRule, data_address: str | None) -> list[TofTarget]:
    """What an ACTIVE ``rule`` becomes in the TOF: one :class:`TofTarget` per destination
    address of each filter.

    - FORWARD_DECAPSULATED: the UE's matching traffic leaves its tunnel and goes to the app
      (``dstInterface.dstIpAddress``, else the app's data address).
    - DROP: the matching uplink packets are dropped. PASSTHROUGH: they go on to the core
      (with a port or protocol filter, an exception to a lower-priority rule on the same
      address; without one there is nothing to install: unmatched traffic passes anyway).
    - DUPLICATE_DECAPSULATED: the packets go on to the core and a decapsulated copy to the app.
    - FORWARD_ENCAPSULATED: the tunnel's packets (GTP-U header and T-PDU) go to the app's UDP
      port 2152 instead of the core; DUPLICATE_ENCAPSULATED: to the core and, as a copy, to
      the app.

    A rule with a ``protocol``, ``dstPort``, ``srcAddress`` or ``srcPort`` filter, or whose
    action is not a plain offload, becomes classified services (the TOF matches the inner
    protocol, destination port, source prefix (the UE's address) and source port;
    ``priority`` orders them, 0 first, as MEC 011 says). Anything else raises
    :class:`MecUnsupported` with the reason, or :class:`MecUnprocessable` for a value that
    cannot be one (a protocol, a port, an address that does not parse, no destination).

    Both are 422: the filters' strings are the documents' free text, and only an ACTIVE rule
    must translate (an INACTIVE one is kept as given), so their syntax is not the schema's.
    """
    if rule.state is not RuleState.ACTIVE:
        return []
    action = _ACTIONS.get(rule.action)
    if action is None:
        raise MecUnsupported(
            f"trafficRule {rule.traffic_rule_id}: action {rule.action.value} is not supported"
        )
    target = data_address
    if rule.dst_interface is not None:
        if rule.dst_interface.interface_type is not InterfaceType.IP:
            raise MecUnsupported(
                f"trafficRule {rule.traffic_rule_id}: dstInterface of type "
                f"{rule.dst_interface.interface_type.value} is not supported yet (IP only)"
            )
        target = rule.dst_interface.dst_ip_address or data_address
    delivers = action in {"offload", "duplicate", "forward_encapsulated", "duplicate_encapsulated"}
    if target is None and delivers:
        raise MecUnprocessable(
            f"trafficRule {rule.traffic_rule_id}: no destination: give dstInterface.dstIpAddress "
            "or the app's dataAddress"
        )
    if target is not None:
        target = _ipv4(rule, "dstInterface.dstIpAddress", target)
    if not rule.traffic_filter:
        raise MecUnsupported(f"trafficRule {rule.traffic_rule_id}: trafficFilter is empty")
    found: list[tuple[str, Classifier]] = []
    for flt in rule.traffic_filter:
        others = [
            alias for name, alias in _UNSUPPORTED_FILTERS if getattr(flt, name) not in (None, [])
        ]
        if others:
            raise MecUnsupported(
                f"trafficRule {rule.traffic_rule_id}: filter on {', '.join(others)} is not "
                "supported yet (the TOF classifies on the destination address, protocol, "
                "ports and source address)"
            )
        if not flt.dst_address:
            raise MecUnsupported(
                f"trafficRule {rule.traffic_rule_id}: a filter without dstAddress is not "
                "supported yet"
            )
        protocols = tuple(sorted({_protocol(rule, p) for p in flt.protocol or ()}))
        ports = tuple(sorted({_port_range(rule, "dstPort", p) for p in flt.dst_port or ()}))
        sports = tuple(sorted({_port_range(rule, "srcPort", p) for p in flt.src_port or ()}))
        if (ports or sports) and protocols and not set(protocols) <= _PORTED:
            raise MecUnprocessable(
                f"trafficRule {rule.traffic_rule_id}: dstPort and srcPort need protocols with "
                "ports (TCP, UDP, SCTP)"
            )
        sources = tuple(sorted({_source(rule, text) for text in flt.src_address or ()}))
        cls = Classifier(protocols, ports, sources, sports)
        found.extend((_host(rule, text), cls) for text in flt.dst_address)
    if len(set(found)) != len(found):
        raise MecUnprocessable(f"trafficRule {rule.traffic_rule_id}: a filter is given twice")
    filtered = any(cls != Classifier() for _, cls in found)
    if action == "pass" and not filtered:
        return []  # unmatched traffic passes anyway: nothing to install
    out: list[TofTarget] = []
    for service_ip, cls in found:
        app_ip = target if target is not None else service_ip  # drop/pass: not delivered
        if action == "offload" and not filtered:
            out.append(TofTarget(service_ip, app_ip))
        else:
            out.append(
                TofTarget(
                    service_ip,
                    app_ip,
                    True,
                    cls.protocols,
                    cls.ports,
                    rule.priority,
                    action,
                    cls.sources,
                    cls.source_ports,
                )
            )
    return out


def _protocol(rule: TrafficRule, text: str) -> int:
    """A TrafficFilter ``protocol``: a name (TCP, UDP, SCTP, ICMP, ICMPv6) or a number."""
    value = _PROTOCOLS.get(text.strip().upper())
    number = text.strip()
    if value is None and (digits := decimal(number, 3)) is not None and digits <= 255:
        value = digits  # ASCII digits only (core.fields.decimal)
    if value is None:
        raise MecUnprocessable(
            f"trafficRule {rule.traffic_rule_id}: protocol {text!r} is not TCP, UDP, SCTP, "
            "ICMP, ICMPv6 or a number 0..255"
        )
    return value


def _port_range(rule: TrafficRule, where: str, text: str) -> tuple[int, int]:
    """A TrafficFilter ``dstPort`` or ``srcPort``: ``N`` or ``N-M`` (0..65535)."""
    lo, sep, hi = text.strip().partition("-")
    first, last = decimal(lo, 5), decimal(hi, 5) if sep else decimal(lo, 5)
    if first is None or last is None or not 0 <= first <= last <= 65535:
        raise MecUnprocessable(
            f"trafficRule {rule.traffic_rule_id}: {where} {text!r} is not a port or a range "
            "N-M within 0..65535"
        )
    return (first, last)


def _ipv4(rule: TrafficRule, where: str, text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise MecUnsupported(
            f"trafficRule {rule.traffic_rule_id}: {where} {text!r} is not an IPv4 address"
        ) from None


def _network(
    rule: TrafficRule, field: str, text: str
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A filter's address or prefix (``field``: dstAddress or srcAddress), host bits zero."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise MecUnprocessable(
            f"trafficRule {rule.traffic_rule_id}: {field} {text!r} is not an address or a "
            "prefix (with its host bits zero)"
        ) from None


def _host(rule: TrafficRule, text: str) -> str:
    """A dstAddress the TOF can hold: one IPv4 address (``a.b.c.d`` or ``a.b.c.d/32``)."""
    network = _network(rule, "dstAddress", text)
    if network.version != 4 or network.prefixlen != network.max_prefixlen:
        raise MecUnsupported(
            f"trafficRule {rule.traffic_rule_id}: dstAddress {text!r}: only single IPv4 "
            "addresses (/32) are supported yet (a TOF service is one address)"
        )
    return str(network.network_address)


def _source(rule: TrafficRule, text: str) -> str:
    """A srcAddress: an IPv4 address or prefix (the UEs' side of the uplink: ``10.45.0.0/16``)."""
    network = _network(rule, "srcAddress", text)
    if network.version != 4:
        raise MecUnsupported(
            f"trafficRule {rule.traffic_rule_id}: srcAddress {text!r}: only IPv4 is supported "
            "yet (the destinations are IPv4)"
        )
    return str(network)


def etag(wire: object) -> str:
    """The strong ETag of a resource's JSON document (changes whenever the document does)."""
    text = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:24] + '"'


def check_if_match(if_match: str | None, current: str) -> None:
    """RFC 9110 If-Match on a PUT: absent or ``*`` passes; otherwise one of its entity tags
    must be ``current`` (strong comparison, so a weak ``W/`` tag never matches), else 412."""
    if if_match is None or if_match.strip() == "*":
        return
    tags = [t.strip() for t in if_match.split(",")]
    if current not in tags:
        raise MecPreconditionFailed(
            f"If-Match {if_match.strip()!r} does not match the current ETag {current} "
            "(the resource changed since it was read: GET it again)"
        )


class RequestLimiter:
    """Per app instance token buckets for its Mp1 requests: ``rate`` per second, ``burst`` at
    once (``rate`` 0: no limit). Pure: the caller gives the time (and holds a lock)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # app -> (tokens, at)

    def wait(self, app: str, now: float) -> float:
        """0.0 when ``app`` may send one more request now (it is counted), else the seconds
        until it may."""
        if self.rate <= 0:
            return 0.0
        tokens, at = self._buckets.get(app, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[app] = (tokens - 1.0, now)
            return 0.0
        self._buckets[app] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def forget(self, app: str) -> None:
        self._buckets.pop(app, None)
