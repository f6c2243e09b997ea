"""REST routes of the chain part (under ``/v1/chains``), networking-sfc's four resources.

``/v1/chains`` (port chains), ``/v1/chains/port-pairs``, ``/v1/chains/port-pair-groups`` and
``/v1/chains/flow-classifiers``: list, create (201; 409 if the id exists), show, replace (PUT:
the whole object; its id, tenant and chain number stay) and delete (409 while another object
uses it). Bodies are strict pydantic models (a typo is a 400 naming the field); the model's
own checks (:mod:`fluidedge.chains.model`) give the 400s about meaning and the 409s about
objects that clash.

``PUT``/``GET /v1/chains/firewalls/{instance}/rules`` replace the rules of a running vFirewall
instance in one nftables transaction, and show what its kernel holds (:mod:`.firewall`).

``POST /v1/chains/function-templates`` registers the template of a built-in function
(counter, firewall, router: :mod:`fluidedge.chains.functions`) with the instances part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from fluidedge.chains import functions
from fluidedge.chains.errors import InvalidChain
from fluidedge.chains.firewall import LiveFirewalls
from fluidedge.chains.model import (
    ID_PATTERN,
    MAX_CLASSIFIERS,
    MAX_DESCRIPTION,
    MAX_GROUPS,
    MAX_MEMBERS,
    PORT_PATTERN,
    TOF_SERVICE_PATTERN,
    FunctionKind,
)
from fluidedge.chains.scoping import ChainScope
from fluidedge.chains.service import ChainService
from fluidedge.core.openapi import error_responses
from fluidedge.tenants.errors import Forbidden
from fluidedge.tenants.scope import ADMIN, Principal, principal_of

# Without a scope (no tenants part: a router built for tests or tools), every caller is the
# admin; the daemon's edge still asks a token of every change.
_NO_TENANTS = ChainScope(lambda port: None, lambda name: None)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    port_pairs: list[str] = Field(default_factory=list, max_length=MAX_MEMBERS)
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
    protocol: str | int | None = Field(
        default=None, description="tcp, udp, sctp, icmp, icmpv6, any, or a number 0-255"
    )
    source_ip_prefix: str | None = Field(default=None, max_length=64)
    destination_ip_prefix: str | None = Field(default=None, max_length=64)
    source_port_range_min: int | None = Field(default=None, ge=0, le=65535)
    source_port_range_max: int | None = Field(default=None, ge=0, le=65535)
    destination_port_range_min: int | None = Field(default=None, ge=0, le=65535)
    destination_port_range_max: int | None = Field(default=None, ge=0, le=65535)
    tof_service: str | None = Field(
        default=None,
        pattern=TOF_SERVICE_PATTERN,
        description="a TOF service: its offloaded traffic (the source port is the TOF's apps "
        "side; the destination prefix is the service's, not given here)",
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class PortChainBody(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    port_pair_groups: list[str] = Field(min_length=1, max_length=MAX_GROUPS)
    flow_classifiers: list[str] = Field(default_factory=list, max_length=MAX_CLASSIFIERS)
    chain_id: int | None = Field(default=None, ge=1, le=255, description="absent: allocated")
    symmetric: bool = True
    failure_policy: Literal["open", "closed"] = "closed"
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


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
        responses=error_responses(403, 404, 409),
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
        responses=error_responses(403, 404, 409),
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
    rules: list[str] = Field(
        default_factory=list, max_length=64, description="firewall: nftables rules, in order"
    )
    ingress_routes: list[str] = Field(
        default_factory=list, max_length=32, description="router: prefixes routed out of eth0"
    )
    egress_routes: list[str] = Field(
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

    rules: list[str] = Field(max_length=64, description="nftables rules, in order")


def build_router(
    service: ChainService,
    create_template: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    firewalls: LiveFirewalls | None = None,
    scope: ChainScope | None = None,
) -> APIRouter:
    """``create_template``: registers a template body with the instances part (and the image
    it runs on); absent, function templates are refused. ``scope``: who sees what
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
            raise InvalidChain("function templates need the [instances] part")
        return create_template(function_template(body))

    router.add_api_route(
        "/chains/function-templates",
        create_function_template,
        methods=["POST"],
        tags=["chains"],
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(400, 404, 409),
        name="create a built-in function's template",
    )

    def _firewalls() -> LiveFirewalls:
        if firewalls is None:
            raise InvalidChain("firewalls need the [instances] part")
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
        responses=error_responses(403, 404, 409),
        name="a running vFirewall's rules (its kernel's table, with counters)",
    )
    router.add_api_route(
        path,
        replace_firewall_rules,
        methods=["PUT"],
        tags=["chains"],
        responses=error_responses(400, 404, 409),
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
