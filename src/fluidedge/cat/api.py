"""REST routes of the CAT part (under ``/v1/cat``).

``GET /v1/cat`` always answers (supported or not, with what was checked); every other route
answers 501 "not supported on this host: no RDT (checked: ...)" on a host without resctrl.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from fluidedge.cat.errors import CatConflict, CatInputError
from fluidedge.cat.manager import CatManager
from fluidedge.cat.models import (
    AssignRequest,
    ClassView,
    CosSpec,
    InstanceCos,
    LayoutRequest,
    LayoutView,
    PresetRequest,
    Status,
)


def build_router(manager: CatManager) -> APIRouter:
    router = APIRouter(prefix="/v1/cat", tags=["cat"])

    @router.get("")
    def cat_status() -> Status:
        return manager.status()

    @router.get("/classes")
    def list_classes() -> list[ClassView]:
        return manager.list_classes()

    @router.post("/classes", status_code=status.HTTP_201_CREATED)
    def create_class(spec: CosSpec) -> ClassView:
        if spec.name in manager.classes:
            raise CatConflict(f"class of service {spec.name!r} already exists (PUT replaces it)")
        return manager.apply([spec])[0]

    @router.get("/classes/{name}")
    def get_class(name: str) -> ClassView:
        return manager.view(name)

    @router.put("/classes/{name}")
    def put_class(name: str, spec: CosSpec) -> ClassView:
        if spec.name != name:
            raise CatInputError(f"name: the body names {spec.name!r}, the path {name!r}")
        return manager.apply([spec])[0]

    @router.delete("/classes/{name}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_class(name: str) -> Response:
        manager.delete(name)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/layout")
    def apply_layout(request: LayoutRequest) -> LayoutView:
        return LayoutView(classes=manager.apply(request.classes, replace=request.replace))

    @router.post("/presets/{model}")
    def apply_preset(model: str, request: PresetRequest) -> LayoutView:
        return manager.apply_preset(model, request)

    @router.get("/instances")
    def list_instances() -> list[InstanceCos]:
        return manager.list_instances()

    @router.get("/instances/{name}")
    def get_instance(name: str) -> InstanceCos:
        return manager.instance_view(name)

    @router.post("/classes/{name}/instances")
    def assign_instance(name: str, request: AssignRequest) -> InstanceCos:
        return manager.assign(request.instance, name)

    @router.delete("/instances/{name}", status_code=status.HTTP_204_NO_CONTENT)
    def unassign_instance(name: str) -> Response:
        manager.require()
        manager.instance_view(name)
        manager.unbind(name, move_tasks=True)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
