"""``/v1/intercepts``: lawful-intercept mirrors of offloaded traffic, the admin's only.

Tenant tokens are refused by the API guard (not a tenant route: 403); since reads may be open
(``api.open_reads``), every route here also requires the admin token itself (401 without it).
Creating and deleting are audited like every mutating call, with the intercept's name, target
UE and destination added to the audit record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request

from fluidedge.core.auth import AUDIT_KEY, authenticated
from fluidedge.tof.intercept.manager import InterceptManager
from fluidedge.tof.intercept.model import NewInterceptModel

PathName = Annotated[
    str, Path(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid target or destination"},
    401: {"description": "The admin token is required"},
    403: {"description": "A tenant token"},
    404: {"description": "No such intercept, or intercepts are not available"},
    409: {"description": "The name or the UE is already intercepted"},
}


def _admin(request: Request) -> None:
    if not authenticated(request):
        raise HTTPException(401, "intercepts need the admin token")


def build_router(manager: Callable[[], InterceptManager | None]) -> APIRouter:
    router = APIRouter(prefix="/v1/intercepts", tags=["tof"], responses=_RESPONSES)

    def get() -> InterceptManager:
        found = manager()
        if found is None:
            raise HTTPException(404, "intercepts need a running TOF data plane")
        return found

    @router.post("", summary="Start mirroring a target's offloaded traffic", status_code=201)
    def create(body: NewInterceptModel, request: Request) -> dict[str, object]:
        _admin(request)
        it = get().add(body)
        request.scope.setdefault("state", {})[AUDIT_KEY] = {
            "intercept": it.name,
            "target": it.ue,
            "destination": it.interface or it.pcap,
        }
        return get().get(it.name)

    @router.get("", summary="The intercepts, with their copy counters")
    def list_all(request: Request) -> list[dict[str, object]]:
        _admin(request)
        return get().list()

    @router.get("/{name}", summary="One intercept")
    def show(name: PathName, request: Request) -> dict[str, object]:
        _admin(request)
        return get().get(name)

    @router.delete("/{name}", summary="Stop mirroring (at once)")
    def delete(name: PathName, request: Request) -> dict[str, object]:
        _admin(request)
        it = get().delete(name)
        request.scope.setdefault("state", {})[AUDIT_KEY] = {
            "intercept": it.name,
            "target": it.ue,
        }
        return it.to_api()

    return router
