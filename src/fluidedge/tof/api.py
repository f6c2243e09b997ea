"""The REST API of the TOF: the seed's Service API (§4.3.4.1) plus tunnels and stats.

Paths, field names and status codes are the seed's Swagger: ``/service`` (GET list, POST
create: 200/400/409), ``/service/{name}`` (PUT update: 200/400/404/409; DELETE by name *or*
serviceIP: 200/404). Every mutation is applied to the data plane before the 200 is sent
(Figure 17). Added: ``GET /tunnels`` (learned bearers), ``DELETE /tunnels`` (purge them; they
are re-learned from traffic), ``GET /tunnels/events`` (the bounded log of bearers learned and
retired, with the reason), ``GET /stats`` (counters per service, drop and malformed reasons).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from fluidedge.tof.backend import Backend
from fluidedge.tof.catalog import ServiceCatalog
from fluidedge.tof.models import NewServiceModel, ServiceModel


class ErrorModel(BaseModel):
    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Bad Request",
        401: "Missing or invalid bearer token",
        404: "Not found",
        409: "Conflict",
        500: "The data plane failed to apply the change (previous state kept)",
    }
    return {code: {"model": ErrorModel, "description": text[code]} for code in codes}


PathName = Annotated[str, Path(min_length=1, max_length=63, description="Name of service")]
PathNameOrIP = Annotated[
    str, Path(min_length=1, max_length=63, description="Name or service IP of service to delete")
]


def _model(service: Any) -> ServiceModel:
    return ServiceModel.model_construct(**service.to_api())


def build_router(catalog: ServiceCatalog, backend: Backend) -> APIRouter:
    router = APIRouter(tags=["tof"])

    @router.get(
        "/service",
        response_model=list[ServiceModel],
        summary="List all configured services",
        responses={200: {"description": "Services configured"}},
    )
    def list_services() -> list[ServiceModel]:
        return [_model(s) for s in catalog.all()]

    @router.post(
        "/service",
        response_model=ServiceModel,
        summary="Configure a new service",
        responses={200: {"description": "Service configured"}, **_errors(400, 401, 409, 500)},
    )
    def add_service(service: NewServiceModel) -> ServiceModel:
        return _model(catalog.add(service.to_service()))

    @router.put(
        "/service/{name}",
        response_model=ServiceModel,
        summary="Update a service",
        responses={200: {"description": "Service updated"}, **_errors(400, 401, 404, 409, 500)},
    )
    def update_service(name: PathName, service: NewServiceModel) -> ServiceModel:
        return _model(catalog.update(name, service.to_service()))

    @router.delete(
        "/service/{name}",
        response_model=ServiceModel,
        summary="Deletes a service based on the name or service IP supplied",
        responses={200: {"description": "Service deleted"}, **_errors(400, 401, 404, 500)},
    )
    def delete_service(name: PathNameOrIP) -> ServiceModel:
        return _model(catalog.delete(name))

    @router.get("/tunnels", summary="Learned bearers: peers, UE, TEIDs, counters, last seen")
    def tunnels() -> list[dict[str, Any]]:
        return backend.tunnels()

    @router.get(
        "/tunnels/events",
        summary="Bearer events, oldest first (bounded): learned, retired and why",
    )
    def tunnel_events() -> list[dict[str, Any]]:
        return backend.events()

    @router.delete(
        "/tunnels",
        summary="Forget every learned tunnel (re-learned from traffic)",
        responses=_errors(401),
    )
    def purge_tunnels() -> dict[str, int]:
        return {"purged": backend.purge()}

    @router.get("/stats", summary="Data-plane counters: per service, per reason, I/O")
    def stats() -> dict[str, Any]:
        return {"backend": backend.name, **backend.stats()}

    return router
