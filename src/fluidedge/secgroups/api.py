"""REST routes of the security-group part (under ``/v1``).

``/v1/security-groups`` (groups; PUT replaces a group's rules), ``.../{id}/rules`` (one rule
added or deleted), ``/v1/security-groups/ports`` (the filtered instance interfaces) and
``PUT /v1/instances/{name}/interfaces/{ifname}/security-groups`` (an interface's groups after
create). Bodies are strict pydantic models whose schema states every rule a single field can
break (protocol names and numbers, port and ICMP bounds, prefix syntax, id patterns, the
reserved group id ``ports``): such a body is a 400 naming the field. The model's own checks
(:mod:`fluidedge.secgroups.model`) then give the 422s about meaning: fields that contradict
each other (a port range on icmp, an ICMP type on tcp, a prefix of the other family, two rules
alike) or the stored state (an unknown remote group, groups on a port without port security).

With tenants every route is scoped (:mod:`fluidedge.secgroups.scoping`): a tenant token sees
and changes its own groups and its own instances' ports; another tenant's group does not exist
for it (404, the very message of a missing one). The admin may create a tenant's group with
``?tenant=NAME``.

On a node of a site (the ``[cluster]`` part), groups are the site's: created, changed or
deleted through any node's API, they are made the same on every node (``service.site``; a
tenant's, with its tenant, which the site shares too). A tenant's default group is each
node's own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from fluidedge.core.fields import PROTOCOL_PATTERN
from fluidedge.core.jsontypes import JsonInt, bounds, distinct, unreserved
from fluidedge.core.openapi import error_responses
from fluidedge.core.patterns import IP_PREFIX
from fluidedge.secgroups.model import DEFAULT_TENANT as DEFAULT_OWNER
from fluidedge.secgroups.model import (
    GROUP_ID_PATTERN,
    MAX_DESCRIPTION,
    MAX_GROUPS_PER_PORT,
    MAX_RULES,
    RESERVED_GROUP_IDS,
    RULE_ID_PATTERN,
    Port,
    SecurityGroup,
)
from fluidedge.secgroups.scoping import NO_TENANTS, GroupScope, tenant_of
from fluidedge.secgroups.service import SecgroupService, default_group_id
from fluidedge.tenants.scope import ADMIN, Principal, principal_of

TenantParam = Query(
    default=None,
    pattern=r"^[a-z][a-z0-9]{0,7}$",
    description="admin only: the tenant that will own the new group",
)


# What FieldChecks.protocol reads, and an IP prefix: one set for every part
# (fluidedge.core.fields, fluidedge.core.patterns).
IP_PREFIX_PATTERN = IP_PREFIX


_PORT, _PORT_SCHEMA = bounds(1, 65535)
_BYTE_INT, _BYTE_SCHEMA = bounds(0, 255)
PortNumber = Annotated[JsonInt, _PORT, _PORT_SCHEMA]
ByteValue = Annotated[JsonInt, _BYTE_INT, _BYTE_SCHEMA]
ProtocolName = Annotated[str, Field(pattern=PROTOCOL_PATTERN, max_length=16)]
IpPrefix = Annotated[str, Field(pattern=IP_PREFIX_PATTERN, max_length=64)]
GroupId = Annotated[str, Field(pattern=GROUP_ID_PATTERN)]


NewGroupId = Annotated[
    str,
    Field(
        pattern=GROUP_ID_PATTERN,
        description="lower-case name, <= 32 chars; not 'ports' (/v1/security-groups/ports "
        "lists the filtered ports)",
        json_schema_extra={"not": {"enum": list(RESERVED_GROUP_IDS)}},
    ),
    unreserved(
        RESERVED_GROUP_IDS,
        "{value!r} is reserved: /v1/security-groups/{value} lists the filtered ports",
    ),
]


class _Strict(BaseModel):
    # strict: a JSON false is not 0, "80" is not 80 (JsonInt still takes 80.0, JSON's integer).
    model_config = ConfigDict(extra="forbid", strict=True)


class RuleBody(_Strict):
    id: str | None = Field(default=None, pattern=RULE_ID_PATTERN)
    direction: Literal["ingress", "egress"]
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    protocol: ProtocolName | ByteValue | None = Field(
        default=None,
        description="tcp, udp, icmp, icmpv6, sctp, udplite, dccp (any case), any, or a number "
        "0-255; icmp on IPv6 is icmpv6",
    )
    port_range_min: PortNumber | None = Field(
        default=None, description="only with a protocol with ports (else 422)"
    )
    port_range_max: PortNumber | None = Field(
        default=None, description="needs port_range_min, not below it (else 422)"
    )
    icmp_type: ByteValue | None = Field(
        default=None, description="only with protocol icmp or icmpv6 (else 422)"
    )
    icmp_code: ByteValue | None = Field(default=None, description="needs icmp_type (else 422)")
    remote_ip_prefix: IpPrefix | None = Field(
        default=None,
        description="of the rule's ethertype, not with remote_group (else 422); host bits are "
        "cleared",
    )
    remote_group: GroupId | None = Field(
        default=None, description="a group of the same tenant (else 422)"
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class GroupBody(_Strict):
    id: NewGroupId
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    rules: list[RuleBody] = Field(default_factory=list, max_length=MAX_RULES)


class GroupUpdate(_Strict):
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    rules: list[RuleBody] = Field(default_factory=list, max_length=MAX_RULES)


class PortGroups(_Strict):
    security_groups: Annotated[
        list[GroupId],
        Field(max_length=MAX_GROUPS_PER_PORT, json_schema_extra={"uniqueItems": True}),
        distinct("group"),
    ] = Field(description="groups of the instance's tenant (else 422)")


# Statuses of these routes besides the ones every route has (core.openapi).
_WHY = {
    404: "No such security group, rule, or filtered interface (another tenant's is as missing)",
    409: "Clashes with existing state: the id is taken, or the group is still used",
    422: "Well-formed, but its fields contradict each other (a port range on a protocol "
    "without ports, an ICMP type on another protocol, a prefix of the other family, a remote "
    "prefix and a remote group, two rules alike) or the stored state (a remote group or an "
    "interface's group that does not exist or is another tenant's; groups on a port without "
    "port security; a rule added to a group that has the most rules a group may have)",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(*codes, why=_WHY)


def port_view(port: Port) -> dict[str, Any]:
    instance, _, ifname = port.id.partition(".")
    return {"instance": instance, "interface": ifname, **port.to_json()}


def _rules(rules: list[RuleBody]) -> list[dict[str, Any]]:
    return [r.model_dump(exclude_none=True) for r in rules]


def build_router(service: SecgroupService, scope: GroupScope | None = None) -> APIRouter:
    """The routes; ``scope`` (None: no tenants, every caller is the admin) says who sees
    what; ``service.record_owner(group_id, tenant)`` mirrors a tenant's group into the tenants
    part's ownership (None: given back) so that a tenant owning groups is not deleted."""
    router = APIRouter(prefix="/v1")
    tags: list[str | Any] = ["security-groups"]
    sc = scope or NO_TENANTS

    def principal(request: Request) -> Principal:
        return principal_of(request) if scope is not None else ADMIN

    def shared(group: SecurityGroup) -> SecurityGroup:
        """A group that changed here: the site's version (every node gets it); a tenant's
        default group is each node's own."""
        if service.shared_on_site(group):
            service.site.group_changed(group)
        return group

    def visible_group(who: Principal, group_id: str) -> Any:
        tenant = tenant_of(who)
        if tenant is not None and who.kind == "tenant" and group_id == default_group_id(tenant):
            service.ensure_default_group(tenant)  # every tenant has one (README)
        group = service.get_group(group_id)
        sc.require(who, group)
        return group

    @router.get("/security-groups", tags=tags)
    def list_groups(request: Request) -> list[dict[str, Any]]:
        who = principal(request)
        tenant = tenant_of(who)
        if tenant is not None and who.kind == "tenant":
            service.ensure_default_group(tenant)
        return [g.to_json() for g in service.list_groups(tenant)]

    @router.post(
        "/security-groups",
        tags=tags,
        status_code=status.HTTP_201_CREATED,
        responses=_errors(403, 404, 409, 422),
    )
    def create_group(
        body: GroupBody, request: Request, tenant: str | None = TenantParam
    ) -> dict[str, Any]:
        owner = sc.owner_for_create(principal(request), body.id, tenant)
        doc = {"id": body.id, "description": body.description, "rules": _rules(body.rules)}
        if owner != DEFAULT_OWNER:
            service.ensure_default_group(owner)
        made = service.create_group(doc, owner)
        if owner != DEFAULT_OWNER:
            service.record_owner(made.id, owner)
        return shared(made).to_json()  # every node of the site gets it

    @router.get("/security-groups/ports", tags=tags)
    def list_ports(request: Request) -> list[dict[str, Any]]:
        return [port_view(p) for p in sc.visible_ports(principal(request), service.list_ports())]

    @router.get("/security-groups/{group_id}", tags=tags, responses=_errors(404))
    def get_group(group_id: str, request: Request) -> dict[str, Any]:
        return dict(visible_group(principal(request), group_id).to_json())

    @router.put("/security-groups/{group_id}", tags=tags, responses=_errors(404, 422))
    def replace_group(group_id: str, body: GroupUpdate, request: Request) -> dict[str, Any]:
        who = principal(request)
        sc.require_change(who, visible_group(who, group_id))
        doc = {"description": body.description, "rules": _rules(body.rules)}
        return shared(service.replace_group(group_id, doc)).to_json()

    @router.delete(
        "/security-groups/{group_id}",
        tags=tags,
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_errors(404, 409),
    )
    def delete_group(group_id: str, request: Request) -> Response:
        group = service.get_group(group_id)
        sc.require_change(principal(request), group)

        if service.shared_on_site(group):  # here and on every node of the site
            service.site.delete_shared(
                "secgroups", group_id, lambda: service.delete_with_owner(group_id)
            )
        else:
            service.delete_with_owner(group_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/security-groups/{group_id}/rules",
        tags=tags,
        status_code=status.HTTP_201_CREATED,
        responses=_errors(404, 409, 422),
    )
    def add_rule(group_id: str, body: RuleBody, request: Request) -> dict[str, Any]:
        who = principal(request)
        sc.require_change(who, visible_group(who, group_id))
        rule = service.add_rule(group_id, body.model_dump(exclude_none=True))
        shared(service.get_group(group_id))
        return rule.to_json()

    @router.delete(
        "/security-groups/{group_id}/rules/{rule_id}",
        tags=tags,
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_errors(404),
    )
    def delete_rule(group_id: str, rule_id: str, request: Request) -> Response:
        who = principal(request)
        sc.require_change(who, visible_group(who, group_id))
        service.delete_rule(group_id, rule_id)
        shared(service.get_group(group_id))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.put(
        "/instances/{name}/interfaces/{ifname}/security-groups",
        tags=tags,
        responses=_errors(404, 422),
    )
    def set_port_groups(
        name: str, ifname: str, body: PortGroups, request: Request
    ) -> dict[str, Any]:
        sc.require_port(principal(request), name, ifname)
        return port_view(service.set_port_groups(name, ifname, body.security_groups))

    return router
