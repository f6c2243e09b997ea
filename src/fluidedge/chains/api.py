"""REST routes of the chain part (under ``/v1/chains``), networking-sfc's four resources.

``/v1/chains`` (port chains), ``/v1/chains/port-pairs``, ``/v1/chains/port-pair-groups`` and
``/v1/chains/flow-classifiers``: list, create (201; 409 if the id exists), show, replace (PUT:
the whole object; its id, tenant and chain number stay) and delete (409 while another object
uses it). Bodies are strict pydantic models whose schema states every rule a single field
obeys (names, item patterns, distinct items, prefixes, protocols; no coercion: ``0`` is not
``false``), so a body the served schema refuses is a 400 naming the field and one it accepts
is never a 400. What it cannot state is a 422 (:class:`~fluidedge.chains.errors.
ChainUnprocessable`: a classifier's fields that contradict each other, a firewall rule nft
refuses, a route of a part the daemon does not run), a 404 or a 409 about other objects.

A chain's id is never one of the collections beside ``/v1/chains/{id}``
(:data:`RESERVED_CHAIN_IDS`): such a chain could be created but never read.

``PUT``/``GET /v1/chains/firewalls/{instance}/rules`` replace the rules of a running vFirewall
instance in one nftables transaction, and show what its kernel holds (:mod:`.firewall`).

``POST /v1/chains/function-templates`` registers the template of a built-in function
(counter, firewall, router: :mod:`fluidedge.chains.functions`) with the instances part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from fluidedge.chains import functions
from fluidedge.chains.errors import ChainUnprocessable
from fluidedge.chains.firewall import LiveFirewalls
from fluidedge.chains.functions import RULE_PATTERN
from fluidedge.chains.model import (
    ID_PATTERN,
    MAX_CLASSIFIERS,
    MAX_DESCRIPTION,
    MAX_GROUPS,
    MAX_MEMBERS,
    PORT_PATTERN,
    PREFIX_PATTERN,
    PROTOCOL_PATTERN,
    TOF_SERVICE_PATTERN,
    FunctionKind,
)
from fluidedge.chains.scoping import ChainScope
from fluidedge.chains.service import ChainService
from fluidedge.core.jsontypes import JsonInt, bounds, distinct, matching, unreserved
from fluidedge.core.openapi import error_responses
from fluidedge.tenants.errors import Forbidden
from fluidedge.tenants.scope import ADMIN, Principal, principal_of

# Without a scope (no tenants part: a router built for tests or tools), every caller is the
# admin; the daemon's edge still asks a token of every change.
_NO_TENANTS = ChainScope(lambda port: None, lambda name: None)


# The segments under /v1/chains that are routes of their own. A chain with one of these ids
# could be created but never read: GET /v1/chains/port-pairs lists the port pairs, and the
# edge answers a PUT or DELETE there with a 405 (the most specific path wins).
RESERVED_CHAIN_IDS = (
    "port-pairs",
    "port-pair-groups",
    "flow-classifiers",
    "function-templates",
    "firewalls",
)
# The chain id's pattern as the schema states it: ID_PATTERN without the reserved names. The
# lookahead is ECMA-262 (the schema's dialect) but not pydantic's Rust regex, so validation
# checks ID_PATTERN and then the names (_UNRESERVED); a unit test holds the two equal.
# (The names go in unescaped: ``-`` is literal there, and an escaped one is an error in
# ECMA-262's unicode mode.)
CHAIN_ID_PATTERN = f"^(?!(?:{'|'.join(RESERVED_CHAIN_IDS)})$)" + ID_PATTERN.removeprefix("^")
_PROTOCOL_RE = re.compile(PROTOCOL_PATTERN)


_UNRESERVED = unreserved(
    RESERVED_CHAIN_IDS,
    "{value!r} is reserved: /v1/chains/{value} is another route (a chain of that id could "
    "never be read)",
)


def _protocol(value: str | int | None) -> str | int | None:
    # One check over the union (rather than constraints on each member) so that an error
    # names the field, not a member of the union.
    if isinstance(value, str) and not _PROTOCOL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a protocol name, any, or a number 0-255")
    if isinstance(value, int) and not 0 <= value <= 255:
        raise ValueError(f"{value} is not a protocol number 0-255")
    return value


_PORT, _PORT_SCHEMA = bounds(0, 65535)
_CHAIN, _CHAIN_SCHEMA = bounds(1, 255)
PortBound = Annotated[JsonInt, _PORT, _PORT_SCHEMA]
ChainNumber = Annotated[JsonInt, _CHAIN, _CHAIN_SCHEMA]


class _Strict(BaseModel):
    """No extra field, no coercion (``0`` is not ``false``, ``"5"`` not ``5``): what the
    schema calls a boolean or an integer is one."""

    model_config = ConfigDict(extra="forbid", strict=True)


Name = Annotated[str, Field(pattern=ID_PATTERN)]
# Object ids, each once (``uniqueItems``: the model refuses a repeated one).
Names = Annotated[list[Name], distinct("name")]
_DISTINCT: dict[str, Any] = {"uniqueItems": True}
Protocol = Annotated[
    str | JsonInt | None,
    AfterValidator(_protocol),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PROTOCOL_PATTERN},
                {"type": "integer", "minimum": 0, "maximum": 255},
                {"type": "null"},
            ]
        }
    ),
]
Prefix = Annotated[
    str,
    Field(max_length=64, json_schema_extra={"pattern": PREFIX_PATTERN}),
    matching(PREFIX_PATTERN, "an IP prefix (an address, or address/length)"),
]
_PREFIX = (
    "an IPv4 or IPv6 prefix: an address (a host) or address/length, host bits cleared; of the "
    "classifier's ethertype (another family is a 422)"
)
Rule = Annotated[str, Field(pattern=RULE_PATTERN)]
_RULES = (
    "nftables rule statements, in order (one statement each; braces only as sets, which "
    "must nest: one that does not, or a rule nft refuses, is a 422)"
)


class PortPairBody(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    ingress: str = Field(pattern=PORT_PATTERN, description="switch port (host end of a veth)")
    egress: str | None = Field(
        default=None, pattern=PORT_PATTERN, description="absent: one-armed (= ingress)"
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    kind: FunctionKind = Field(
        default="transparent",
        description="transparent (bump in the wire) or routed (L3: packets are addressed to "
        "the function's port MAC, it routes them)",
    )


class PortPairGroupBody(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    port_pairs: Names = Field(
        default_factory=list, max_length=MAX_MEMBERS, json_schema_extra=_DISTINCT
    )
    tap_enabled: bool = Field(
        default=False,
        description="a passive tap: its function gets a copy of each packet, the chain goes on "
        "without it (a mirror); never holds traffic up",
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class FlowClassifierBody(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    logical_source_port: str = Field(pattern=PORT_PATTERN)
    logical_destination_port: str = Field(pattern=PORT_PATTERN)
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    protocol: Protocol = Field(
        default=None,
        description="tcp, udp, sctp, icmp, icmpv6 (ipv6-icmp), dccp, udplite (any case), any "
        "or empty (any), or a number 0-255; icmpv6 needs ethertype IPv6 (a 422 otherwise)",
    )
    source_ip_prefix: Prefix | None = Field(default=None, description=_PREFIX)
    destination_ip_prefix: Prefix | None = Field(default=None, description=_PREFIX)
    source_port_range_min: PortBound | None = None
    source_port_range_max: PortBound | None = None
    destination_port_range_min: PortBound | None = None
    destination_port_range_max: PortBound | None = None
    tof_service: str | None = Field(
        default=None,
        pattern=TOF_SERVICE_PATTERN,
        description="a TOF service: its offloaded traffic (the source port is the TOF's apps "
        "side; the destination prefix is the service's, not given here: both is a 422)",
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class PortChainBody(_Strict):
    id: Annotated[str, _UNRESERVED] = Field(
        pattern=ID_PATTERN,
        json_schema_extra={"pattern": CHAIN_ID_PATTERN},
        description="not one of the collections beside /v1/chains/{id}: "
        + ", ".join(RESERVED_CHAIN_IDS),
    )
    port_pair_groups: Names = Field(
        min_length=1, max_length=MAX_GROUPS, json_schema_extra=_DISTINCT
    )
    flow_classifiers: Names = Field(
        default_factory=list, max_length=MAX_CLASSIFIERS, json_schema_extra=_DISTINCT
    )
    chain_id: ChainNumber | None = Field(default=None, description="absent: allocated")
    symmetric: bool = True
    failure_policy: Literal["open", "closed"] = "closed"
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


def _responses(*codes: int, unprocessable: str = "") -> dict[int | str, dict[str, Any]]:
    """``error_responses`` of ``codes``, and a 422 saying what this route refuses with it."""
    if not unprocessable:
        return error_responses(*codes)
    return error_responses(*codes, 422, why={422: unprocessable})


_CLASSIFIER_422 = (
    "Well-formed, but fields that contradict each other: a port range without tcp, udp or "
    "sctp (or a max without its min, or min above max), a prefix or icmpv6 of the other "
    "ethertype, equal logical ports, a TOF service and a destination prefix"
)
_NO_INSTANCES = "the daemon runs no [instances] part"


def _doc(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(exclude_none=True)


def _resource(  # noqa: PLR0917 (one call site per resource)
    router: APIRouter,
    service: ChainService,
    path: str,
    kind: str,
    body_type: type[BaseModel],
    scope: ChainScope,
    principal: Callable[[Request], Principal],
) -> None:
    tags: list[str | Any] = ["chains"]
    # A classifier's fields may contradict each other (a 422); the other objects' rules are
    # all the schema's or about other objects (404, 409).
    changes = _responses(
        403, 404, 409, unprocessable=_CLASSIFIER_422 if kind == "flow_classifier" else ""
    )

    def list_objects(request: Request) -> list[dict[str, Any]]:
        who = principal(request)
        return [o.to_json() for o in scope.visible(who, service.list(kind))]

    def create(body: Any, request: Request) -> dict[str, Any]:
        who = principal(request)
        doc = _doc(body)
        if kind == "port_pair" and "egress" not in doc:
            doc["egress"] = doc["ingress"]
        tenant = scope.owner_for_create(who)
        doc = scope.check_body(who, kind, doc)
        return dict(service.create(kind, doc, tenant).to_json())

    def show(object_id: str, request: Request) -> dict[str, Any]:
        found = service.get(kind, object_id)
        scope.require(principal(request), kind, found)
        return dict(found.to_json())

    def replace(object_id: str, body: Any, request: Request) -> dict[str, Any]:
        who = principal(request)
        scope.require(who, kind, service.get(kind, object_id))
        doc = _doc(body)
        if doc.get("id") != object_id:
            doc["id"] = object_id
        if kind == "port_pair" and "egress" not in doc:
            doc["egress"] = doc["ingress"]
        doc.pop("chain_id", None)
        doc = scope.check_body(who, kind, doc)
        return dict(service.update(kind, object_id, doc).to_json())

    def delete(object_id: str, request: Request) -> Response:
        scope.require(principal(request), kind, service.get(kind, object_id))
        service.delete(kind, object_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    create.__annotations__["body"] = body_type
    replace.__annotations__["body"] = body_type
    item = f"{path}/{{object_id}}"
    router.add_api_route(path, list_objects, methods=["GET"], tags=tags, name=f"list {kind}")
    router.add_api_route(
        path,
        create,
        methods=["POST"],
        tags=tags,
        status_code=status.HTTP_201_CREATED,
        responses=changes,
        name=f"create {kind}",
    )
    router.add_api_route(
        item, show, methods=["GET"], tags=tags, responses=error_responses(404), name=f"show {kind}"
    )
    router.add_api_route(
        item,
        replace,
        methods=["PUT"],
        tags=tags,
        responses=changes,
        name=f"replace {kind}",
    )
    router.add_api_route(
        item,
        delete,
        methods=["DELETE"],
        tags=tags,
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(403, 404, 409),
        name=f"delete {kind}",
    )


RESOURCES: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("/chains/port-pairs", "port_pair", PortPairBody),
    ("/chains/port-pair-groups", "port_pair_group", PortPairGroupBody),
    ("/chains/flow-classifiers", "flow_classifier", FlowClassifierBody),
    ("/chains", "port_chain", PortChainBody),  # last: its {id} must not shadow the others
)


class FunctionTemplateBody(_Strict):
    """``POST /v1/chains/function-templates``: a template of a built-in function
    (:mod:`fluidedge.chains.functions`) on an ``ovs`` instance network."""

    kind: Literal["counter", "firewall", "router", "tap"]
    name: str = Field(pattern=ID_PATTERN, description="the template's name")
    network: str = Field(pattern=ID_PATTERN, description="an ovs instance network")
    rules: list[Rule] = Field(
        default_factory=list, max_length=64, description=f"firewall: {_RULES}"
    )
    ingress_routes: list[Prefix] = Field(
        default_factory=list, max_length=32, description="router: prefixes routed out of eth0"
    )
    egress_routes: list[Prefix] = Field(
        default_factory=list, max_length=32, description="router: prefixes routed out of eth1"
    )


def function_template(body: FunctionTemplateBody) -> dict[str, Any]:
    """The template body (``POST /v1/templates``) of ``body``'s function."""
    if body.kind == "counter":
        return functions.counter(body.name, body.network)
    if body.kind == "tap":
        return functions.tap(body.name, body.network)
    if body.kind == "firewall":
        return functions.firewall(body.name, body.network, body.rules)
    return functions.router(body.name, body.network, body.ingress_routes, body.egress_routes)


class FirewallRulesBody(_Strict):
    """``PUT /v1/chains/firewalls/{instance}/rules``: the new rules, in order (each one
    nftables rule statement, as in the template)."""

    rules: list[Rule] = Field(max_length=64, description=_RULES)


def build_router(
    service: ChainService,
    create_template: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    firewalls: LiveFirewalls | None = None,
    scope: ChainScope | None = None,
) -> APIRouter:
    """``create_template``: registers a template body with the instances part (and the image
    it runs on); absent, function templates are refused (422, as the vFirewall routes without
    ``firewalls``: the daemon runs no ``[instances]`` part). ``scope``: who sees what
    (:mod:`.scoping`; absent: no tenants)."""
    router = APIRouter(prefix="/v1")

    def principal(request: Request) -> Principal:
        return principal_of(request) if scope is not None else ADMIN

    scoped = scope or _NO_TENANTS

    def create_function_template(body: FunctionTemplateBody, request: Request) -> dict[str, Any]:
        if not principal(request).is_admin:
            raise Forbidden(
                "built-in function templates are the admin's (a tenant writes its function's "
                "template through /v1/templates)"
            )
        if create_template is None:
            raise ChainUnprocessable("function templates need the [instances] part")
        return create_template(function_template(body))

    router.add_api_route(
        "/chains/function-templates",
        create_function_template,
        methods=["POST"],
        tags=["chains"],
        status_code=status.HTTP_201_CREATED,
        responses=_responses(
            400,
            404,
            409,
            unprocessable=f"A firewall rule whose braces do not nest; {_NO_INSTANCES}, or its "
            "answer to the template (a network that is neither ovs nor linuxbridge)",
        ),
        name="create a built-in function's template",
    )

    def _firewalls() -> LiveFirewalls:
        if firewalls is None:
            raise ChainUnprocessable("firewalls need the [instances] part")
        return firewalls

    def show_firewall_rules(instance: str, request: Request) -> dict[str, str]:
        scoped.require_instance(principal(request), instance)
        return _firewalls().show(instance)

    def replace_firewall_rules(
        instance: str, body: FirewallRulesBody, request: Request
    ) -> dict[str, str]:
        scoped.require_instance(principal(request), instance)
        return _firewalls().replace(instance, body.rules)

    path = "/chains/firewalls/{instance}/rules"
    router.add_api_route(
        path,
        show_firewall_rules,
        methods=["GET"],
        tags=["chains"],
        responses=_responses(403, 404, 409, unprocessable=f"Not here: {_NO_INSTANCES}"),
        name="a running vFirewall's rules (its kernel's table, with counters)",
    )
    router.add_api_route(
        path,
        replace_firewall_rules,
        methods=["PUT"],
        tags=["chains"],
        responses=_responses(
            400,
            404,
            409,
            unprocessable="A rule whose braces do not nest, or that nft refuses (its message; "
            f"the old rules stay); {_NO_INSTANCES}",
        ),
        name="replace a running vFirewall's rules (one nftables transaction, no restart)",
    )

    def pair_packets(object_id: str, request: Request) -> dict[str, Any]:
        scoped.require(principal(request), "port_pair", service.get("port_pair", object_id))
        return service.pair_packets(object_id)

    router.add_api_route(
        "/chains/port-pairs/{object_id}/packets",
        pair_packets,
        methods=["GET"],
        tags=["chains"],
        responses=error_responses(404),
        name="what a function was handed and gave back",
    )

    def pair_flows(object_id: str, request: Request) -> dict[str, Any]:
        scoped.require(principal(request), "port_pair", service.get("port_pair", object_id))
        return service.pair_flows(object_id)

    router.add_api_route(
        "/chains/port-pairs/{object_id}/flows",
        pair_flows,
        methods=["GET"],
        tags=["chains"],
        responses=error_responses(404),
        name="the flows a function was handed, each with its packets (the switch's pins)",
    )
    for path, kind, body in RESOURCES:
        _resource(router, service, path, kind, body, scoped, principal)
    return router
