"""The app descriptor (``POST /v1/apps``) and the app instance record the platform keeps.

In the spirit of a MEC AppD (ETSI GS MEC 010-2): the app's name, its tenant, either the address
of its data-plane interface (where FORWARD_DECAPSULATED traffic is delivered) or a ``deploy``
section (the template or image, resources and the two interfaces of the instance the platform
starts for it: seed §4.4.1.1.2), the services it requires and produces (informational in this
slice), and the traffic and DNS rules the platform holds for it. The app can then read those
rules over Mp1 and only activate, deactivate or update them (MEC 011 gives an app no way to
create a rule).

The schema says what one member may be (names, IPv4 addresses as patterns, bounds); what it
cannot say (exactly one of ``deploy.template`` and ``deploy.image``, ``dataAddress`` beside
``deploy``, rule ids given twice, a DNS rule's address of the other ``ipAddressType``) is
:func:`check_descriptor`'s, a 422 before anything is made.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fluidedge.core.jsontypes import matching
from fluidedge.core.patterns import IPV4
from fluidedge.instances.models import ResourceOverrides
from fluidedge.mec.errors import MecUnprocessable
from fluidedge.mec.models import DnsRule, TrafficRule, check_dns_rule

Name = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
]


class AppState(StrEnum):
    """An app instance's life on the platform."""

    INSTANTIATED = "INSTANTIATED"  # created; its rules wait for confirm_ready
    READY = "READY"  # confirm_ready received: its ACTIVE rules are applied
    TERMINATING = "TERMINATING"  # termination notified; waiting for confirm_termination


GroupIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]],
    Field(max_length=16),
]


IPV4_ADDRESS = f"^{IPV4}$"
IPV4_INTERFACE = f"^{IPV4}/(?:3[0-2]|[12]?[0-9])$"  # a length required
Ipv4 = Annotated[
    str,
    Field(json_schema_extra={"pattern": IPV4_ADDRESS}),
    matching(IPV4_ADDRESS, "an IPv4 address (a.b.c.d)"),
]
Ipv4Interface = Annotated[
    str,
    Field(json_schema_extra={"pattern": IPV4_INTERFACE}),
    matching(IPV4_INTERFACE, "an IPv4 address with a prefix length (a.b.c.d/n)"),
]


def _interface(value: str) -> str:
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address with a prefix length") from None
    if iface.version != 4 or "/" not in value:
        raise ValueError(f"{value!r} is not an IPv4 address with a prefix length (a.b.c.d/n)")
    return str(iface)


def _ipv4_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


class DataInterface(BaseModel):
    """The app instance's interface on the tenant's data network (where the TOF delivers)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    network: Name = Field(description="an instance network (/v1/networks) the TOF reaches")
    address: Ipv4Interface = Field(
        description="IPv4 address with prefix length; its address is the app's dataAddress",
        examples=["198.18.3.10/24"],
    )
    gateway: Ipv4 | None = Field(default=None, examples=["198.18.3.1"])
    security_groups: GroupIds | None = Field(
        default=None,
        alias="securityGroups",
        description="default: the platform's data group of the app's tenant (mecd-<tenant>)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _interface(value)

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str | None) -> str | None:
        return _ipv4_or_none(value)


class PlatformInterface(BaseModel):
    """The app instance's interface on the platform network, where Mp1 is served."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    address: Ipv4Interface | None = Field(
        default=None,
        description="IPv4 address with prefix length inside the platform network; default: "
        "the first one free",
    )
    security_groups: GroupIds | None = Field(
        default=None,
        alias="securityGroups",
        description="default: the platform group of the app's tenant (mecp-<tenant>)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _interface(value)


class Deployment(BaseModel):
    """``deploy``: the instance the platform starts for the app (seed §4.4.1.1.2), from
    exactly one of ``template`` and ``image`` (:func:`check_descriptor`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    template: Name | None = Field(
        default=None,
        description="a template (/v1/templates) the app's instance is made from (exactly one "
        "of template and image: 422 otherwise)",
    )
    image: Name | None = Field(
        default=None,
        description="or an image (/v1/images): its command, env and user",
    )
    command: (
        Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=64)] | None
    ) = None
    env: Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=64)] = Field(
        default_factory=dict
    )
    resources: ResourceOverrides = Field(default_factory=ResourceOverrides)
    restart: Literal["no", "always"] | None = Field(
        default=None,
        description='"always": the app\'s instance is made again when its workload exits and '
        "after a reboot (the same id, addresses, token and environment; docs/instances.md, "
        "restart policy); default: the named template's policy (an image's: \"no\")",
    )
    data: DataInterface
    platform: PlatformInterface = Field(default_factory=PlatformInterface)


class AppDescriptor(BaseModel):
    """What ``POST /v1/apps`` takes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: Name
    tenant: Annotated[str, Field(min_length=1, max_length=63)] = "default"
    data_address: Ipv4 | None = Field(
        default=None,
        alias="dataAddress",
        description="IPv4 address of the app's data-plane interface (FORWARD_DECAPSULATED "
        "rules without a dstInterface deliver there); not with deploy (422)",
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
    deploy: Deployment | None = Field(
        default=None,
        description="start an instance for the app, with an interface on the data network "
        "and one on the platform network (its Mp1 token in /.fe/mec/token); without it, the "
        "operator gives dataAddress",
    )
    # Strict: a JSON number (an integer is one), never a boolean or a string.
    graceful_timeout: Annotated[float, Field(ge=0.0, le=300.0, strict=True)] = Field(
        default=10.0,
        alias="gracefulTimeout",
        description="seconds the platform waits for confirm_termination (maxGracefulTimeout)",
    )

    @field_validator("data_address")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        return _ipv4_or_none(value)


def check_descriptor(spec: AppDescriptor) -> None:
    """Raise :class:`MecUnprocessable` (422) for what the descriptor's schema cannot say: the
    members hold one by one, but not together."""
    deploy = spec.deploy
    if deploy is not None and (deploy.template is None) == (deploy.image is None):
        raise MecUnprocessable("deploy: name exactly one of template and image")
    if deploy is not None and spec.data_address is not None:
        raise MecUnprocessable(
            "dataAddress: a deployed app's is its data interface's (deploy.data)"
        )
    for kind, ids in (
        ("trafficRuleId", [r.traffic_rule_id for r in spec.traffic_rules]),
        ("dnsRuleId", [r.dns_rule_id for r in spec.dns_rules]),
    ):
        if len(set(ids)) != len(ids):
            raise MecUnprocessable(f"duplicate {kind} in the descriptor")
    for rule in spec.dns_rules:
        problem = check_dns_rule(rule)
        if problem:
            raise MecUnprocessable(problem)


class AppView(BaseModel):
    """An app instance as the API shows it (never its token's secret)."""

    app_instance_id: str = Field(alias="appInstanceId")
    name: str
    tenant: str
    state: AppState
    data_address: str | None = Field(default=None, alias="dataAddress")
    instance: str | None = Field(
        default=None, description="the instance the platform deployed for it (deploy)"
    )
    platform_address: str | None = Field(
        default=None,
        alias="platformAddress",
        description="its platform interface's address (deploy)",
    )
    mp1_url: str | None = Field(
        default=None, alias="mp1Url", description="where the app reaches Mp1 (deploy)"
    )
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
