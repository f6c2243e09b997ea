"""The security-group model: groups, their rules and the ports they apply to (neutron's model).

Everything here is a frozen dataclass checked at construction: a malformed value raises
:class:`~fluidedge.secgroups.errors.InvalidSecgroup` naming the field and the reason (never an
``assert``), so the compiler and the renderers only ever see valid, normalised objects. A value
that is fine alone but contradicts another field (the rules below that name two fields, and two
rules alike in one group) raises its subclass
:class:`~fluidedge.secgroups.errors.SecgroupUnprocessable` (422: the API's schema states each
field, not how they combine):

- a protocol is a number (``tcp`` = 6, ``udp`` = 17, ``icmp`` = 1, ``icmpv6`` = 58) or ``None``
  for any; :func:`parse_protocol` turns neutron's names into numbers;
- a port range is only allowed for protocols with ports (tcp, udp, sctp, udplite, dccp), an
  ICMP type/code only for icmp (IPv4) and icmpv6 (IPv6); ``protocol="icmp"`` on an IPv6 rule
  means icmpv6, as in neutron;
- a remote is at most one of an IP prefix (its family must match the ethertype; host bits are
  cleared) or a remote group; neither means "any address";
- MAC addresses are lower-case, unicast and not all-zero.

The ``from_json`` helpers build the objects from API/store dictionaries with the same checks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from fluidedge.core.fields import (
    PROTO_DCCP,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
    PROTO_UDPLITE,
    Ethertype,
    FieldChecks,
    IPNetwork,
)
from fluidedge.secgroups.errors import InvalidSecgroup, SecgroupUnprocessable

Direction = Literal["ingress", "egress"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DIRECTIONS: tuple[Direction, ...] = ("ingress", "egress")
ETHERTYPES: tuple[Ethertype, ...] = ("IPv4", "IPv6")

# Protocols with a port range in their header (neutron's list): tcp, udp, dccp, sctp, udplite.
PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP, PROTO_DCCP, PROTO_SCTP, PROTO_UDPLITE})

DEFAULT_TENANT = "default"
DEFAULT_GROUP = "default"
# Group names end up in nft set names and OpenFlow notes: lower-case letters, digits and '-'
# (the renderers map '-' to '_', which stays injective because '_' is not allowed here).
GROUP_ID_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
# Ids a new group may not take: ``/v1/security-groups/ports`` lists the filtered ports, beside
# ``/v1/security-groups/{group_id}``; a group ``ports`` could be made but never read, changed
# or deleted there. The pattern cannot say it (no lookahead in pydantic's regex engine): the
# API's schema says it with ``not``, and creation refuses it.
RESERVED_GROUP_IDS = ("ports",)
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PORT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,95}$"
NETWORK_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
DEVICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$"
TENANT_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
MAX_DESCRIPTION = 1024
MAX_RULES = 1000
MAX_GROUPS_PER_PORT = 16
MAX_ADDRESSES_PER_PORT = 64
ZONE_MIN, ZONE_MAX = 1, 65535

_GROUP_RE = re.compile(GROUP_ID_PATTERN)
_RULE_RE = re.compile(RULE_ID_PATTERN)
_PORT_RE = re.compile(PORT_ID_PATTERN)
_NETWORK_RE = re.compile(NETWORK_PATTERN)
_DEVICE_RE = re.compile(DEVICE_PATTERN)
_TENANT_RE = re.compile(TENANT_PATTERN)
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


_checks = FieldChecks(InvalidSecgroup)
_bad = _checks.bad
# Fields fine alone that contradict each other: the API's schema cannot say it (422).
_clash = FieldChecks(SecgroupUnprocessable).bad
_check_name = _checks.name
_check_int = _checks.integer
parse_network = _checks.network


def _check_description(value: object) -> str:
    return _checks.description(value, MAX_DESCRIPTION)


def parse_protocol(value: object, ethertype: Ethertype = "IPv4") -> int | None:
    """Neutron's protocol field as a number, or ``None`` for any (see
    :meth:`fluidedge.core.fields.FieldChecks.protocol`)."""
    return _checks.protocol(value, ethertype)


def parse_address(what: str, value: object) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str) or len(value) > 64:
        raise _bad(what, f"{value!r} is not an IP address")
    try:
        return ipaddress.ip_address(value.split("/", 1)[0] if "/" in value else value)
    except ValueError as exc:
        raise _bad(what, f"{value!r} is not an IP address ({exc})") from None


def parse_mac(what: str, value: object) -> str:
    """A unicast, non-zero Ethernet address, lower-case with colons."""
    if not isinstance(value, str):
        raise _bad(what, f"{value!r} is not a MAC address")
    mac = value.strip().lower().replace("-", ":")
    if not _MAC_RE.fullmatch(mac):
        raise _bad(what, f"{value!r} is not a MAC address (six hex octets)")
    if int(mac[:2], 16) & 1:
        raise _bad(what, f"{value!r} is a multicast address")
    if mac == "00:00:00:00:00:00":
        raise _bad(what, "the all-zero address is not a port's address")
    return mac


def ethertype_of(net: IPNetwork | IPAddress) -> Ethertype:
    return "IPv4" if net.version == 4 else "IPv6"


@dataclass(frozen=True)
class Rule:
    """One neutron security-group rule: what a *new* connection may be (replies need no rule).

    ``direction`` is seen from the port: ingress = to the port (the remote is the source),
    egress = from the port (the remote is the destination).
    """

    id: str
    direction: Direction
    ethertype: Ethertype = "IPv4"
    protocol: int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_ip_prefix: IPNetwork | None = None
    remote_group: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("rule id", self.id, _RULE_RE)
        if self.direction not in DIRECTIONS:
            raise _bad("direction", f"{self.direction!r} is not ingress or egress")
        if self.ethertype not in ETHERTYPES:
            raise _bad("ethertype", f"{self.ethertype!r} is not IPv4 or IPv6")
        _check_description(self.description)
        proto = self.protocol
        if proto is not None:
            _check_int("protocol", proto, 0, 255)
            if proto == PROTO_ICMP and self.ethertype == "IPv6":
                object.__setattr__(self, "protocol", PROTO_ICMPV6)
                proto = PROTO_ICMPV6
            if proto == PROTO_ICMPV6 and self.ethertype == "IPv4":
                raise _clash("protocol", "icmpv6 is an IPv6 protocol (ethertype is IPv4)")
        self._check_ports(proto)
        self._check_icmp(proto)
        self._check_remote()

    def _check_ports(self, proto: int | None) -> None:
        low, high = self.port_range_min, self.port_range_max
        if low is None and high is None:
            return
        if proto not in PORT_PROTOCOLS:
            raise _clash(
                "port_range_min",
                "a port range needs a protocol with ports (tcp, udp, sctp, udplite, dccp)",
            )
        if low is None:
            raise _clash("port_range_min", "port_range_max is given without port_range_min")
        _check_int("port_range_min", low, 1, 65535)
        if high is None:
            object.__setattr__(self, "port_range_max", low)
            high = low
        _check_int("port_range_max", high, 1, 65535)
        if low > high:
            raise _clash("port_range_min", f"{low} is above port_range_max {high}")

    def _check_icmp(self, proto: int | None) -> None:
        if self.icmp_type is None and self.icmp_code is None:
            return
        if proto not in (PROTO_ICMP, PROTO_ICMPV6):
            raise _clash("icmp_type", "an ICMP type/code needs protocol icmp or icmpv6")
        if self.icmp_type is None:
            raise _clash("icmp_code", "icmp_code is given without icmp_type")
        _check_int("icmp_type", self.icmp_type, 0, 255)
        if self.icmp_code is not None:
            _check_int("icmp_code", self.icmp_code, 0, 255)

    def _check_remote(self) -> None:
        if self.remote_ip_prefix is not None and self.remote_group is not None:
            raise _clash("remote_ip_prefix", "give a remote IP prefix or a remote group, not both")
        if self.remote_ip_prefix is not None:
            net = self.remote_ip_prefix
            if not isinstance(net, ipaddress.IPv4Network | ipaddress.IPv6Network):
                raise _bad("remote_ip_prefix", f"{net!r} is not an IP prefix")
            if ethertype_of(net) != self.ethertype:
                raise _clash(
                    "remote_ip_prefix", f"{net} is not an {self.ethertype} prefix (ethertype)"
                )
        if self.remote_group is not None:
            _check_name("remote_group", self.remote_group, _GROUP_RE)

    def key(self) -> tuple[object, ...]:
        """What the rule matches (id and description aside): two rules with equal keys are
        duplicates."""
        return (
            self.direction,
            self.ethertype,
            self.protocol,
            self.port_range_min,
            self.port_range_max,
            self.icmp_type,
            self.icmp_code,
            None if self.remote_ip_prefix is None else str(self.remote_ip_prefix),
            self.remote_group,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "ethertype": self.ethertype,
            "protocol": self.protocol,
            "port_range_min": self.port_range_min,
            "port_range_max": self.port_range_max,
            "icmp_type": self.icmp_type,
            "icmp_code": self.icmp_code,
            "remote_ip_prefix": None
            if self.remote_ip_prefix is None
            else str(self.remote_ip_prefix),
            "remote_group": self.remote_group,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rule:
        """A rule from an API/store dictionary (protocol names accepted, unknown keys refused)."""
        known = {
            "id",
            "direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "port_range_max",
            "icmp_type",
            "icmp_code",
            "remote_ip_prefix",
            "remote_group",
            "description",
        }
        extra = sorted(set(data) - known)
        if extra:
            raise _bad(extra[0], "unknown field")
        ethertype = data.get("ethertype", "IPv4")
        if ethertype not in ETHERTYPES:
            raise _bad("ethertype", f"{ethertype!r} is not IPv4 or IPv6")
        prefix = data.get("remote_ip_prefix")
        return cls(
            id=data.get("id", ""),
            direction=data.get("direction", ""),
            ethertype=ethertype,
            protocol=parse_protocol(data.get("protocol"), ethertype),
            port_range_min=data.get("port_range_min"),
            port_range_max=data.get("port_range_max"),
            icmp_type=data.get("icmp_type"),
            icmp_code=data.get("icmp_code"),
            remote_ip_prefix=None if prefix is None else parse_network("remote_ip_prefix", prefix),
            remote_group=data.get("remote_group"),
            description=data.get("description", ""),
        )


@dataclass(frozen=True)
class SecurityGroup:
    """A named set of rules owned by a tenant; ports name the groups that apply to them.

    A port's policy is the union of its groups' rules (rules only ever allow); a port in no
    group allows no new connection in either direction (replies and ARP/ND aside).
    """

    id: str
    tenant: str = DEFAULT_TENANT
    rules: tuple[Rule, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("security group id", self.id, _GROUP_RE)
        _check_name("tenant", self.tenant, _TENANT_RE)
        _check_description(self.description)
        if not isinstance(self.rules, tuple):
            raise _bad("rules", "must be a tuple of rules")
        if len(self.rules) > MAX_RULES:  # a body's list is bounded by the schema: a rule added
            raise _clash("rules", f"{len(self.rules)} rules, at most {MAX_RULES} per group")
        ids: set[str] = set()
        keys: dict[tuple[object, ...], str] = {}
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise _bad("rules", f"{rule!r} is not a rule")
            if rule.id in ids:
                raise _clash("rules", f"rule id {rule.id!r} appears twice")
            ids.add(rule.id)
            key = rule.key()
            if key in keys:
                raise _clash("rules", f"rule {rule.id!r} duplicates rule {keys[key]!r}")
            keys[key] = rule.id

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "description": self.description,
            "rules": [r.to_json() for r in self.rules],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SecurityGroup:
        extra = sorted(set(data) - {"id", "tenant", "description", "rules"})
        if extra:
            raise _bad(extra[0], "unknown field")
        rules = data.get("rules", [])
        if not isinstance(rules, list | tuple):
            raise _bad("rules", "must be a list")
        return cls(
            id=data.get("id", ""),
            tenant=data.get("tenant", DEFAULT_TENANT),
            description=data.get("description", ""),
            rules=tuple(Rule.from_json(r) for r in rules),
        )


def default_group_rules() -> tuple[Rule, ...]:
    """Neutron's default group: ingress only from members of the group itself, egress open."""
    return (
        Rule(id="ingress-v4-self", direction="ingress", ethertype="IPv4", remote_group=None),
        Rule(id="ingress-v6-self", direction="ingress", ethertype="IPv6", remote_group=None),
        Rule(id="egress-v4", direction="egress", ethertype="IPv4"),
        Rule(id="egress-v6", direction="egress", ethertype="IPv6"),
    )


def default_group(tenant: str = DEFAULT_TENANT, group_id: str = DEFAULT_GROUP) -> SecurityGroup:
    """The tenant's default group (its ingress rules name the group itself as remote)."""
    rules = tuple(
        Rule(id=r.id, direction=r.direction, ethertype=r.ethertype, remote_group=group_id)
        if r.direction == "ingress"
        else r
        for r in default_group_rules()
    )
    return SecurityGroup(
        id=group_id, tenant=tenant, rules=rules, description="default: members talk, egress open"
    )


@dataclass(frozen=True)
class AddressPair:
    """An extra (prefix, MAC) a port may send from (neutron's allowed address pair); a missing
    MAC means the port's own."""

    ip_prefix: IPNetwork
    mac: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ip_prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise _bad("allowed_address_pairs.ip_address", f"{self.ip_prefix!r} is not a prefix")
        if self.mac is not None:
            object.__setattr__(self, "mac", parse_mac("allowed_address_pairs.mac", self.mac))

    def to_json(self) -> dict[str, Any]:
        return {"ip_address": str(self.ip_prefix), "mac_address": self.mac}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AddressPair:
        extra = sorted(set(data) - {"ip_address", "mac_address"})
        if extra:
            raise _bad(f"allowed_address_pairs.{extra[0]}", "unknown field")
        return cls(
            ip_prefix=parse_network("allowed_address_pairs.ip_address", data.get("ip_address", "")),
            mac=data.get("mac_address"),
        )


@dataclass(frozen=True)
class Port:
    """An instance interface as the filter sees it.

    ``device`` is the host end of the interface (the bridge/switch port the filter binds to),
    ``network`` the instance network it is on and ``zone`` that network's conntrack zone (the
    seed's register 6: one zone per network, so overlapping subnets of two networks never share
    connection state). With ``port_security`` off the port is not filtered at all, which is why
    it then may have no groups and no address pairs (neutron refuses both too).
    """

    id: str
    device: str
    network: str
    zone: int
    mac: str
    fixed_ips: tuple[IPAddress, ...] = ()
    allowed_address_pairs: tuple[AddressPair, ...] = ()
    port_security: bool = True
    groups: tuple[str, ...] = ()
    allow_dhcp_server: bool = False
    allow_router_advertisements: bool = False
    tenant: str = DEFAULT_TENANT

    def __post_init__(self) -> None:
        _check_name("port id", self.id, _PORT_RE)
        _check_name("device", self.device, _DEVICE_RE)
        _check_name("network", self.network, _NETWORK_RE)
        _check_name("tenant", self.tenant, _TENANT_RE)
        _check_int("zone", self.zone, ZONE_MIN, ZONE_MAX)
        object.__setattr__(self, "mac", parse_mac("mac", self.mac))
        for flag in ("port_security", "allow_dhcp_server", "allow_router_advertisements"):
            if not isinstance(getattr(self, flag), bool):
                raise _bad(flag, "must be true or false")
        if not isinstance(self.fixed_ips, tuple) or not all(
            isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address) for a in self.fixed_ips
        ):
            raise _bad("fixed_ips", "must be a tuple of IP addresses")
        if len(set(self.fixed_ips)) != len(self.fixed_ips):
            raise _bad("fixed_ips", "an address appears twice")
        if not isinstance(self.allowed_address_pairs, tuple) or not all(
            isinstance(p, AddressPair) for p in self.allowed_address_pairs
        ):
            raise _bad("allowed_address_pairs", "must be a tuple of address pairs")
        if len(self.fixed_ips) + len(self.allowed_address_pairs) > MAX_ADDRESSES_PER_PORT:
            raise _bad("fixed_ips", f"at most {MAX_ADDRESSES_PER_PORT} addresses and pairs")
        if not isinstance(self.groups, tuple):
            raise _bad("groups", "must be a tuple of group ids")
        for group in self.groups:
            _check_name("groups", group, _GROUP_RE)
        if len(set(self.groups)) != len(self.groups):
            raise _bad("groups", "a group appears twice")
        if len(self.groups) > MAX_GROUPS_PER_PORT:
            raise _bad("groups", f"at most {MAX_GROUPS_PER_PORT} groups per port")
        if not self.port_security and self.groups:
            raise _clash("port_security", "a port without port security cannot have groups")
        if not self.port_security and self.allowed_address_pairs:
            raise _clash(
                "port_security", "a port without port security cannot have allowed address pairs"
            )

    def addresses(self) -> tuple[IPNetwork, ...]:
        """What the port's address counts as in a remote group: fixed IPs and pair prefixes."""
        nets: list[IPNetwork] = [ipaddress.ip_network(a) for a in self.fixed_ips]
        nets.extend(p.ip_prefix for p in self.allowed_address_pairs)
        return tuple(nets)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device": self.device,
            "network": self.network,
            "zone": self.zone,
            "mac": self.mac,
            "fixed_ips": [str(a) for a in self.fixed_ips],
            "allowed_address_pairs": [p.to_json() for p in self.allowed_address_pairs],
            "port_security": self.port_security,
            "groups": list(self.groups),
            "allow_dhcp_server": self.allow_dhcp_server,
            "allow_router_advertisements": self.allow_router_advertisements,
            "tenant": self.tenant,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Port:
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise _bad(extra[0], "unknown field")
        fixed = data.get("fixed_ips", [])
        pairs = data.get("allowed_address_pairs", [])
        groups = data.get("groups", [])
        for what, value in (("fixed_ips", fixed), ("allowed_address_pairs", pairs)):
            if not isinstance(value, list | tuple):
                raise _bad(what, "must be a list")
        if not isinstance(groups, list | tuple):
            raise _bad("groups", "must be a list")
        return cls(
            id=data.get("id", ""),
            device=data.get("device", ""),
            network=data.get("network", ""),
            zone=data.get("zone", 0),
            mac=data.get("mac", ""),
            fixed_ips=tuple(parse_address("fixed_ips", a) for a in fixed),
            allowed_address_pairs=tuple(
                AddressPair.from_json(cast(Mapping[str, Any], p)) for p in pairs
            ),
            port_security=data.get("port_security", True),
            groups=tuple(groups),
            allow_dhcp_server=data.get("allow_dhcp_server", False),
            allow_router_advertisements=data.get("allow_router_advertisements", False),
            tenant=data.get("tenant", DEFAULT_TENANT),
        )
