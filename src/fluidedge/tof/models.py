"""The Service API's data model, exactly the seed's Swagger (§4.3.4.1), validated strictly.

``newService``/``service`` both carry ``name``, ``serviceIP`` and ``applicationIP`` (all
required strings). We add what the Swagger leaves implicit: names use a safe charset and length,
addresses are parsed strictly (no leading zeros, no zone index, no prefix), must be unicast, and
the two addresses of a service must be of the same family. They may be equal: the app answers
at the address the UEs already use, and the TOF decapsulates and re-encapsulates without any
address rewrite (operators often offload that way). Unknown fields are
rejected so that a typo (``serviceIp``) is a 400, not a silently ignored field. Addresses are
stored in their canonical text form so that ``2001:DB8::1`` and ``2001:db8::1`` are one key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from fluidedge.tof.superfluid.model import OnDemand, OnDemandModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_unicast(value: str) -> IPAddress:
    """Parse ``value`` as one unicast IPv4/IPv6 host address or raise ``ValueError``."""
    if "%" in value or "/" in value or value != value.strip():
        raise ValueError(f"{value!r} is not a plain IP address")
    address = ipaddress.ip_address(value)
    if address.is_multicast or address.is_unspecified:
        raise ValueError(f"{value!r} is not a unicast address")
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    ):
        raise ValueError(f"{value!r} is the broadcast address")
    return address


def _canonical_ip(value: str) -> str:
    return str(parse_unicast(value))


def _valid_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError("name must be 1-63 characters of A-Z a-z 0-9 _ . - starting alphanumeric")
    return value


ServiceName = Annotated[
    str,
    Field(min_length=1, max_length=63, pattern=NAME_PATTERN, examples=["video-cache"]),
    AfterValidator(_valid_name),
]
# The schema describes IPv4, the seed's examples and the common case: a dotted quad that is not
# multicast, 0.0.0.0 or 255.255.255.255 (what parse_unicast accepts), so that a generated
# schema-valid request is a valid one. IPv6 is accepted too (same family on both sides), but
# not described: the same-family rule and every IPv6 text form, stated in JSON Schema, make
# schema-driven generators crawl.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_ANY = rf"^{_OCTET}(\.{_OCTET}){{3}}$"  # any dotted quad (a filter, not an endpoint)
_IPV4_UNICAST = rf"^(25[0-5]|24[0-9]|22[0-3]|2[01][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.{_OCTET}){{3}}$"
IPV4_SCHEMA: JsonDict = {
    "pattern": _IPV4_UNICAST,
    "not": {"enum": ["0.0.0.0", "255.255.255.255"]},  # noqa: S104 (a value refused, not a bind)
}
IPText = Annotated[
    str,
    Field(
        min_length=2,
        max_length=45,
        examples=["198.18.50.1"],
        description="a unicast IPv4 address (or IPv6, the same family on both sides)",
        json_schema_extra=IPV4_SCHEMA,
    ),
    AfterValidator(_canonical_ip),
]


# Exactly one of the two, non-null (an explicit null counts as absent, as the model treats it).
_HAS_APP: JsonDict = {
    "required": ["applicationIP"],
    "properties": {"applicationIP": {"type": "string"}},
}
_HAS_ONDEMAND: JsonDict = {"required": ["onDemand"], "properties": {"onDemand": {"type": "object"}}}
_ONE_TARGET: JsonDict = {
    "oneOf": [
        {**_HAS_APP, "not": _HAS_ONDEMAND},
        {**_HAS_ONDEMAND, "not": _HAS_APP},
    ]
}


class ServiceModel(BaseModel):
    """A service: traffic to ``serviceIP`` from UEs is offloaded to ``applicationIP``, or, with
    ``onDemand`` instead, to instances of a template created on demand (docs/superfluid.md)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, title="service", json_schema_extra=_ONE_TARGET
    )

    name: ServiceName
    serviceIP: IPText  # field names are the seed's Swagger
    applicationIP: IPText | None = None
    onDemand: OnDemandModel | None = None

    @model_validator(mode="after")
    def _same_family(self) -> ServiceModel:
        service = ipaddress.ip_address(self.serviceIP)
        if (self.applicationIP is None) == (self.onDemand is None):
            raise ValueError("give exactly one of applicationIP and onDemand")
        if self.onDemand is not None:
            pool = ipaddress.ip_network(self.onDemand.addressPool)
            if pool.version != service.version:
                raise ValueError(
                    "serviceIP and onDemand.addressPool must be of the same IP version"
                )
            return self
        application = ipaddress.ip_address(self.applicationIP or "")
        if service.version != application.version:
            raise ValueError("serviceIP and applicationIP must be of the same IP version")
        return self

    def to_service(self) -> Service:
        if self.onDemand is not None:
            # No application IP: the unspecified address of the family, which a data plane
            # that reads it (the fast path's kernel map) never matches (docs/superfluid.md).
            unspecified = "0.0.0.0" if "." in self.serviceIP else "::"  # noqa: S104
            return Service(self.name, self.serviceIP, unspecified, self.onDemand.to_ondemand())
        return Service(self.name, self.serviceIP, self.applicationIP or "")


class MatchModel(BaseModel):
    """A classified service's match (read-only: set by the ME platform's traffic rules)."""

    model_config = ConfigDict(title="serviceMatch")

    protocols: list[int]
    ports: list[list[int]]
    priority: int
    sources: list[str] = Field(default_factory=list)
    sourcePorts: list[list[int]] = Field(default_factory=list)


class ServiceView(ServiceModel):
    """A service as the API shows it: a classified one with its ``match`` and ``action``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="serviceView")

    match: MatchModel | None = None
    action: str | None = None


class NewServiceModel(ServiceModel):
    """The request body of POST /service and PUT /service/{name} (``newService``)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="newService")


# What a classified service does with the uplink packets it matches (docs/tof.md,
# "Classified services"): offload them (decapsulate, NAT to the application, as a plain
# service), drop them, pass them to the core (an exception to a lower-priority rule), or
# duplicate them (the original goes on to the core, a decapsulated, NATed copy to the app,
# whose answers to the copy are discarded). The encapsulated two hand the app the tunnel's
# packet itself (its GTP-U header and T-PDU, in a UDP datagram to the app's port 2152): in
# place of the core (forward_encapsulated) or as a copy (duplicate_encapsulated).
OFFLOAD = "offload"
DROP = "drop"
PASS = "pass"  # noqa: S105 (an action, not a secret)
DUPLICATE = "duplicate"
FORWARD_ENCAPSULATED = "forward_encapsulated"
DUPLICATE_ENCAPSULATED = "duplicate_encapsulated"
ACTIONS = (OFFLOAD, DROP, PASS, DUPLICATE, FORWARD_ENCAPSULATED, DUPLICATE_ENCAPSULATED)
PORT_PROTOCOLS = frozenset({6, 17, 132})  # TCP, UDP, SCTP: the protocols with ports


def _in_ranges(port: int | None, ranges: tuple[tuple[int, int], ...]) -> bool:
    if port is None:
        return False
    for lo, hi in ranges:  # noqa: SIM110 (per packet: a loop, not any(<generator>))
        if lo <= port <= hi:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Match:
    """The classification of a service beyond its service IP (the inner packet's protocol,
    destination port, source prefix and source port), and its order among the classified
    services of one service IP (``priority``: lower first, then the name). Empty members match
    everything. In an uplink packet the source is the UE's side: ``sources`` are prefixes of
    UE addresses (``10.45.0.0/16``), ``source_ports`` the UE's ports."""

    protocols: tuple[int, ...] = ()  # IP protocol numbers (6 TCP, 17 UDP, 1 ICMP...)
    ports: tuple[tuple[int, int], ...] = ()  # destination port ranges, both ends included
    priority: int = 0
    sources: tuple[str, ...] = ()  # source prefixes, canonical CIDR text
    source_ports: tuple[tuple[int, int], ...] = ()  # source port ranges, both ends included
    # (network as an int, mask, address length in bytes) per source: the per-packet test
    _nets: tuple[tuple[int, int, int], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if any(not 0 <= p <= 255 for p in self.protocols):
            raise ValueError("a protocol is a number 0..255")
        for what, ranges in (("a port", self.ports), ("a source port", self.source_ports)):
            if any(not 0 <= lo <= hi <= 65535 for lo, hi in ranges):
                raise ValueError(f"{what} range is lo..hi within 0..65535")
        ported = self.ports or self.source_ports
        if ported and self.protocols and not set(self.protocols) <= PORT_PROTOCOLS:
            raise ValueError("ports need protocols that have them (TCP 6, UDP 17, SCTP 132)")
        if not 0 <= self.priority <= 65535:
            raise ValueError("priority is 0..65535")
        nets = []
        canonical = []
        for text in self.sources:
            try:
                net = ipaddress.ip_network(text, strict=True)
            except ValueError:
                raise ValueError(
                    f"source {text!r} is not an address or a prefix (host bits must be zero)"
                ) from None
            canonical.append(str(net))
            nets.append((int(net.network_address), int(net.netmask), net.max_prefixlen // 8))
        if len({v for _, _, v in nets}) > 1:
            raise ValueError("sources must all be IPv4 or all IPv6")
        object.__setattr__(self, "sources", tuple(canonical))
        object.__setattr__(self, "_nets", tuple(nets))

    @property
    def source_version(self) -> int | None:
        """4 or 6 when the match has sources, else None."""
        return (4 if self._nets[0][2] == 4 else 6) if self._nets else None

    def matches(
        self,
        protocol: int | None,
        port: int | None,
        source: bytes = b"",
        source_port: int | None = None,
    ) -> bool:
        """Whether an inner packet of ``protocol`` from ``source`` (packed address) and
        ``source_port`` to ``port`` (a port None: none, e.g. ICMP or a non-first fragment) is
        this match's."""
        # Plain loops, not any(<generator>): this runs per packet of a classified address.
        if self.protocols and protocol not in self.protocols:
            return False
        if self.ports and not _in_ranges(port, self.ports):
            return False
        if self._nets:
            value = int.from_bytes(source, "big")
            size = len(source)
            for net, mask, length in self._nets:
                if length == size and value & mask == net:
                    break
            else:
                return False
        return not self.source_ports or _in_ranges(source_port, self.source_ports)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocols": list(self.protocols),
            "ports": [[lo, hi] for lo, hi in self.ports],
            "priority": self.priority,
        }
        if self.sources:
            out["sources"] = list(self.sources)
        if self.source_ports:
            out["sourcePorts"] = [[lo, hi] for lo, hi in self.source_ports]
        return out

    @classmethod
    def from_api(cls, doc: Mapping[str, Any]) -> Match:
        return cls(
            tuple(int(p) for p in doc.get("protocols", ())),
            tuple((int(lo), int(hi)) for lo, hi in doc.get("ports", ())),
            int(doc.get("priority", 0)),
            tuple(str(s) for s in doc.get("sources", ())),
            tuple((int(lo), int(hi)) for lo, hi in doc.get("sourcePorts", ())),
        )


@dataclass(frozen=True, slots=True)
class Service:
    """A declared service, the unit the data plane is configured with.

    A plain service (``match`` None, action :data:`OFFLOAD`) owns its service IP: every uplink
    packet to it is offloaded. A classified one (``match`` given) applies ``action`` only to
    the packets its match takes; several classified services may share a service IP, tried
    in their match's order, and a packet none of them takes goes on to the core.
    """

    name: str
    service_ip: str
    application_ip: str  # 0.0.0.0 or :: for an on-demand service
    ondemand: OnDemand | None = None
    match: Match | None = None
    action: str = OFFLOAD

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action {self.action!r} is not one of {', '.join(ACTIONS)}")
        if self.match is None and self.action != OFFLOAD:
            raise ValueError(f"action {self.action!r} needs a match (a classified service)")
        if self.match is not None and self.ondemand is not None:
            raise ValueError("an on-demand service cannot be classified (no match)")
        version = self.match.source_version if self.match is not None else None
        if version is not None and version != ipaddress.ip_address(self.service_ip).version:
            raise ValueError("the match's sources and serviceIP must be of the same IP version")

    @property
    def classified(self) -> bool:
        return self.match is not None

    def to_api(self) -> dict[str, Any]:
        if self.ondemand is not None:
            return {
                "name": self.name,
                "serviceIP": self.service_ip,
                "onDemand": self.ondemand.to_api(),
            }
        out: dict[str, Any] = {
            "name": self.name,
            "serviceIP": self.service_ip,
            "applicationIP": self.application_ip,
        }
        if self.match is not None:
            out["match"] = self.match.to_api()
            out["action"] = self.action
        return out

    @property
    def service_address(self) -> IPAddress:
        return ipaddress.ip_address(self.service_ip)

    @property
    def application_address(self) -> IPAddress:
        return ipaddress.ip_address(self.application_ip)
