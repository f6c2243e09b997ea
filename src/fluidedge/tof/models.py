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
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

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
IPText = Annotated[
    str,
    Field(min_length=2, max_length=45, examples=["198.18.50.1"]),
    AfterValidator(_canonical_ip),
]


class ServiceModel(BaseModel):
    """A service: traffic to ``serviceIP`` from UEs is offloaded to ``applicationIP``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="service")

    name: ServiceName
    serviceIP: IPText  # field names are the seed's Swagger
    applicationIP: IPText

    @model_validator(mode="after")
    def _same_family(self) -> ServiceModel:
        service = ipaddress.ip_address(self.serviceIP)
        application = ipaddress.ip_address(self.applicationIP)
        if service.version != application.version:
            raise ValueError("serviceIP and applicationIP must be of the same IP version")
        return self

    def to_service(self) -> Service:
        return Service(self.name, self.serviceIP, self.applicationIP)


class NewServiceModel(ServiceModel):
    """The request body of POST /service and PUT /service/{name} (``newService``)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="newService")


@dataclass(frozen=True, slots=True)
class Service:
    """A declared service, the unit the data plane is configured with."""

    name: str
    service_ip: str
    application_ip: str

    def to_api(self) -> dict[str, str]:
        return {
            "name": self.name,
            "serviceIP": self.service_ip,
            "applicationIP": self.application_ip,
        }

    @property
    def service_address(self) -> IPAddress:
        return ipaddress.ip_address(self.service_ip)

    @property
    def application_address(self) -> IPAddress:
        return ipaddress.ip_address(self.application_ip)
