"""The TOF as a daemon part: the control agent that owns the catalog and the data plane.

Start order (a restart or kill -9 loses nothing declared): open the data plane, then push the
stored services into it, before the API accepts requests; learned tunnels are re-learned from
traffic within a packet of each bearer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from fluidedge.core.part import DaemonContext
from fluidedge.tof.api import build_router
from fluidedge.tof.backend import Backend, create_backend
from fluidedge.tof.catalog import ServiceCatalog
from fluidedge.tof.config import TofConfig, parse_tof_config
from fluidedge.tof.metrics import render


class TofPart:
    """The Traffic Offloading Function hosted by the daemon."""

    name = "tof"

    def __init__(self, config: TofConfig, ctx: DaemonContext, backend: Backend | None = None):
        self.config = config
        self.backend = backend or create_backend(config)
        self.catalog = ServiceCatalog(ctx.store, self.backend.apply)

    def router(self) -> APIRouter:
        return build_router(self.catalog, self.backend)

    async def start(self) -> None:
        await asyncio.to_thread(self.backend.start)
        try:
            self.catalog.restore()
        except BaseException:
            await asyncio.to_thread(self.backend.stop)
            raise

    async def stop(self) -> None:
        await asyncio.to_thread(self.backend.stop)

    def metrics(self) -> str:
        return render(self.backend.stats(), self.backend.tunnels())


def create_part(section: dict[str, Any], ctx: DaemonContext) -> TofPart:
    """Registry factory for the ``[tof]`` table."""
    return TofPart(parse_tof_config(section), ctx)
