"""The instance manager as a daemon part (config table ``[instances]``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError

from fluidedge.core.hot import HotRoute
from fluidedge.core.part import DaemonContext
from fluidedge.core.periodic import every
from fluidedge.instances import network
from fluidedge.instances.api import build_router, hot_routes
from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.scoping import Scoped
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.tenants.service import TenantService


class InstancesPart:
    """Hosts a :class:`Manager`: restores and re-adopts on start, stops the workers on stop."""

    name = "instances"

    def __init__(self, manager: Manager, context: DaemonContext | None = None) -> None:
        self.manager = manager
        self.context = context
        self.scoped: Scoped | None = None  # tenants' scoping and admission (the GUI uses it)
        self._keeper: asyncio.Task[None] | None = None
        self._bridges_keeper: asyncio.Task[None] | None = None

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
        self._keeper = asyncio.create_task(self._keep_switches(), name="ovs-keeper")
        interval = self.manager.config.switch_check_interval_s
        if interval > 0:
            # the linuxbridge networks' bridges and the veths someone deleted (see
            # Manager.keep_networks)
            self._bridges_keeper = asyncio.create_task(
                every(
                    interval,
                    self.manager.keep_networks,
                    logging.getLogger("fluidedge.instances"),
                    "instances: the check of the networks' bridges and veths",
                    "bridge_revive_failed",
                ),
                name="bridge-keeper",
            )

    async def _keep_switches(self) -> None:
        """Once every part has started (the security groups' and chains' restorers are
        registered, their tables installed), then every ``switch_check_interval_s``: a switch
        of the ovs networks that died is restarted and its flows put back, the restorers'
        first (:func:`fluidedge.ovs.bridges.revive`, which logs what it finds), and this
        node's OVN chassis is restarted if a daemon of it died. The first pass
        also gives the bridges of a switch restarted at this start their learning-switch
        flow, after the others' tables."""
        if self.context is not None:
            await self.context.all_started.wait()
        log = logging.getLogger("fluidedge.ovs")
        interval = self.manager.config.switch_check_interval_s
        if interval > 0:
            await every(
                interval,
                _revive_switches,
                log,
                "ovs: the check of the switches",
                "switch_revive_failed",
                first=0.0,
            )
            return
        try:
            await asyncio.to_thread(_revive_switches)
        except Exception as exc:
            log.error("ovs: the switches' restore failed: %s: %s", type(exc).__name__, exc)

    def warm_up_requests(self) -> list[tuple[str, str, bytes]]:
        """Harmless requests the daemon sends itself before listening (see daemon.app).

        An empty body is rejected (400) after routing, auth, body parsing and validation of
        ``POST /v1/instances``; the success path's own one-off costs are paid by
        :meth:`Manager.warm_up` in :meth:`start`.
        """
        return [("POST", "/v1/instances", b"{}"), ("GET", "/v1/pools", b"")]

    async def stop(self) -> None:
        for task in (self._keeper, self._bridges_keeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._keeper = self._bridges_keeper = None
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


def _revive_switches() -> None:
    """The ``ovs`` networks' switches, then this node's OVN chassis, each started again if it
    died (:func:`fluidedge.ovs.bridges.revive`, :func:`network.revive_chassis`); the chassis
    is looked at even when a switch's restore failed."""
    try:
        ovs_bridges.revive()
    finally:
        network.revive_chassis()
