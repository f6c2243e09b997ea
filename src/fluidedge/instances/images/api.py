"""REST routes of the image store (``/v1/images``, on the instances part).

``POST /v1/images`` imports a local image (a path on the daemon's host, read by the daemon as
root: the token holder is the host's admin) and takes seconds (skopeo + umoci), so it runs in
the thread pool. ``DELETE`` answers 409 naming the templates and instances still using it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool

from fluidedge.core.openapi import error_responses
from fluidedge.instances.images.store import ImageImport, ImageView

if TYPE_CHECKING:
    from fluidedge.instances.manager import Manager


def build_image_router(manager: Manager) -> APIRouter:
    router = APIRouter()

    @router.get("/images", tags=["images"])
    def list_images() -> list[ImageView]:
        return manager.images.all()

    @router.post(
        "/images",
        tags=["images"],
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(404, 409, 422),
    )
    async def import_image(request: ImageImport) -> ImageView:
        return await run_in_threadpool(manager.images.import_image, request)

    @router.get("/images/{name}", tags=["images"], responses=error_responses(404))
    def get_image(name: str) -> ImageView:
        return manager.images.get(name)

    @router.delete(
        "/images/{name}",
        tags=["images"],
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(404, 409),
    )
    def remove_image(name: str) -> Response:
        manager.remove_image(name)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
