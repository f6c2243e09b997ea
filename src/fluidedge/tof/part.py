"""The TOF as a daemon part: the control agent that owns the catalog and the data plane.

Start order (a restart or kill -9 loses nothing declared): open the data plane, then push the
stored services into it, before the API accepts requests; learned tunnels are re-learned from
traffic within a packet of each bearer.

A data plane whose namespace or interfaces are not there yet (after a reboot, before the
operator's set-up made them again: :mod:`fluidedge.tof.presence`) does not refuse the daemon's
start: the part *waits*. It serves a :class:`~fluidedge.tof.waiting.WaitingPlane` (services are
declared and stored as usual; ``/stats`` says ``"dataplane": "waiting: <reason>"``;
``/healthz`` says ``degraded``), looks again every ``program_check_interval`` (1 s when that
is 0), and runs the whole start above once everything is there (event ``tof_waiting``, then
``tof_started``). A start that fails then is logged once per distinct reason and tried again.

On-demand services (docs/superfluid.md) need the instance manager of the same daemon
(``[instances]``, started before this part) and a backend that offers the control calls of
:mod:`fluidedge.tof.superfluid.plane` (all three do): then a
:class:`~fluidedge.tof.superfluid.controller.Controller` is attached between them and restores
the stored on-demand instances after the services; otherwise such services are refused with
a 400 saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from fluidedge.core.hostwait import HostWait
from fluidedge.core.part import DaemonContext
from fluidedge.core.periodic import every
from fluidedge.tof import presence
from fluidedge.tof.accounting import readout
from fluidedge.tof.accounting.api import build_router as build_usage_router
from fluidedge.tof.accounting.api import render_metrics as render_usage
from fluidedge.tof.accounting.export import Exporter
from fluidedge.tof.accounting.usage import Accountant, UsageRecord
from fluidedge.tof.api import build_router
from fluidedge.tof.backend import Backend, create_backend
from fluidedge.tof.catalog import ServiceCatalog
from fluidedge.tof.config import TofConfig, parse_tof_config
from fluidedge.tof.errors import DataPlaneWaiting, TofConfigError
from fluidedge.tof.intercept.api import build_router as build_intercept_router
from fluidedge.tof.intercept.manager import InterceptManager
from fluidedge.tof.metrics import render
from fluidedge.tof.models import Service
from fluidedge.tof.superfluid.errors import OnDemandInvalid
from fluidedge.tof.superfluid.plane import OnDemandControl
from fluidedge.tof.waiting import WaitingPlane

if (
    TYPE_CHECKING
):  # the controller imports the instance manager (the controller imports the instance manager)
    from fluidedge.tof.superfluid.controller import Controller


log = logging.getLogger("fluidedge.tof")


class TofPart:
    """The Traffic Offloading Function hosted by the daemon."""

    name = "tof"

    def __init__(self, config: TofConfig, ctx: DaemonContext, backend: Backend | None = None):
        if config.filter_offloaded is None:  # security groups on: they must see offloads
            config = config.model_copy(update={"filter_offloaded": "secgroups" in ctx.parts})
        self.config = config
        self.ctx = ctx
        self.plane = backend or create_backend(config)  # the data plane
        # What the API, the GUI and the metrics read: the data plane, or while it waits for
        # the host, a WaitingPlane (see the module docstring).
        self.backend: Backend = self.plane
        self._wait = HostWait(
            log, "tof", "the data plane", "tof", config.program_check_interval or 1.0
        )
        self.catalog = ServiceCatalog(ctx.store, self._apply)
        self.catalog.check = self._check
        self.controller: Controller | None = None
        self.inactive = 0  # stored on-demand services this daemon cannot run
        self.exporter: Exporter | None = None  # usage records' export (docs/accounting.md)
        self.intercepts: InterceptManager | None = None  # lawful intercept (same doc)
        self._checker: asyncio.Task[None] | None = None  # the programs' check

    def _apply(self, services: Mapping[str, Service]) -> None:
        if self.controller is None:
            # Stored on-demand services stay declared but inactive where nothing can create
            # their instances (no [instances] part, or the fast path): their traffic goes to
            # the core as if they did not exist, and /stats says how many were left out.
            active = {n: s for n, s in services.items() if s.ondemand is None}
            self.inactive = len(services) - len(active)
            self.backend.apply(active)
            return
        self.backend.apply(services)
        self.controller.services_changed(services)

    def _check(self, service: Service) -> None:
        if service.ondemand is None:
            return
        if self.controller is None:
            runs_them = "instances" in self.ctx.parts and isinstance(self.plane, OnDemandControl)
            if runs_them and self.waiting is not None:
                raise DataPlaneWaiting(
                    f"onDemand: the data plane waits for the host ({self.waiting}): an "
                    "on-demand service can be declared once it runs"
                )
            why = (
                "the daemon has no [instances] part"
                if "instances" not in self.ctx.parts
                else f"the {self.plane.name} backend does not run on-demand services"
            )
            raise OnDemandInvalid(f"onDemand: {why}")
        self.controller.check(service)

    def router(self) -> APIRouter:
        router = build_router(self.catalog, lambda: self.backend, lambda: self.controller)
        router.include_router(
            build_usage_router(self._read_usage, self._export_stats, self._rate_limited)
        )
        router.include_router(build_intercept_router(lambda: self.intercepts))
        return router

    def _read_usage(
        self, ue: bytes | None, service: str | None, after: str | None, limit: int | None
    ) -> tuple[dict[str, object] | None, str | None]:
        """``GET /usage``: a backend that counts elsewhere (the fast path's kernel) folds first.
        While the data plane waits there is nothing to count yet: a 503 that says why, not
        "accounting off"."""
        if self.waiting is not None and self.config.accounting.enabled:
            raise DataPlaneWaiting(f"usage: the data plane waits for the host ({self.waiting})")
        fold_usage = getattr(self.backend, "fold_usage", None)
        if fold_usage is not None:
            fold_usage()
        return readout.usage_view(self._with_accounting, ue, service, after, limit)

    def _rate_limited(
        self, ue: bytes | None, service: str | None
    ) -> list[dict[str, object]] | None:
        rate_limited = getattr(self.backend, "rate_limited", None)
        return None if rate_limited is None else rate_limited(ue, service)

    def _with_accounting(self, call: Any) -> Any:
        with_accounting = getattr(self.backend, "with_accounting", None)
        return None if with_accounting is None else with_accounting(call)

    def _export_stats(self) -> dict[str, object]:
        return self.exporter.stats() if self.exporter is not None else {}

    def _start_exporter(self) -> None:
        if not self.config.accounting.enabled:
            return

        def take() -> list[UsageRecord]:
            return self._with_accounting(lambda a: a.drain()) or []

        def identities() -> list[dict[str, object]]:
            return readout.identities(self._with_accounting)

        directory = self.ctx.config.state_dir / "accounting"
        self.exporter = Exporter(self.config.accounting, directory, take, identities)
        self.exporter.start()

    def _stop_exporter(self) -> None:
        if self.exporter is None:
            return

        def close_all(a: Accountant) -> list[UsageRecord]:
            a.shutdown(time.monotonic())
            return a.drain(limit=1 << 30)

        final = self._with_accounting(close_all) or []
        self.exporter.stop(final)
        self.exporter = None

    def _make_controller(self) -> Controller | None:
        instances = self.ctx.parts.get("instances")
        if instances is None or not isinstance(self.plane, OnDemandControl):
            return None
        from fluidedge.tof.superfluid.admission import ScopedAdmission  # noqa: PLC0415
        from fluidedge.tof.superfluid.controller import Controller  # noqa: PLC0415

        config = self.config
        return Controller(
            instances.manager,  # type: ignore[attr-defined]
            self.plane,
            self.ctx.store,
            workers=config.ondemand_workers,
            create_rate=config.ondemand_create_rate,
            create_burst=config.ondemand_create_burst,
            queue_timeout=config.ondemand_queue_timeout,
            # the instance manager's routes' admission (tenant quotas), once they are built
            admission=ScopedAdmission(lambda: getattr(instances, "scoped", None)),
        )

    def _plug_apps(self) -> None:
        """Multi-host: ``apps_interface`` as a host port of the ``ovn`` apps network, on this
        node's chassis (:func:`fluidedge.ovn.networks.plug_host`); needs ``instances.ovn``."""
        network, ifname = self.config.apps_ovn_network, self.config.apps_interface
        if network is None or ifname is None:
            return
        from fluidedge.ovn import networks as ovn_networks  # noqa: PLC0415 - multi-host only
        from fluidedge.ovn.errors import OvnError  # noqa: PLC0415

        try:
            ovn_networks.plug_host(network, ifname, self.config.netns)
        except OvnError as exc:
            raise TofConfigError(f"[tof] apps_ovn_network {network}: {exc}") from exc

    def _unplug_apps(self) -> None:
        ifname = self.config.apps_interface
        if self.config.apps_ovn_network is None or ifname is None:
            return
        from fluidedge.ovn import networks as ovn_networks  # noqa: PLC0415 - multi-host only
        from fluidedge.ovn.errors import OvnError  # noqa: PLC0415

        try:
            ovn_networks.unplug_host(ifname)
        except OvnError as exc:
            log.warning("tof: apps host port %s: %s", ifname, exc)

    async def start(self) -> None:
        reason = await asyncio.to_thread(self._absent)
        if reason is None:
            await self._start_plane()
            return
        self._wait.begin(reason, self._absent, self._start_plane)
        self._serve_waiting()

    def _serve_waiting(self) -> None:
        """While the data plane waits: a WaitingPlane, with the declared services (as
        ``/stats`` shows them meanwhile)."""
        self.backend = WaitingPlane(self.plane.name, self.config, lambda: self.waiting)
        self.catalog.restore()

    def _absent(self) -> str | None:
        """What the data plane needs from the host and is not there: its namespace and
        devices (:mod:`fluidedge.tof.presence`), and for an ``apps_ovn_network`` the site's
        northbound database (after a site's reboot, its central may come up after this
        node)."""
        reason = presence.observe(self.config)
        if reason is not None or self.config.apps_ovn_network is None:
            return reason
        from fluidedge.ovn import networks as ovn_networks  # noqa: PLC0415 - multi-host only

        return ovn_networks.northbound_absent()

    @property
    def waiting(self) -> str | None:
        """Why the data plane waits for the host (None: it does not; ``/healthz`` shows it)."""
        return self._wait.reason

    async def _start_plane(self) -> None:
        """Open the data plane and run what needs it (see the module docstring's order)."""
        await asyncio.to_thread(self._plug_apps)
        await asyncio.to_thread(self.plane.start)
        try:
            await asyncio.to_thread(self._start_exporter)
            controller = self._make_controller()
            if controller is not None:
                controller.attach()
                self.controller = controller
            self.backend = self.plane
            self.catalog.restore()
            if controller is not None:
                await asyncio.to_thread(controller.start, self.catalog.snapshot())
            await asyncio.to_thread(self._start_intercepts)
        except BaseException:
            await self._unwind()
            raise
        heal = getattr(self.plane, "heal", None)
        if heal is not None and self.config.program_check_interval > 0:
            # Every interval: the devices someone deleted (the apps TUN, the punt veth) and
            # the tc programs someone took off them come back (see the backends' heal); a
            # failing check is logged once per distinct failure.
            self._checker = asyncio.create_task(
                every(
                    self.config.program_check_interval,
                    heal,
                    log,
                    "tof: the check of the data plane's devices and programs",
                    "programs_check_failed",
                )
            )

    async def _stop_plane(self) -> None:
        """Stop what :meth:`_start_plane` made, in reverse (at stop, and to undo a start
        that failed half-way)."""
        if self.intercepts is not None:
            await asyncio.to_thread(self.intercepts.stop)
            self.intercepts = None
        if self.controller is not None:
            await asyncio.to_thread(self.controller.stop)
            self.controller = None
        await asyncio.to_thread(self.plane.stop)
        await asyncio.to_thread(self._stop_exporter)

    async def _unwind(self) -> None:
        """Undo a start that failed half-way."""
        await self._stop_plane()
        if self.waiting is not None:  # back to waiting
            self._serve_waiting()

    def _start_intercepts(self) -> None:
        set_mirrors = getattr(self.plane, "set_mirrors", None)
        if set_mirrors is None:
            return
        manager = InterceptManager(
            self.ctx.store,
            set_mirrors,
            self.config.intercept,
            self.ctx.config.state_dir,
            self.config.netns,
        )
        manager.restore()
        self.intercepts = manager

    async def stop(self) -> None:
        await self._wait.stop()  # a deferred start under way finishes first, then stops below
        if self.waiting is not None:
            return  # the data plane never started
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        await self._stop_plane()
        await asyncio.to_thread(self._unplug_apps)

    def metrics(self) -> str:
        stats = self.backend.stats()
        text = render(stats, self.backend.tunnels() if self.config.metrics_per_bearer else None)
        if self.controller is not None:
            table = stats.get("onDemand")
            text += self.controller.metrics(table if isinstance(table, dict) else {})
        totals = readout.totals(self._with_accounting)
        if totals is not None:
            text += render_usage(totals, self._export_stats())
        return text


def create_part(section: dict[str, Any], ctx: DaemonContext) -> TofPart:
    """Registry factory for the ``[tof]`` table."""
    return TofPart(parse_tof_config(section), ctx)
