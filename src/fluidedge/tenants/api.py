"""REST routes of tenants (``/v1/tenants``, admin only) and ``/v1/whoami`` (any caller).

Tenant tokens are refused on ``/v1/tenants`` by the edge (403); an anonymous reader, which
``api.open_reads`` lets read most routes, is refused here too (401): tenants' names, quotas and
usage are the admin's business. A token is shown once, in the answer to its creation; the
audit record of that call names its id (``token_id``), never the token.

On a node of a site (``[cluster]``), tenants and their tokens are the site's: created,
changed, revoked or deleted through any node, they are the same on every node
(``service.site``; the site keeps a token's hash, never the token).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status

from fluidedge.core.auth import AUDIT_KEY
from fluidedge.core.openapi import error_responses
from fluidedge.core.part import DaemonContext
from fluidedge.errors import FluidedgeError, SystemFailure
from fluidedge.tenants.models import (
    Owned,
    Quota,
    TenantCreate,
    TenantUpdate,
    TenantView,
    TokenCreate,
    TokenCreated,
    TokenView,
    Usage,
    WhoAmI,
)
from fluidedge.tenants.scope import principal_of
from fluidedge.tenants.service import TenantService


class AdminRequired(FluidedgeError):
    """An anonymous reader asked for an admin-only route."""

    http_status = 401


def _require_admin(request: Request) -> None:
    if not principal_of(request).is_admin:
        raise AdminRequired("this route needs the admin token (Authorization: Bearer <token>)")


_KINDS = {"instance": "instances", "template": "templates", "network": "networks"}


def tenant_view(service: TenantService, record: dict[str, Any]) -> TenantView:
    owns = Owned()
    for kind, names in service.owned(record["name"]):
        if kind in _KINDS:
            setattr(owns, _KINDS[kind], names)
        else:
            owns.other[kind] = names
    usage = service.usage(record["name"]) if service.usage is not None else Usage()
    return TenantView(
        name=record["name"],
        description=record["description"],
        quota=Quota.model_validate(record["quota"]),
        created_at=record["created_at"],
        tokens=service.token_count(record["name"]),
        usage=usage,
        owns=owns,
    )


def _audit(request: Request, **fields: str) -> None:
    request.scope.setdefault("state", {})[AUDIT_KEY] = fields


def build_router(context: DaemonContext) -> APIRouter:
    router = APIRouter(prefix="/v1")

    def service() -> TenantService:
        tenants = context.tenants
        if not isinstance(tenants, TenantService):  # set by build_context / create_app
            raise SystemFailure("the daemon has no tenant service")
        return tenants

    @router.get("/whoami", tags=["tenants"])
    def whoami(request: Request) -> WhoAmI:
        """Who the caller is; for a tenant token, its tenant's quota and usage."""
        who = principal_of(request)
        if who.tenant is None:
            return WhoAmI(principal=who.kind)
        svc = service()
        usage = svc.usage(who.tenant) if svc.usage is not None else Usage()
        return WhoAmI(
            principal=who.kind, tenant=who.tenant, quota=svc.quota(who.tenant), usage=usage
        )

    admin = [Depends(_require_admin)]

    @router.get("/tenants", tags=["tenants"], dependencies=admin)
    def list_tenants() -> list[TenantView]:
        svc = service()
        return [tenant_view(svc, svc.record(name)) for name in svc.names()]

    @router.post(
        "/tenants",
        tags=["tenants"],
        status_code=status.HTTP_201_CREATED,
        dependencies=admin,
        responses=error_responses(409),
    )
    def create_tenant(spec: TenantCreate) -> TenantView:
        svc = service()
        # a node of a site: every node gets it
        record = svc.site.change_shared(spec.name, lambda: svc.create(spec))
        return tenant_view(svc, record)

    @router.get(
        "/tenants/{name}", tags=["tenants"], dependencies=admin, responses=error_responses(404)
    )
    def get_tenant(name: str) -> TenantView:
        svc = service()
        return tenant_view(svc, svc.record(name))

    @router.patch(
        "/tenants/{name}", tags=["tenants"], dependencies=admin, responses=error_responses(404)
    )
    def update_tenant(name: str, change: TenantUpdate) -> TenantView:
        """Change the description or the quota (a lower quota refuses new instances only)."""
        svc = service()
        record = svc.site.change_shared(name, lambda: svc.update(name, change))
        return tenant_view(svc, record)

    @router.delete(
        "/tenants/{name}",
        tags=["tenants"],
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=admin,
        responses=error_responses(404, 409),
    )
    def delete_tenant(name: str) -> Response:
        """Remove a tenant that owns nothing any more; its tokens are revoked."""
        svc = service()
        svc.site.delete_shared("tenants", name, lambda: svc.delete(name))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        "/tenants/{name}/tokens",
        tags=["tenants"],
        dependencies=admin,
        responses=error_responses(404),
    )
    def list_tokens(name: str) -> list[TokenView]:
        return service().list_tokens(name)

    @router.post(
        "/tenants/{name}/tokens",
        tags=["tenants"],
        status_code=status.HTTP_201_CREATED,
        dependencies=admin,
        responses=error_responses(404),
    )
    def create_token(name: str, request: Request, spec: TokenCreate | None = None) -> TokenCreated:
        """A new token for tenant ``name``: the answer is the only place it is ever shown."""
        svc = service()
        description = (spec or TokenCreate()).description
        created = svc.site.change_shared(name, lambda: svc.create_token(name, description))
        _audit(request, token_id=created.id)
        return created

    @router.delete(
        "/tenants/{name}/tokens/{token_id}",
        tags=["tenants"],
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=admin,
        responses=error_responses(404),
    )
    def delete_token(name: str, token_id: str, request: Request) -> Response:
        """Revoke a token: requests bearing it are refused (401) from now on."""
        _audit(request, token_id=token_id[:12])
        svc = service()
        svc.site.change_shared(name, lambda: svc.delete_token(name, token_id))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
