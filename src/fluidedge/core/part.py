"""What a product part implements to be hosted by the daemon.

A part is built by a factory from its config table and the shared :class:`DaemonContext`; it
contributes an :class:`fastapi.APIRouter`, and is started (restoring its declared state from the
store) before the API accepts requests and stopped on shutdown. Parts may look each other up
through the context (e.g. the measurement toolkit uses the instance manager).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter

from fluidedge.core.config import DaemonConfig
from fluidedge.core.store import Store


class Part(Protocol):
    """A product part hosted by the daemon."""

    name: str

    def router(self) -> APIRouter: ...

    async def start(self) -> None:
        """Restore declared state from the store and start data/control planes."""

    async def stop(self) -> None:
        """Stop everything the part started (declared state stays in the store)."""

    def metrics(self) -> str:
        """Prometheus text exposition of the part's counters (may be empty)."""


@dataclass
class DaemonContext:
    config: DaemonConfig
    store: Store
    parts: dict[str, Part] = field(default_factory=dict)
    # Tenants, their tokens and who owns what: a fluidedge.tenants.TenantService, built by
    # build_context (typed loosely: core sits below the tenants package; users check the type).
    tenants: object | None = None
    # The daemon's ASGI application (edge middleware included), set by create_app: a part
    # serving some of its routes on a listener of its own (the ME platform's Mp1 on the
    # platform network) hands requests to it.
    app: object | None = None
    # Set by the daemon once every part has started: a part's background work that must
    # follow the others' start (their restorers registered, their state installed) waits
    # for it.
    all_started: asyncio.Event = field(default_factory=asyncio.Event)
    # What stopped a part's start, when it is one of ours (a store refused: its message says
    # what and how to recover): the daemon ends its start with it as one line, after the
    # server's own report of the failed startup.
    startup_error: Exception | None = None


PartFactory = Callable[[dict[str, Any], DaemonContext], Part]
