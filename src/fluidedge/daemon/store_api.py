"""``/v1/store/set-aside``: the rows a start could not read back, and forgetting one.

A row set aside (:mod:`fluidedge.core.rows`) stays in ``store_set_aside`` and counts in
``/healthz`` until an operator has dealt with it: declared its object again from what it held,
or decided it is gone. ``GET`` lists them; ``DELETE .../{id}`` forgets one (the admin's token:
it is a mutating call, and not a tenant route). A row's content may hold what reads without
the token must not show (a template's environment, a token's hash): without the admin's
token it reads as ``<redacted>``, as template values do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from fluidedge.core import rows
from fluidedge.core.auth import REDACTED, authenticated
from fluidedge.core.openapi import error_responses
from fluidedge.core.part import DaemonContext

TAGS: list[str | Any] = ["daemon"]


class SetAsideView(BaseModel):
    """A row set aside: where it was, which it was, what it held, why, when."""

    id: int = Field(description="its number in store_set_aside (DELETE takes it)")
    source: str = Field(description="the table it was in")
    key: str = Field(description="its key there (columns joined by '/')")
    row: dict[str, Any] | str = Field(description="every column, or <redacted> without the token")
    reason: str = Field(description="why it could not be read back")
    at: str = Field(description="when it was set aside (UTC)")


def _view(found: rows.SetAside, *, shown: bool) -> SetAsideView:
    return SetAsideView(
        id=found.id,
        source=found.source,
        key=found.key,
        row=found.row if shown else REDACTED,
        reason=found.reason,
        at=found.at,
    )


def build_router(context: DaemonContext) -> APIRouter:
    router = APIRouter(prefix="/v1/store")

    @router.get("/set-aside", tags=TAGS)
    def list_set_aside(request: Request) -> list[SetAsideView]:
        shown = authenticated(request)
        return [_view(found, shown=shown) for found in rows.stored(context.store)]

    @router.delete("/set-aside/{ident}", tags=TAGS, responses=error_responses(404))
    def drop_set_aside(ident: int = Path(ge=1, le=2**63 - 1)) -> SetAsideView:
        return _view(rows.drop(context.store, ident), shown=True)

    return router
