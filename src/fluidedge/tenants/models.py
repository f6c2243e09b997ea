"""API models of tenants, their quotas and tokens (strict: unknown fields are a 400).

A tenant's name is short and has no hyphen: the names of everything a tenant owns start with
``<tenant>-`` (:func:`owned_prefix`), so that two tenants' names never collide and a create can
never answer 409 because *another* tenant holds a name (that would reveal it exists).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fluidedge.core.jsontypes import JsonInt
from fluidedge.linux.capabilities import KNOWN_CAPABILITIES

TENANT_PATTERN = r"^[a-z][a-z0-9]{0,7}$"
TenantName = Annotated[
    str, Field(pattern=TENANT_PATTERN, description="tenant name: a-z then a-z0-9, <= 8 chars")
]


def owned_prefix(tenant: str) -> str:
    """What the names of ``tenant``'s resources (and bridges) start with."""
    return f"{tenant}-"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Quota(_Strict):
    """What one tenant's instances may hold at once, in all (checked at admission)."""

    instances: JsonInt = Field(default=16, ge=0, le=100_000, description="instances at once")
    cpus: float = Field(
        default=4.0, ge=0, le=1024, description="sum of the instances' CPU caps (cpu_limit)"
    )
    memory_mb: JsonInt = Field(default=4096, ge=0, le=1 << 30, description="sum of memory limits")
    pids: JsonInt = Field(default=2048, ge=0, le=1 << 22, description="sum of pids limits")
    capabilities: list[
        Annotated[str, Field(json_schema_extra={"enum": sorted(KNOWN_CAPABILITIES)})]
    ] = Field(
        default_factory=list,
        max_length=len(KNOWN_CAPABILITIES),
        description="capabilities the tenant's templates may ask for (none by default)",
    )

    @field_validator("capabilities")
    @classmethod
    def _caps(cls, value: list[str]) -> list[str]:
        for cap in value:
            if cap not in KNOWN_CAPABILITIES:
                raise ValueError(f"unknown capability {cap!r}")
        return sorted(set(value))


RESERVED_NAMES = frozenset({"default"})  # the admin's owner value in groups, chains, MEC


class TenantCreate(_Strict):
    """``POST /v1/tenants``: the quota defaults to ``[admission] default_quota``.

    ``default`` is reserved: security groups, chains and the ME platform record the admin's
    objects as owned by ``default``, so a tenant of that name would see and change them.
    """

    name: TenantName = Field(json_schema_extra={"not": {"const": "default"}})

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"tenant name {value!r} is reserved (it means the admin)")
        return value

    description: str = Field(default="", max_length=1024)
    quota: Quota | None = None


class TenantUpdate(_Strict):
    """``PATCH /v1/tenants/{name}``: fields given replace the stored ones."""

    description: str | None = Field(default=None, max_length=1024)
    quota: Quota | None = None


class Usage(BaseModel):
    """What a tenant's instances hold now (the quota's units)."""

    instances: int = 0
    cpus: float = 0.0
    memory_mb: int = 0
    pids: int = 0


class Owned(BaseModel):
    instances: list[str] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    other: dict[str, list[str]] = Field(
        default_factory=dict, description="other kinds (security groups...), by kind"
    )


class TenantView(BaseModel):
    name: str
    description: str
    quota: Quota
    created_at: float
    tokens: int = Field(description="live tokens")
    usage: Usage = Field(default_factory=Usage)
    owns: Owned = Field(default_factory=Owned)


class TokenCreate(_Strict):
    description: str = Field(default="", max_length=256)


class TokenView(BaseModel):
    id: str
    tenant: str
    description: str
    created_at: float


class TokenCreated(TokenView):
    token: str = Field(description="the bearer token: shown once, only its hash is stored")


class WhoAmI(BaseModel):
    """``GET /v1/whoami``: the caller's principal, and its tenant's quota and usage."""

    principal: str = Field(description="admin, tenant or anonymous")
    tenant: str | None = None
    quota: Quota | None = None
    usage: Usage | None = None
