"""The ME platform part (config table ``[mec]``): Mp1 and the app instances behind it.

It restores app instances, services, subscriptions and rules from the store at start and
reconciles the TOF's ``mec-`` services with the active rules of ready apps (the TOF part,
``[tof]``, starts before it). Mp1's routes authenticate their own requests (``own_auth``):
an app instance's token is not the daemon's.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fluidedge.core.part import DaemonContext
from fluidedge.mec.api import MP1_PREFIXES, build_app_support, build_apps, build_service_mgmt
from fluidedge.mec.errors import MecInvalid
from fluidedge.mec.notify import IPNetwork, Notifier
from fluidedge.mec.persist import Tables
from fluidedge.mec.platform import CatalogTof, Platform, TofPort

DEFAULT_CALLBACK_NETWORKS = [
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
]  # fmt: skip


class MecConfig(BaseModel):
    """The ``[mec]`` table."""

    model_config = ConfigDict(extra="forbid")
    # Where notifications may be sent (a callback is checked after its name is resolved).
    callback_networks: Annotated[list[str], Field(max_length=64)] = Field(
        default_factory=lambda: list(DEFAULT_CALLBACK_NETWORKS)
    )
    notify_attempts: int = Field(default=3, ge=1, le=10)
    notify_timeout: float = Field(default=5.0, gt=0.0, le=60.0)

    def networks(self) -> list[IPNetwork]:
        try:
            return [ipaddress.ip_network(n, strict=False) for n in self.callback_networks]
        except ValueError as exc:
            raise MecInvalid(f"config [mec] callback_networks: {exc}") from exc


class MecPart:
    name = "mec"
    own_auth = MP1_PREFIXES

    def __init__(self, config: MecConfig, ctx: DaemonContext) -> None:
        self.config = config
        self.ctx = ctx
        self.notifier = Notifier(
            config.networks(), attempts=config.notify_attempts, timeout=config.notify_timeout
        )
        self.platform = Platform(Tables(ctx.store), self.notifier.submit, self._tof)

    def _tof(self) -> TofPort | None:
        part = self.ctx.parts.get("tof")
        return CatalogTof(part) if part is not None and hasattr(part, "catalog") else None

    def router(self) -> APIRouter:
        router = APIRouter()
        router.include_router(build_service_mgmt(self.platform))
        router.include_router(build_app_support(self.platform))
        router.include_router(build_apps(self.platform))
        return router

    async def start(self) -> None:
        await self.notifier.start()
        await asyncio.to_thread(self.platform.load)

    async def stop(self) -> None:
        await self.notifier.stop()

    def rewrite_openapi(self, document: dict[str, Any]) -> None:
        """Mp1 routes always need a token (the admin's or an app's), whatever api.open_reads."""
        for path, item in document.get("paths", {}).items():
            if not path.startswith(MP1_PREFIXES):
                continue
            for operation in item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["security"] = [{"bearer": []}]

    def metrics(self) -> str:
        p = self.platform
        c = self.notifier.counters
        lines = [
            "# HELP fluidedge_mec_apps app instances on the ME platform",
            "# TYPE fluidedge_mec_apps gauge",
            f"fluidedge_mec_apps {len(p.apps)}",
            "# HELP fluidedge_mec_services services registered over Mp1",
            "# TYPE fluidedge_mec_services gauge",
            f"fluidedge_mec_services {len(p.services)}",
            "# HELP fluidedge_mec_notifications_total Mp1 notifications by outcome",
            "# TYPE fluidedge_mec_notifications_total counter",
            f'fluidedge_mec_notifications_total{{outcome="delivered"}} {c.delivered}',
            f'fluidedge_mec_notifications_total{{outcome="failed"}} {c.failed}',
            f'fluidedge_mec_notifications_total{{outcome="refused"}} {c.refused}',
        ]
        return "\n".join(lines) + "\n"


def create_part(section: dict[str, Any], ctx: DaemonContext) -> MecPart:
    try:
        config = MecConfig.model_validate(section)
    except ValidationError as exc:
        raise MecInvalid(f"config [mec]: {exc}") from exc
    return MecPart(config, ctx)
