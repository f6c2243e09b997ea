"""The instance manager as a daemon part (config table ``[instances]``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError

from fluidedge.daemon.part import DaemonContext
from fluidedge.instances.api import build_router
from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.manager import InstancesConfig, Manager


class InstancesPart:
    """Hosts a :class:`Manager`: restores and re-adopts on start, stops the workers on stop."""

    name = "instances"

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    def router(self) -> APIRouter:
        return build_router(self.manager)

    async def start(self) -> None:
        await asyncio.to_thread(self.manager.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.manager.stop)

    def metrics(self) -> str:
        return self.manager.metrics()


def create_part(section: dict[str, Any], ctx: DaemonContext) -> InstancesPart:
    try:
        config = InstancesConfig.model_validate(section)
    except ValidationError as exc:
        raise InvalidRequest(f"config [instances]: {exc}") from exc
    state_dir = config.state_dir or ctx.config.state_dir / "instances"
    return InstancesPart(Manager(config, ctx.store, state_dir))
