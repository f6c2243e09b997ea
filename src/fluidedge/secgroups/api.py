"""REST routes of the security-group part (under ``/v1``).

``/v1/security-groups`` (groups; PUT replaces a group's rules), ``.../{id}/rules`` (one rule
added or deleted), ``/v1/security-groups/ports`` (the filtered instance interfaces) and
``PUT /v1/instances/{name}/interfaces/{ifname}/security-groups`` (an interface's groups after
create). Bodies are strict pydantic models (a typo is a 400 naming the field); the model's own
checks (:mod:`fluidedge.secgroups.model`) give the 400s about meaning (a port range on icmp, a
prefix of the wrong family, an unknown remote group).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from fluidedge.core.openapi import error_responses
from fluidedge.secgroups.model import GROUP_ID_PATTERN, MAX_DESCRIPTION, MAX_RULES, Port
from fluidedge.secgroups.service import SecgroupService


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleBody(_Strict):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    direction: Literal["ingress", "egress"]
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    protocol: str | int | None = Field(
        default=None, description="tcp, udp, icmp, icmpv6, any, or a number 0-255"
    )
    port_range_min: int | None = Field(default=None, ge=1, le=65535)
    port_range_max: int | None = Field(default=None, ge=1, le=65535)
    icmp_type: int | None = Field(default=None, ge=0, le=255)
    icmp_code: int | None = Field(default=None, ge=0, le=255)
    remote_ip_prefix: str | None = Field(default=None, max_length=64)
    remote_group: str | None = Field(default=None, pattern=GROUP_ID_PATTERN)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class GroupBody(_Strict):
    id: str = Field(pattern=GROUP_ID_PATTERN)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    rules: list[RuleBody] = Field(default_factory=list, max_length=MAX_RULES)


class GroupUpdate(_Strict):
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    rules: list[RuleBody] = Field(default_factory=list, max_length=MAX_RULES)


class PortGroups(_Strict):
    security_groups: list[str] = Field(max_length=16)


def port_view(port: Port) -> dict[str, Any]:
    instance, _, ifname = port.id.partition(".")
    return {"instance": instance, "interface": ifname, **port.to_json()}


def _rules(rules: list[RuleBody]) -> list[dict[str, Any]]:
    return [r.model_dump(exclude_none=True) for r in rules]


def build_router(service: SecgroupService) -> APIRouter:
    router = APIRouter(prefix="/v1")
    tags: list[str | Any] = ["security-groups"]

    @router.get("/security-groups", tags=tags)
    def list_groups() -> list[dict[str, Any]]:
        return [g.to_json() for g in service.list_groups()]

    @router.post(
        "/security-groups",
        tags=tags,
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(409),
    )
    def create_group(body: GroupBody) -> dict[str, Any]:
        doc = {"id": body.id, "description": body.description, "rules": _rules(body.rules)}
        return service.create_group(doc).to_json()

    @router.get("/security-groups/ports", tags=tags)
    def list_ports() -> list[dict[str, Any]]:
        return [port_view(p) for p in service.list_ports()]

    @router.get("/security-groups/{group_id}", tags=tags, responses=error_responses(404))
    def get_group(group_id: str) -> dict[str, Any]:
        return service.get_group(group_id).to_json()

    @router.put("/security-groups/{group_id}", tags=tags, responses=error_responses(404))
    def replace_group(group_id: str, body: GroupUpdate) -> dict[str, Any]:
        doc = {"description": body.description, "rules": _rules(body.rules)}
        return service.replace_group(group_id, doc).to_json()

    @router.delete(
        "/security-groups/{group_id}",
        tags=tags,
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(404, 409),
    )
    def delete_group(group_id: str) -> Response:
        service.delete_group(group_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/security-groups/{group_id}/rules",
        tags=tags,
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(404, 409),
    )
    def add_rule(group_id: str, body: RuleBody) -> dict[str, Any]:
        return service.add_rule(group_id, body.model_dump(exclude_none=True)).to_json()

    @router.delete(
        "/security-groups/{group_id}/rules/{rule_id}",
        tags=tags,
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(404),
    )
    def delete_rule(group_id: str, rule_id: str) -> Response:
        service.delete_rule(group_id, rule_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.put(
        "/instances/{name}/interfaces/{ifname}/security-groups",
        tags=tags,
        responses=error_responses(404),
    )
    def set_port_groups(name: str, ifname: str, body: PortGroups) -> dict[str, Any]:
        return port_view(service.set_port_groups(name, ifname, body.security_groups))

    return router
