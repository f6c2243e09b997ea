"""The CAT manager as a daemon part (config table ``[cat]``).

At start it probes resctrl (a host without RDT gets a part whose routes say so, and nothing
else changes) and, when the ``[instances]`` part is enabled, becomes its class-of-service
binder: instance requests and templates may then name a class (``cos``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError

from fluidedge.cat.api import build_router
from fluidedge.cat.errors import CatInputError
from fluidedge.cat.fs import RealResctrlFS
from fluidedge.cat.manager import CatConfig, CatManager
from fluidedge.core.part import DaemonContext


class CatPart:
    name = "cat"

    def __init__(self, manager: CatManager, ctx: DaemonContext) -> None:
        self.manager = manager
        self.ctx = ctx

    def router(self) -> APIRouter:
        return build_router(self.manager)

    def _instances(self) -> Any:
        part = self.ctx.parts.get("instances")
        return getattr(part, "manager", None)

    def _pid(self, name: str) -> int | None:
        instances = self._instances()
        inst = instances.instances.get(name) if instances is not None else None
        if inst is None or inst.state not in ("running", "paused"):
            return None
        return int(inst.pid) if inst.pid else None

    async def start(self) -> None:
        instances = self._instances()
        if instances is not None:
            instances.cos_binder = self.manager
        await asyncio.to_thread(self.manager.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.manager.stop)

    def metrics(self) -> str:
        return self.manager.metrics()


def create_part(section: dict[str, Any], ctx: DaemonContext) -> CatPart:
    try:
        config = CatConfig.model_validate(section)
    except ValidationError as exc:
        raise CatInputError(f"config [cat]: {exc}") from exc
    manager = CatManager(config, ctx.store, RealResctrlFS(config.mount))
    part = CatPart(manager, ctx)
    manager.instance_pid = part._pid
    return part
