"""The ``onDemand`` part of a TOF service: a template instead of a fixed application IP.

A service with ``onDemand`` has no ``applicationIP``: its instances are created from
``template`` on the first packet (``policy = "shared"``: one instance for every UE;
``"per-ue"``: one instance per UE, at most ``maxInstances``), each with an address taken from
``addressPool`` on the template's interface ``interface`` (default route via ``gateway``).
An instance that saw no traffic for ``idlePause`` seconds (T1) is paused; after ``idleDelete``
seconds paused (T2) it is deleted. Stored as JSON next to the service (tof catalog).
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fluidedge.core.jsontypes import JsonInt  # 1.0 is an integer in JSON (schema-valid)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
IFNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$"
MAX_POOL_HOSTS = 65536

Policy = Literal["shared", "per-ue"]
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"^{_OCTET}(\.{_OCTET}){{3}}$"
_IPV4_POOL = rf"^{_OCTET}(\.{_OCTET}){{3}}/(1[6-9]|2[0-9]|3[0-2])$"


@dataclass(frozen=True, slots=True)
class OnDemand:
    """A validated on-demand specification (the unit the controller works with)."""

    template: str
    policy: Policy
    max_instances: int
    idle_pause: float
    idle_delete: float
    address_pool: str
    interface: str = "eth0"
    gateway: str | None = None

    @property
    def per_ue(self) -> bool:
        return self.policy == "per-ue"

    @property
    def bound(self) -> int:
        """How many instances the service may have at once."""
        return self.max_instances if self.per_ue else 1

    def to_api(self) -> dict[str, object]:
        out: dict[str, object] = {
            "template": self.template,
            "policy": self.policy,
            "maxInstances": self.max_instances,
            "idlePause": self.idle_pause,
            "idleDelete": self.idle_delete,
            "addressPool": self.address_pool,
            "interface": self.interface,
        }
        if self.gateway is not None:
            out["gateway"] = self.gateway
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OnDemand:
        return cls(**json.loads(text))

    def pool_hosts(self) -> Iterator[str]:
        """The pool's usable addresses in order (never the gateway), lazily: a pool may be a
        /16 or larger, and the first free address is usually among the first few."""
        first, last, make = _pool_range(self.address_pool)
        gateway = self.gateway
        for value in range(first, last + 1):
            host = str(make(value))
            if host != gateway:
                yield host


@functools.lru_cache(maxsize=256)
def _pool_range(
    pool: str,
) -> tuple[int, int, type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]]:
    """(first, last usable host as integers, address class) of a pool, parsed once."""
    network = ipaddress.ip_network(pool)
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.num_addresses > 2:  # not /31, /32 (v6 /127, /128): every address is usable
        first += 1
        if network.version == 4:
            last -= 1  # the broadcast address (IPv6 has none; its first is the anycast)
    return first, last, ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address


class OnDemandModel(BaseModel):
    """``onDemand`` in a service body (POST/PUT /service)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="onDemand")

    template: Annotated[str, Field(min_length=1, max_length=63, pattern=NAME_PATTERN)]
    policy: Policy = "shared"
    maxInstances: JsonInt = Field(default=16, ge=1, le=1024)
    idlePause: float = Field(default=30.0, gt=0, le=86400)
    idleDelete: float = Field(default=300.0, ge=0, le=7 * 86400)
    addressPool: str = Field(
        min_length=3,
        max_length=49,
        examples=["198.19.0.64/26"],
        description="addresses the instances get (a network, /16 or longer for IPv4; its "
        "hosts are used; host bits are ignored)",
        json_schema_extra={"pattern": _IPV4_POOL},
    )
    interface: Annotated[str, Field(pattern=IFNAME_PATTERN)] = "eth0"
    gateway: str | None = Field(
        default=None,
        max_length=45,
        examples=["198.19.0.1"],
        description="the instances' default route (never handed out from the pool)",
        json_schema_extra={"pattern": _IPV4},
    )

    # The schema states what it can (IPv4 described; IPv6 accepted, as for serviceIP), so a
    # schema-valid request is a valid one; the rest is resolved, not refused: host bits are
    # dropped, the gateway is never allocated, and instances beyond the pool's size are
    # refused at run time (``refused_address_pool``, counted).
    @model_validator(mode="after")
    def _check(self) -> OnDemandModel:
        if "/" not in self.addressPool:
            raise ValueError("addressPool: a network with its prefix length, e.g. 198.19.0.64/26")
        try:
            network = ipaddress.ip_network(self.addressPool, strict=False)
        except ValueError as exc:
            raise ValueError(f"addressPool: {exc}") from exc
        self.addressPool = str(network)
        hosts = network.num_addresses if network.num_addresses <= 2 else network.num_addresses - 2
        if hosts > MAX_POOL_HOSTS:
            raise ValueError(f"addressPool: at most {MAX_POOL_HOSTS} addresses")
        if self.gateway is not None:
            try:
                gateway = ipaddress.ip_address(self.gateway)
            except ValueError as exc:
                raise ValueError(f"gateway: {exc}") from exc
            if gateway.version != network.version:
                raise ValueError("gateway and addressPool must be of the same IP version")
            self.gateway = str(gateway)
        return self

    def to_ondemand(self) -> OnDemand:
        return OnDemand(
            template=self.template,
            policy=self.policy,
            max_instances=self.maxInstances,
            idle_pause=self.idlePause,
            idle_delete=self.idleDelete,
            address_pool=self.addressPool,
            interface=self.interface,
            gateway=self.gateway,
        )
