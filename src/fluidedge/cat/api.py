"""REST routes of the CAT part (under ``/v1/cat``).

``GET /v1/cat`` always answers (supported or not, with what was checked); every other route
answers 501 "not supported on this host: no RDT (checked: ...)" on a host without resctrl, and
documents it: the answer is the honest one (the host lacks the feature), not a failure.

Statuses: a body that breaks the schema is a 400 (the daemon's handler); a well-formed request
this host or the declared state cannot take is a 422 (:class:`~fluidedge.cat.errors.
CatUnprocessable`: the kernel's own reasons, a layout inconsistent in itself, the path and the
body naming different classes); a clash with what exists is a 409; a missing class or instance
a 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from fluidedge.cat.errors import CatConflict, CatUnprocessable
from fluidedge.cat.manager import CatManager
from fluidedge.cat.models import (
    AssignRequest,
    ClassView,
    CosModel,
    CosSpec,
    InstanceCos,
    LayoutRequest,
    LayoutView,
    PresetRequest,
    Status,
)
from fluidedge.core.openapi import error_responses

_WHY = {
    404: "No class of service (or assigned instance) has that name",
    409: "Clashes with the host's state: the class exists, CLOSIDs or RMIDs are used up, an "
    "exclusive group overlaps, instances use the class",
    422: "Well-formed, but this host or the declared classes cannot take it: the kernel's "
    "reason (mask out of cbm_mask, too few bits, not contiguous, unknown cache id, MB out of "
    "range...), a layout inconsistent in itself, a CPU range written backwards, the path and "
    "the body naming different classes, a role the model has not",
    501: "Not supported on this host: no RDT (resctrl); the reason lists what was checked",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a CAT route: its own statuses and 501, each described for CAT."""
    return error_responses(*codes, 501, why=_WHY)


def build_router(manager: CatManager) -> APIRouter:
    router = APIRouter(prefix="/v1/cat", tags=["cat"])

    @router.get("")
    def cat_status() -> Status:
        return manager.status()

    @router.get("/classes", responses=_errors())
    def list_classes() -> list[ClassView]:
        return manager.list_classes()

    @router.post("/classes", status_code=status.HTTP_201_CREATED, responses=_errors(409, 422))
    def create_class(spec: CosSpec) -> ClassView:
        if spec.name in manager.classes:
            raise CatConflict(f"class of service {spec.name!r} already exists (PUT replaces it)")
        return manager.apply([spec])[0]

    @router.get("/classes/{name}", responses=_errors(404))
    def get_class(name: str) -> ClassView:
        return manager.view(name)

    @router.put("/classes/{name}", responses=_errors(409, 422))
    def put_class(name: str, spec: CosSpec) -> ClassView:
        if spec.name != name:  # both well-formed, but they contradict each other
            raise CatUnprocessable(f"name: the body names {spec.name!r}, the path {name!r}")
        return manager.apply([spec])[0]

    @router.delete(
        "/classes/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors(404, 409, 422)
    )
    def delete_class(name: str) -> Response:
        manager.delete(name)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/layout", responses=_errors(409, 422))
    def apply_layout(request: LayoutRequest) -> LayoutView:
        return LayoutView(classes=manager.apply(request.classes, replace=request.replace))

    @router.post("/presets/{model}", responses=_errors(409, 422))
    def apply_preset(model: CosModel, request: PresetRequest) -> LayoutView:
        return manager.apply_preset(model, request)

    @router.post("/reset", responses=_errors(409, 422))
    def reset() -> list[ClassView]:
        manager.reset()
        return manager.list_classes()

    @router.get("/instances", responses=_errors())
    def list_instances() -> list[InstanceCos]:
        return manager.list_instances()

    @router.get("/instances/{name}", responses=_errors(404))
    def get_instance(name: str) -> InstanceCos:
        return manager.instance_view(name)

    @router.post("/classes/{name}/instances", responses=_errors(404, 409, 422))
    def assign_instance(name: str, request: AssignRequest) -> InstanceCos:
        return manager.assign(request.instance, name)

    @router.delete(
        "/instances/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors(404)
    )
    def unassign_instance(name: str) -> Response:
        manager.require()
        manager.instance_view(name)
        manager.unbind(name, move_tasks=True)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
