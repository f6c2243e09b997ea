"""The REST API of the TOF: the seed's Service API (§4.3.4.1) plus tunnels and stats.

Paths, field names and status codes are the seed's Swagger: ``/service`` (GET list, POST
create: 200/400/409), ``/service/{name}`` (PUT update: 200/400/404/409; DELETE by name *or*
serviceIP: 200/404, and 409 for a serviceIP that classified services share). Every mutation
is applied to the data plane before the 200 is sent (Figure 17). Added: ``GET /tunnels``
(learned bearers; ``?limit=N&after=MARKER`` for keyset pages with a ``Link: rel="next"``, as
``GET /v1/instances`` pages: :mod:`fluidedge.tof.tunnel_pages`), ``DELETE /tunnels`` (purge
them; they are re-learned from traffic),
``GET /tunnels/events`` (the bounded log of bearers learned and retired, with the reason),
``GET /stats`` (counters per service, drop and malformed reasons).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from fluidedge.core.paging import MAX_PAGE, link_headers
from fluidedge.tof.backend import Backend, tunnels_after
from fluidedge.tof.catalog import ServiceCatalog
from fluidedge.tof.models import MatchModel, NewServiceModel, Service, ServiceModel, ServiceView
from fluidedge.tof.superfluid.model import OnDemandModel
from fluidedge.tof.tunnel_pages import MARKER_PATTERN

if TYPE_CHECKING:
    from fluidedge.tof.superfluid.controller import Controller


class ErrorModel(BaseModel):
    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Bad Request",
        401: "Missing or invalid bearer token",
        404: "Not found (also: the template an onDemand service names)",
        409: "Conflict",
        500: "The data plane failed to apply the change (previous state kept)",
    }
    return {code: {"model": ErrorModel, "description": text[code]} for code in codes}


PathName = Annotated[str, Path(min_length=1, max_length=63, description="Name of service")]
PathNameOrIP = Annotated[
    str, Path(min_length=1, max_length=63, description="Name or service IP of service to delete")
]


def _model(service: Service) -> ServiceModel:
    if service.ondemand is not None:
        spec = OnDemandModel.model_construct(**service.ondemand.to_api())  # type: ignore[arg-type]
        if service.ondemand.gateway is None:
            spec.gateway = None
        return ServiceModel.model_construct(
            name=service.name, serviceIP=service.service_ip, applicationIP=None, onDemand=spec
        )
    match = service.match
    return ServiceView.model_construct(
        name=service.name,
        serviceIP=service.service_ip,
        applicationIP=service.application_ip,
        onDemand=None,
        match=None if match is None else MatchModel.model_construct(**match.to_api()),
        action=None if match is None else service.action,
    )


def build_router(
    catalog: ServiceCatalog,
    plane: Callable[[], Backend],
    controller: Callable[[], Controller | None] = lambda: None,
) -> APIRouter:
    router = APIRouter(tags=["tof"])

    @router.get(
        "/service/{name}/instances",
        summary="One service (by name or service IP) with its on-demand instances and events",
        responses=_errors(404, 409),
    )
    def show_service(name: PathNameOrIP) -> dict[str, Any]:
        service = catalog.find(name)
        out: dict[str, Any] = service.to_api()
        running = controller() if service.ondemand is not None else None
        out["instances"] = running.instances_of(service.name) if running else []
        out["events"] = running.counts().get(service.name, {}) if running else {}
        return out

    @router.get(
        "/service",
        response_model=list[ServiceView],
        response_model_exclude_none=True,
        summary="List all configured services",
        responses={200: {"description": "Services configured"}},
    )
    def list_services() -> list[ServiceModel]:
        return [_model(s) for s in catalog.all()]

    @router.post(
        "/service",
        response_model=ServiceView,
        response_model_exclude_none=True,
        summary="Configure a new service",
        responses={
            200: {"description": "Service configured"},
            **_errors(400, 401, 404, 409, 500),
        },
    )
    def add_service(service: NewServiceModel) -> ServiceModel:
        return _model(catalog.add(service.to_service()))

    @router.put(
        "/service/{name}",
        response_model=ServiceView,
        response_model_exclude_none=True,
        summary="Update a service",
        responses={200: {"description": "Service updated"}, **_errors(400, 401, 404, 409, 500)},
    )
    def update_service(name: PathName, service: NewServiceModel) -> ServiceModel:
        return _model(catalog.update(name, service.to_service()))

    @router.delete(
        "/service/{name}",
        response_model=ServiceView,
        response_model_exclude_none=True,
        summary="Deletes a service based on the name or service IP supplied",
        responses={
            200: {"description": "Service deleted"},
            **_errors(400, 401, 404, 409, 500),
        },
    )
    def delete_service(name: PathNameOrIP) -> ServiceModel:
        return _model(catalog.delete(name))

    @router.get(
        "/tunnels",
        summary="Learned bearers: peers, UE, TEIDs, counters, last seen",
        responses={
            200: {
                "description": "The bearers (with `limit`: one page of them, by marker)",
                "headers": {
                    "Link": {
                        "description": "With `limit`, while more bearers follow: `<...?after="
                        'MARKER&limit=N>; rel="next"` (RFC 8288), the next page',
                        "schema": {"type": "string"},
                    }
                },
            },
            **_errors(400),
        },
    )
    def tunnels(
        request: Request,
        response: Response,
        limit: int | None = Query(
            default=None,
            ge=1,
            le=MAX_PAGE,
            description="at most this many bearers, by marker (their packed eNB, SGW and UE "
            'addresses in hex); a `Link: <...>; rel="next"` header names the next page while '
            "one follows (without it: all of them, in learning order; with `after`, all those "
            "after it, by marker)",
        ),
        after: str | None = Query(
            default=None,
            pattern=MARKER_PATTERN,
            description="only bearers whose marker sorts after this one (the next page's "
            "marker, as the `Link` header gives it: `ENB-SGW-UE`, each address packed, in "
            "lowercase hex)",
        ),
    ) -> list[dict[str, Any]]:
        backend = plane()
        if limit is None and after is None:
            return backend.tunnels()  # as before paging: learning order, no sort
        rows, marker = tunnels_after(backend, after, limit)
        response.headers.update(link_headers(request.url.path, request.query_params, marker, limit))
        return rows

    @router.get(
        "/tunnels/events",
        summary="Bearer events, oldest first (bounded): learned, retired and why",
    )
    def tunnel_events() -> list[dict[str, Any]]:
        return plane().events()

    @router.delete(
        "/tunnels",
        summary="Forget every learned tunnel (re-learned from traffic)",
        responses=_errors(401),
    )
    def purge_tunnels() -> dict[str, int]:
        return {"purged": plane().purge()}

    @router.get("/stats", summary="Data-plane counters: per service, per reason, I/O")
    def stats() -> dict[str, Any]:
        backend = plane()
        return {"backend": backend.name, **backend.stats()}

    return router
