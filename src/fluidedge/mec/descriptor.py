"""The app descriptor (``POST /v1/apps``) and the app instance record the platform keeps.

In the spirit of a MEC AppD (ETSI GS MEC 010-2): the app's name, its tenant, the address of
its data-plane interface (where FORWARD_DECAPSULATED traffic is delivered), the services it
requires and produces (informational in this slice), and the traffic and DNS rules the
platform holds for it. The app can then read those rules over Mp1 and only activate,
deactivate or update them (MEC 011 gives an app no way to create a rule).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fluidedge.mec.models import DnsRule, TrafficRule, check_dns_rule

Name = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
]


class AppState(StrEnum):
    """An app instance's life on the platform."""

    INSTANTIATED = "INSTANTIATED"  # created; its rules wait for confirm_ready
    READY = "READY"  # confirm_ready received: its ACTIVE rules are applied
    TERMINATING = "TERMINATING"  # termination notified; waiting for confirm_termination


class AppDescriptor(BaseModel):
    """What ``POST /v1/apps`` takes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: Name
    tenant: Annotated[str, Field(min_length=1, max_length=63)] = "default"
    data_address: str | None = Field(
        default=None,
        alias="dataAddress",
        description="IPv4 address of the app's data-plane interface (FORWARD_DECAPSULATED "
        "rules without a dstInterface deliver there)",
        examples=["10.0.2.10"],
    )
    services_produced: Annotated[
        list[Annotated[str, Field(max_length=256)]], Field(max_length=32)
    ] = Field(default_factory=list, alias="servicesProduced")
    services_required: Annotated[
        list[Annotated[str, Field(max_length=256)]], Field(max_length=32)
    ] = Field(default_factory=list, alias="servicesRequired")
    traffic_rules: Annotated[list[TrafficRule], Field(max_length=64)] = Field(
        default_factory=list, alias="trafficRules"
    )
    dns_rules: Annotated[list[DnsRule], Field(max_length=64)] = Field(
        default_factory=list, alias="dnsRules"
    )
    graceful_timeout: Annotated[float, Field(ge=0.0, le=300.0)] = Field(
        default=10.0,
        alias="gracefulTimeout",
        description="seconds the platform waits for confirm_termination (maxGracefulTimeout)",
    )

    @field_validator("data_address")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None

    @model_validator(mode="after")
    def _rules(self) -> AppDescriptor:
        for kind, ids in (
            ("trafficRuleId", [r.traffic_rule_id for r in self.traffic_rules]),
            ("dnsRuleId", [r.dns_rule_id for r in self.dns_rules]),
        ):
            if len(set(ids)) != len(ids):
                raise ValueError(f"duplicate {kind} in the descriptor")
        for rule in self.dns_rules:
            problem = check_dns_rule(rule)
            if problem:
                raise ValueError(problem)
        return self


class AppView(BaseModel):
    """An app instance as the API shows it (never its token's secret)."""

    app_instance_id: str = Field(alias="appInstanceId")
    name: str
    tenant: str
    state: AppState
    data_address: str | None = Field(default=None, alias="dataAddress")
    token_id: str = Field(alias="tokenId")
    traffic_rules: int = Field(alias="trafficRules", description="how many")
    dns_rules: int = Field(alias="dnsRules", description="how many")
    services: int = Field(description="services it registered over Mp1")
    created: float


class AppTerminated(AppView):
    """The answer to ``DELETE /v1/apps/{id}``: the app as it was, and how it ended."""

    termination_confirmed: bool | None = Field(
        alias="terminationConfirmed",
        description="true: the app confirmed within its graceful timeout; false: the timeout "
        "ran out; null: nobody was subscribed to its termination",
    )


class AppCreated(AppView):
    """The answer to ``POST /v1/apps``: the only time the app's Mp1 token is shown."""

    token: str = Field(description="the app's Mp1 bearer token; shown once")


def record(
    app_id: str, spec: AppDescriptor, token_id: str, token_hash: str, now: float
) -> dict[str, Any]:
    """The stored record of a new app instance (rules are stored beside it, one row each)."""
    return {
        "appInstanceId": app_id,
        "name": spec.name,
        "tenant": spec.tenant,
        "state": AppState.INSTANTIATED.value,
        "dataAddress": spec.data_address,
        "servicesProduced": spec.services_produced,
        "servicesRequired": spec.services_required,
        "gracefulTimeout": spec.graceful_timeout,
        "tokenId": token_id,
        "tokenHash": token_hash,
        "created": now,
    }
