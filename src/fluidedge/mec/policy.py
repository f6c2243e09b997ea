"""Pure policy of the ME platform: who may act for which app, what a discovery query or a
subscription's filter matches, and what a traffic rule becomes in the TOF.

No I/O here: :mod:`fluidedge.mec.platform` calls these with its in-memory state, and the unit
tests call them directly.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from fluidedge.mec.errors import MecForbidden, MecInvalid, MecUnsupported
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
    """The query filters of ``GET /services`` and ``GET /applications/{id}/services``."""

    ser_instance_id: tuple[str, ...] = ()
    ser_name: tuple[str, ...] = ()
    ser_category_id: str | None = None
    consumed_local_only: bool | None = None
    is_local: bool | None = None
    scope_of_locality: str | None = None

    def check(self) -> None:
        """MEC 011: either ser_instance_id, ser_name or ser_category_id, or none of them."""
        given = [
            name
            for name, value in (
                ("ser_instance_id", self.ser_instance_id),
                ("ser_name", self.ser_name),
                ("ser_category_id", self.ser_category_id),
            )
            if value
        ]
        if len(given) > 1:
            raise MecInvalid(
                f"query: only one of ser_instance_id, ser_name, ser_category_id may be given "
                f"(got {', '.join(given)})"
            )
        if self.scope_of_locality is not None and self.scope_of_locality not in {
            s.value for s in LocalityType
        }:
            raise MecInvalid(
                f"query: scope_of_locality {self.scope_of_locality!r} is not one of "
                f"{', '.join(s.value for s in LocalityType)}"
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
        not query.ser_instance_id or info.ser_instance_id in query.ser_instance_id,
        not query.ser_name or info.ser_name in query.ser_name,
        query.ser_category_id is None
        or (info.ser_category is not None and info.ser_category.id == query.ser_category_id),
        query.consumed_local_only is None or info.consumed_local_only == query.consumed_local_only,
        query.is_local is None or info.is_local == query.is_local,
        query.scope_of_locality is None
        or (
            info.scope_of_locality is not None
            and info.scope_of_locality.value == query.scope_of_locality
        ),
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


def tof_services(rule: TrafficRule, data_address: str | None) -> list[tuple[str, str]]:
    """What an ACTIVE ``rule`` becomes in the TOF: ``(serviceIP, applicationIP)`` pairs.

    FORWARD_DECAPSULATED with destination-address filters becomes one TOF service per
    destination: the UE's traffic to that address leaves its tunnel and goes to the app
    (``dstInterface.dstIpAddress``, else the app's data address). PASSTHROUGH is the TOF's
    default for unmatched traffic: nothing to install. Anything else raises
    :class:`MecUnsupported` with the reason (the TOF classifies on the service address only).
    """
    if rule.state is not RuleState.ACTIVE or rule.action is Action.PASSTHROUGH:
        return []
    if rule.action is not Action.FORWARD_DECAPSULATED:
        raise MecUnsupported(
            f"trafficRule {rule.traffic_rule_id}: action {rule.action.value} is not supported "
            "yet (the TOF offloads, FORWARD_DECAPSULATED, or lets pass, PASSTHROUGH)"
        )
    target = data_address
    if rule.dst_interface is not None:
        if rule.dst_interface.interface_type is not InterfaceType.IP:
            raise MecUnsupported(
                f"trafficRule {rule.traffic_rule_id}: dstInterface of type "
                f"{rule.dst_interface.interface_type.value} is not supported yet (IP only)"
            )
        target = rule.dst_interface.dst_ip_address or data_address
    if target is None:
        raise MecInvalid(
            f"trafficRule {rule.traffic_rule_id}: no destination: give dstInterface.dstIpAddress "
            "or the app's dataAddress"
        )
    target = _ipv4(rule, "dstInterface.dstIpAddress", target)
    out: list[tuple[str, str]] = []
    if not rule.traffic_filter:
        raise MecUnsupported(f"trafficRule {rule.traffic_rule_id}: trafficFilter is empty")
    for flt in rule.traffic_filter:
        others = [
            alias
            for name, alias in (
                ("src_address", "srcAddress"),
                ("src_port", "srcPort"),
                ("dst_port", "dstPort"),
                ("protocol", "protocol"),
                ("token", "token"),
                ("src_tunnel_address", "srcTunnelAddress"),
                ("tgt_tunnel_address", "tgtTunnelAddress"),
                ("src_tunnel_port", "srcTunnelPort"),
                ("dst_tunnel_port", "dstTunnelPort"),
                ("q_ci", "qCI"),
                ("d_scp", "dSCP"),
                ("t_c", "tC"),
            )
            if getattr(flt, name) not in (None, [])
        ]
        if others:
            raise MecUnsupported(
                f"trafficRule {rule.traffic_rule_id}: filter on {', '.join(others)} is not "
                "supported yet (the TOF classifies on the destination address only)"
            )
        if not flt.dst_address:
            raise MecUnsupported(
                f"trafficRule {rule.traffic_rule_id}: a filter without dstAddress is not "
                "supported yet"
            )
        for text in flt.dst_address:
            out.append((_host(rule, text), target))
    if len({ip for ip, _ in out}) != len(out):
        raise MecInvalid(f"trafficRule {rule.traffic_rule_id}: a dstAddress is given twice")
    return out


def _ipv4(rule: TrafficRule, where: str, text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise MecUnsupported(
            f"trafficRule {rule.traffic_rule_id}: {where} {text!r} is not an IPv4 address"
        ) from None


def _host(rule: TrafficRule, text: str) -> str:
    """A dstAddress the TOF can hold: one IPv4 address (``a.b.c.d`` or ``a.b.c.d/32``)."""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise MecInvalid(
            f"trafficRule {rule.traffic_rule_id}: dstAddress {text!r} is not an address or prefix"
        ) from None
    if network.version != 4 or network.prefixlen != network.max_prefixlen:
        raise MecUnsupported(
            f"trafficRule {rule.traffic_rule_id}: dstAddress {text!r}: only single IPv4 "
            "addresses (/32) are supported yet (a TOF service is one address)"
        )
    return str(network.network_address)
