"""Mp1's data types (ETSI GS MEC 011 V2.1.1), written from the official OpenAPI documents.

Each model names the schema of ``MecServiceMgmtApi.yaml`` or ``MecAppSupportApi.yaml``
(``components/schemas/<Name>``) it implements; field names, types, enums and required fields
are that schema's. Python attributes are snake case; the wire names are the spec's (aliases),
so FastAPI serialises them by alias. Unknown members are ignored, as the documents do not
forbid them (``additionalProperties`` is not set).

Where the documents leave a field open, our bounds are stricter and say so in the schema we
serve (a port is 0..65535, strings are bounded, a callback is an http(s) URL with a host, a DNS
rule's name and address are a DNS name and an IP address): a request past them is a 400 with
the reason, never a 5xx. What a schema cannot say (an id that differs from the path's, an
address of the other ``ipAddressType``, an ACTIVE rule the TOF cannot express) is the
platform's 422 (:class:`fluidedge.mec.errors.MecUnprocessable`).

An integer member is a JSON integer, and ``2.0`` is one too (JSON Schema counts a number with
no fractional part as an integer): never a boolean or a string.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from fluidedge.core.jsontypes import integral, matching
from fluidedge.core.patterns import IP_ADDRESS, IPV6

Text = Annotated[str, Field(max_length=256)]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


# Integer members are ``StrictInt`` (never a boolean, a string or a fraction) with ``integral``
# before them: after their bounds (``Annotated[StrictInt, Field(...), BeforeValidator(...)]``)
# and outside any ``| None``, so that an error names the member, not the validators.
OptionalInt = Annotated[StrictInt | SkipJsonSchema[None], BeforeValidator(integral)]


# Address patterns: one set for every part (fluidedge.core.patterns).

# A DNS name as the responder matches it: dot-separated labels of 1 to 63 printable ASCII
# characters without spaces or the characters a zone file escapes ("$();@\), a final dot
# allowed. Non-ASCII names are given as their A-labels (xn--...).
_LABEL = r"[!#%&'*+,\-/0-9:<=>?A-Z\[\]^_`a-z{|}~]{1,63}"
DNS_NAME = rf"^(?:{_LABEL}\.)*{_LABEL}\.?$"

# An http(s) URL whose authority has a host: RFC 3986's reg-name characters or a bracketed
# IPv6 address, then an optional port, path, query and fragment.
_REG_NAME = "A-Za-z0-9._~%!$&'()*+,;="  # unreserved and sub-delims (a class's ranges)
CALLBACK = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:[{_REG_NAME}:-]*@)?"
    rf"(?:[{_REG_NAME}-]+|\[{IPV6}\])(?::[0-9]*)?(?:[/?#].*)?$"
)


def _callback(value: str) -> str:
    """What the notifier needs: a scheme it speaks and a host (the pattern implies both)."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


CallbackUri = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2048,
        description="an http:// or https:// URL with a host (a name, an IPv4 address or a "
        "bracketed IPv6 address)",
        examples=["http://10.1.0.5:8080/notify"],
        json_schema_extra={"pattern": CALLBACK},
    ),
]
CheckedCallback = Annotated[
    CallbackUri,
    matching(CALLBACK, "an http:// or https:// URL with a host"),
    AfterValidator(_callback),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        """The documents' optional members are absent or typed, never null (``None`` in our
        schema's Python types only means "absent", and the served schema does not make them
        nullable). Members the type does not define are ignored whatever their value, null
        included: ETSI's receivers ignore unknown attributes."""
        if isinstance(data, dict):
            known = cls._member_names()
            nulls = sorted(str(k) for k, v in data.items() if v is None and k in known)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not allowed (leave it out)")
        return data

    @classmethod
    def _member_names(cls) -> frozenset[str]:
        """The wire names (aliases) and Python names of the type's members."""
        fields = cls.model_fields
        return frozenset(fields) | frozenset(f.alias for f in fields.values() if f.alias)

    def wire(self) -> dict[str, Any]:
        """The JSON document (spec names, absent optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- shared (both documents) --------------------------------------------------------------


class LinkType(_Model):
    """``LinkType``: a hyperlink."""

    href: Annotated[str, Field(max_length=4096)] | SkipJsonSchema[None] = None


class Self(_Model):
    """``Self``: the ``_links`` of a subscription resource."""

    self_: LinkType = Field(alias="self")


class ProblemDetails(_Model):
    """``ProblemDetails`` (IETF RFC 7807): every Mp1 error's body, ``application/problem+json``."""

    type: str | SkipJsonSchema[None] = None
    title: str | SkipJsonSchema[None] = None
    status: int | SkipJsonSchema[None] = None
    detail: str | SkipJsonSchema[None] = None
    instance: str | SkipJsonSchema[None] = None


class SubscriptionLink(_Model):
    """``...SubscriptionLinkList.Subscription``: one subscription in a link list."""

    href: str
    rel: str


class SubscriptionLinks(_Model):
    """``...SubscriptionLinkList.Links``."""

    self_: LinkType = Field(alias="self")
    subscriptions: list[SubscriptionLink] | SkipJsonSchema[None] = None


class SubscriptionLinkList(_Model):
    """``MecServiceMgmtApiSubscriptionLinkList`` / ``MecAppSuptApiSubscriptionLinkList``."""

    links: SubscriptionLinks = Field(alias="_links")


# --- service management (MecServiceMgmtApi.yaml) ------------------------------------------


class ServiceState(StrEnum):
    """``ServiceState``."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class SerializerType(StrEnum):
    """``SerializerType``."""

    JSON = "JSON"
    XML = "XML"
    PROTOBUF3 = "PROTOBUF3"


class LocalityType(StrEnum):
    """``LocalityType``: how far from its producer a service may be found."""

    MEC_SYSTEM = "MEC_SYSTEM"
    MEC_HOST = "MEC_HOST"
    NFVI_POP = "NFVI_POP"
    ZONE = "ZONE"
    ZONE_GROUP = "ZONE_GROUP"
    NFVI_NODE = "NFVI_NODE"


class TransportType(StrEnum):
    """``TransportType``."""

    REST_HTTP = "REST_HTTP"
    MB_TOPIC_BASED = "MB_TOPIC_BASED"
    MB_ROUTING = "MB_ROUTING"
    MB_PUBSUB = "MB_PUBSUB"
    RPC = "RPC"
    RPC_STREAMING = "RPC_STREAMING"
    WEBSOCKET = "WEBSOCKET"


class GrantType(StrEnum):
    """``SecurityInfo.OAuth2Info.GrantType``."""

    OAUTH2_AUTHORIZATION_CODE = "OAUTH2_AUTHORIZATION_CODE"
    OAUTH2_IMPLICIT_GRANT = "OAUTH2_IMPLICIT_GRANT"
    OAUTH2_RESOURCE_OWNER = "OAUTH2_RESOURCE_OWNER"
    OAUTH2_CLIENT_CREDENTIALS = "OAUTH2_CLIENT_CREDENTIALS"


class CategoryRef(_Model):
    """``CategoryRef``: a service category (all four members required)."""

    href: Text
    id: Text
    name: Text
    version: Text


class Address(_Model):
    """``EndPointInfo.Address``: host and port (our bound: a TCP/UDP port number)."""

    host: Annotated[str, Field(min_length=1, max_length=255)]
    port: Annotated[StrictInt, Field(ge=0, le=65535), BeforeValidator(integral)]


class EndPointUris(_Model):
    """``EndPointInfo.Uris``."""

    uris: Annotated[list[Annotated[str, Field(max_length=2048)]], Field(max_length=16)]


class EndPointAddresses(_Model):
    """``EndPointInfo.Addresses``."""

    addresses: Annotated[list[Address], Field(max_length=16)]


class EndPointAlternative(_Model):
    """``EndPointInfo.Alternative``: an endpoint described some other way (kept as given)."""

    alternative: dict[str, Any]


_ENDPOINT_FORMS: tuple[type[_Model], ...] = (EndPointUris, EndPointAddresses, EndPointAlternative)


def _fits(form: type[_Model], value: dict[str, Any]) -> bool:
    try:
        form.model_validate(value)
    except ValidationError:
        return False
    return True


def _one_of(schema: dict[str, Any]) -> None:
    """A union's ``anyOf`` served as the ``oneOf`` the documents give (and the model checks)."""
    if "anyOf" in schema:
        schema["oneOf"] = schema.pop("anyOf")


class OAuth2Info(_Model):
    """``SecurityInfo.OAuth2Info``."""

    grant_types: Annotated[list[GrantType], Field(min_length=1, max_length=4)]
    token_endpoint: Annotated[str, Field(max_length=2048)]


class SecurityInfo(_Model):
    """``SecurityInfo``."""

    o_auth2_info: OAuth2Info | SkipJsonSchema[None] = Field(default=None, alias="oAuth2Info")


class TransportInfo(_Model):
    """``TransportInfo``: how a service is reached (``endpoint`` is one of three forms)."""

    id: Text
    name: Text
    description: Text | SkipJsonSchema[None] = None
    type: TransportType
    protocol: Text
    version: Text
    endpoint: Annotated[
        EndPointUris | EndPointAddresses | EndPointAlternative,
        Field(json_schema_extra=_one_of),
    ]
    security: SecurityInfo
    impl_specific_info: dict[str, Any] | SkipJsonSchema[None] = None

    @field_validator("endpoint", mode="wrap")
    @classmethod
    def _one_form(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """``oneOf`` (the document's, and the schema we serve): an object that is two of the
        forms at once (both ``uris`` and ``addresses``, each valid) is none of them."""
        if isinstance(value, dict):
            fits = [form for form in _ENDPOINT_FORMS if _fits(form, value)]
            if len(fits) > 1:
                raise ValueError("endpoint: exactly one of uris, addresses or alternative")
        return handler(value)


class ServiceInfo(_Model):
    """``ServiceInfo``: a service an app produces. ``serInstanceId`` is the platform's: the
    schema we serve marks it read-only (MEC 011: absent in a registration, which is refused
    with 400 when it carries one; a PUT may repeat the path's)."""

    ser_instance_id: (
        Annotated[
            str,
            Field(
                max_length=256,
                json_schema_extra={
                    "readOnly": True,
                    "description": "assigned by the platform (leave it out of a registration)",
                },
            ),
        ]
        | SkipJsonSchema[None]
    ) = None
    ser_name: Annotated[str, Field(min_length=1, max_length=256)]
    ser_category: CategoryRef | SkipJsonSchema[None] = None
    version: Text
    state: ServiceState
    transport_info: TransportInfo
    serializer: SerializerType
    scope_of_locality: LocalityType | SkipJsonSchema[None] = None
    consumed_local_only: StrictBool | SkipJsonSchema[None] = None
    is_local: StrictBool | SkipJsonSchema[None] = None


class FilteringCriteria(_Model):
    """``SerAvailabilityNotificationSubscription.FilteringCriteria`` (members ANDed)."""

    ser_instance_ids: Annotated[list[Text], Field(max_length=64)] | SkipJsonSchema[None] = None
    ser_names: Annotated[list[Text], Field(max_length=64)] | SkipJsonSchema[None] = None
    ser_categories: Annotated[list[CategoryRef], Field(max_length=64)] | SkipJsonSchema[None] = None
    states: Annotated[list[ServiceState], Field(max_length=2)] | SkipJsonSchema[None] = None
    is_local: StrictBool | SkipJsonSchema[None] = None


class SerAvailabilityNotificationSubscription(_Model):
    """``SerAvailabilityNotificationSubscription``. ``_links`` is the platform's: optional in
    a request (the documents require it in both directions; a client cannot know it yet)."""

    subscription_type: Literal["SerAvailabilityNotificationSubscription"]
    callback_reference: CheckedCallback
    links: Self | SkipJsonSchema[None] = Field(default=None, alias="_links")
    filtering_criteria: FilteringCriteria | SkipJsonSchema[None] = None


class ChangeType(StrEnum):
    """``ServiceAvailabilityNotification.ChangeType``."""

    ADDED = "ADDED"
    REMOVED = "REMOVED"
    STATE_CHANGED = "STATE_CHANGED"
    ATTRIBUTES_CHANGED = "ATTRIBUTES_CHANGED"


class ServiceReference(_Model):
    """``ServiceAvailabilityNotification.ServiceReferences``."""

    link: LinkType | SkipJsonSchema[None] = None
    ser_name: str
    ser_instance_id: str
    state: ServiceState
    change_type: ChangeType


class SubscriptionRef(_Model):
    """``Subscription``: the ``_links`` of a notification."""

    subscription: LinkType


class ServiceAvailabilityNotification(_Model):
    """``ServiceAvailabilityNotification``: POSTed to a subscriber's ``callbackReference``."""

    # The official document's text for this member: "Shall be set to
    # SerAvailabilityNotificationSubscription." (taken literally).
    notification_type: str = "SerAvailabilityNotificationSubscription"
    service_references: list[ServiceReference]
    links: SubscriptionRef = Field(alias="_links")


# --- application support (MecAppSupportApi.yaml) ------------------------------------------


class AppReadyConfirmation(_Model):
    """``AppReadyConfirmation``: ``indication`` READY (the only value MEC 011 defines)."""

    indication: Literal["READY"]


class OperationActionType(StrEnum):
    """``OperationActionType``."""

    STOPPING = "STOPPING"
    TERMINATING = "TERMINATING"


class AppTerminationConfirmation(_Model):
    """``AppTerminationConfirmation``."""

    operation_action: OperationActionType


class AppTerminationNotificationSubscription(_Model):
    """``AppTerminationNotificationSubscription`` (``_links`` optional in a request, as above)."""

    subscription_type: Literal["AppTerminationNotificationSubscription"]
    callback_reference: CheckedCallback
    links: Self | SkipJsonSchema[None] = Field(default=None, alias="_links")
    app_instance_id: Id


class TerminationLinks(_Model):
    """``AppTerminationNotification.Links``."""

    subscription: LinkType
    confirm_termination: LinkType | SkipJsonSchema[None] = None


class AppTerminationNotification(_Model):
    """``AppTerminationNotification``: POSTed before the platform terminates an app."""

    notification_type: Literal["AppTerminationNotification"] = "AppTerminationNotification"
    operation_action: OperationActionType
    max_graceful_timeout: int
    links: TerminationLinks = Field(alias="_links")


class TimeSourceStatus(StrEnum):
    """``TimeSourceStatus``."""

    TRACEABLE = "TRACEABLE"
    NONTRACEABLE = "NONTRACEABLE"


class CurrentTime(_Model):
    """``CurrentTime``."""

    seconds: int
    nano_seconds: int
    time_source_status: TimeSourceStatus


class TimeStamp(_Model):
    """``TimingCaps.TimeStamp``."""

    seconds: int
    nano_seconds: int


class TimingCaps(_Model):
    """``TimingCaps`` (no NTP servers or PTP masters are offered: members left out)."""

    time_stamp: TimeStamp | SkipJsonSchema[None] = None


class RuleState(StrEnum):
    """``TrafficRule.State`` / ``DnsRule.State``."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class FilterType(StrEnum):
    """``TrafficRule.FilterType``."""

    FLOW = "FLOW"
    PACKET = "PACKET"


class Action(StrEnum):
    """``TrafficRule.Action``."""

    DROP = "DROP"
    FORWARD_DECAPSULATED = "FORWARD_DECAPSULATED"
    FORWARD_ENCAPSULATED = "FORWARD_ENCAPSULATED"
    PASSTHROUGH = "PASSTHROUGH"
    DUPLICATE_DECAPSULATED = "DUPLICATE_DECAPSULATED"
    DUPLICATE_ENCAPSULATED = "DUPLICATE_ENCAPSULATED"


Strings = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)]


class TrafficFilter(_Model):
    """``TrafficFilter``: the traffic a rule applies to (members ANDed)."""

    src_address: Strings | SkipJsonSchema[None] = None
    dst_address: Strings | SkipJsonSchema[None] = None
    src_port: Strings | SkipJsonSchema[None] = None
    dst_port: Strings | SkipJsonSchema[None] = None
    protocol: Strings | SkipJsonSchema[None] = None
    token: Strings | SkipJsonSchema[None] = None
    src_tunnel_address: Strings | SkipJsonSchema[None] = None
    tgt_tunnel_address: Strings | SkipJsonSchema[None] = None
    src_tunnel_port: Strings | SkipJsonSchema[None] = None
    dst_tunnel_port: Strings | SkipJsonSchema[None] = None
    q_ci: OptionalInt = Field(default=None, alias="qCI")
    d_scp: OptionalInt = Field(default=None, alias="dSCP")
    t_c: OptionalInt = Field(default=None, alias="tC")


class InterfaceType(StrEnum):
    """``DestinationInterface.InterfaceType``."""

    TUNNEL = "TUNNEL"
    MAC = "MAC"
    IP = "IP"


class TunnelType(StrEnum):
    """``TunnelInfo.TunnelType``."""

    GTP_U = "GTP_U"
    GRE = "GRE"


class TunnelInfo(_Model):
    """``TunnelInfo``."""

    tunnel_type: TunnelType
    tunnel_dst_address: Text | SkipJsonSchema[None] = None
    tunnel_src_address: Text | SkipJsonSchema[None] = None


class DestinationInterface(_Model):
    """``DestinationInterface``: where FORWARD_* sends matching traffic."""

    interface_type: InterfaceType
    tunnel_info: TunnelInfo | SkipJsonSchema[None] = None
    src_mac_address: Text | SkipJsonSchema[None] = None
    dst_mac_address: Text | SkipJsonSchema[None] = None
    dst_ip_address: Text | SkipJsonSchema[None] = None


class TrafficRule(_Model):
    """``TrafficRule``. Priority: MEC 011 says 0 is the highest and 255 the lowest."""

    traffic_rule_id: Id
    filter_type: FilterType
    priority: Annotated[StrictInt, Field(ge=0, le=255), BeforeValidator(integral)]
    traffic_filter: Annotated[list[TrafficFilter], Field(max_length=16)]
    action: Action
    dst_interface: DestinationInterface | SkipJsonSchema[None] = None
    state: RuleState


class IpAddressType(StrEnum):
    """``DnsRule.IpAddressType``."""

    IP_V6 = "IP_V6"
    IP_V4 = "IP_V4"


class DnsRule(_Model):
    """``DnsRule``: a name the platform's DNS answers with an address while ACTIVE."""

    dns_rule_id: Id
    domain_name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            description="a DNS name: labels of 1 to 63 printable ASCII characters (no spaces, "
            'none of "$();@\\), a final dot allowed',
            json_schema_extra={"pattern": DNS_NAME},
        ),
        matching(DNS_NAME, "a DNS name (labels of 1 to 63 printable ASCII characters)"),
    ]
    ip_address_type: IpAddressType
    ip_address: Annotated[
        str,
        Field(
            max_length=45,
            description="an IPv4 or IPv6 address, of the rule's ipAddressType (422 otherwise)",
            json_schema_extra={"pattern": IP_ADDRESS},
        ),
        matching(IP_ADDRESS, "an IPv4 or IPv6 address"),
    ]
    ttl: Annotated[
        Annotated[StrictInt, Field(ge=0, le=2147483647)] | SkipJsonSchema[None],
        BeforeValidator(integral),
    ] = None
    state: RuleState


def check_dns_rule(rule: DnsRule) -> str | None:
    """Why ``rule``'s name is not a DNS name or its address does not fit its type (None when
    both are right). The name's and the address's syntax are also the schema's patterns, so
    for a request only the address's version against ``ipAddressType`` is left to this."""
    labels = rule.domain_name.rstrip(".").split(".")
    if any(not 0 < len(label.encode()) <= 63 for label in labels) or any(
        c.isspace() or c in '\\()";@$' or not c.isprintable() for c in rule.domain_name
    ):
        return (
            f"dnsRule {rule.dns_rule_id}: domainName {rule.domain_name!r} is not a DNS name "
            "(labels of 1 to 63 characters, no spaces)"
        )
    try:
        address = ipaddress.ip_address(rule.ip_address)
    except ValueError:
        return f"dnsRule {rule.dns_rule_id}: ipAddress {rule.ip_address!r} is not an IP address"
    want = 4 if rule.ip_address_type is IpAddressType.IP_V4 else 6
    if address.version != want:
        return (
            f"dnsRule {rule.dns_rule_id}: ipAddress is IPv{address.version}, "
            f"ipAddressType IPv{want}"
        )
    return None
