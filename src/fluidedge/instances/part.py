"""The instance manager as a daemon part (config table ``[instances]``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError

from fluidedge.core.hot import HotRoute
from fluidedge.core.part import DaemonContext
from fluidedge.instances.api import build_router, hot_routes
from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.scoping import Scoped
from fluidedge.tenants.service import TenantService


class InstancesPart:
    """Hosts a :class:`Manager`: restores and re-adopts on start, stops the workers on stop."""

    name = "instances"

    def __init__(self, manager: Manager, context: DaemonContext | None = None) -> None:
        self.manager = manager
        self.context = context
        self.scoped: Scoped | None = None  # tenants' scoping and admission (the GUI uses it)

    def router(self) -> APIRouter:
        tenants = self.context.tenants if self.context is not None else None
        if not isinstance(tenants, TenantService):
            tenants = None
        self.scoped = Scoped(self.manager, tenants)
        return build_router(self.manager, self.scoped)

    def hot_routes(self) -> list[HotRoute]:
        """Create, pause and resume served by the daemon's edge (:mod:`fluidedge.core.hot`);
        after :meth:`router`, whose scoping (quota ledger) they share: none before it."""
        return [] if self.scoped is None else hot_routes(self.manager, self.scoped)

    async def start(self) -> None:
        await asyncio.to_thread(self.manager.start)
        self.manager.warm_up()
        cgroup = self.manager.cgroups.describe()
        # uvicorn's error logger is the daemon's log stream
        logging.getLogger("uvicorn.error").info(
            "instances: cgroup %s under %s (controllers: %s), launcher %s",
            cgroup["mode"],
            cgroup["parent"],
            " ".join(cgroup["controllers"]),
            self.manager.launcher_kind,
        )

    def warm_up_requests(self) -> list[tuple[str, str, bytes]]:
        """Harmless requests the daemon sends itself before listening (see daemon.app).

        An empty body is rejected (400) after routing, auth, body parsing and validation of
        ``POST /v1/instances``; the success path's own one-off costs are paid by
        :meth:`Manager.warm_up` in :meth:`start`.
        """
        return [("POST", "/v1/instances", b"{}"), ("GET", "/v1/pools", b"")]

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
    return InstancesPart(Manager(config, ctx.store, state_dir), ctx)
