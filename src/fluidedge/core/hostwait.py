"""A part's wait for what the host does not have yet, instead of a refused start.

A reboot takes the operator's network namespaces and the links in them; the operator's own
set-up (a script, a unit, an orchestrator) makes them again, not always before the daemon
starts. A part that needs one of them (the TOF's S1 interfaces, the ME platform's DNS
responder in the TOF's namespace) used to refuse its start, and the daemon's whole start with
it: every instance, rule and service of the node stayed down for one absent device.

:class:`HostWait` is the other way: the part starts without it, says why it waits (``reason``,
which ``/healthz`` shows), looks again every interval, and runs the deferred start once
nothing is absent. Only *absence* is waited for (the part's own ``look`` says what counts); a
deferred start that fails is logged once per distinct reason and tried again at the next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from fluidedge.errors import FluidedgeError


class HostWait:
    """One deferred start of ``part``'s ``what`` (log events ``<event>_waiting`` and
    ``<event>_started``)."""

    def __init__(
        self, log: logging.Logger, part: str, what: str, event: str, interval: float
    ) -> None:
        self.log = log
        self.part = part
        self.what = what
        self.event = event
        self.interval = interval
        self.reason: str | None = None  # why it waits (None: it does not)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def begin(
        self,
        reason: str,
        look: Callable[[], str | None],
        start: Callable[[], Awaitable[None]],
    ) -> None:
        """Wait (``reason``: what is absent now); ``look`` (run in a thread) says what is
        absent then, None once nothing is, and ``start`` runs then."""
        self.reason = reason
        self._say(reason)
        self._task = asyncio.create_task(self._run(look, start))

    def _say(self, reason: str) -> None:
        self.log.error(
            "%s: %s waits for the host: %s; the rest of the daemon serves, and it starts once "
            "that is there (looked at every %g s)",
            self.part,
            self.what,
            reason,
            self.interval,
            extra={"part": self.part, "event": f"{self.event}_waiting"},
        )

    async def _run(
        self, look: Callable[[], str | None], start: Callable[[], Awaitable[None]]
    ) -> None:
        said = self.reason
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            if self._stopping.is_set():
                return
            try:
                reason = await asyncio.to_thread(look)
            except Exception as exc:  # a look that fails is a reason too, not the wait's end
                reason = f"the look failed: {exc!r}"
            if reason is None:
                try:
                    await start()
                except Exception as exc:  # any failure: said, and tried again
                    what = str(exc) if isinstance(exc, FluidedgeError) else repr(exc)
                    reason = f"its start failed: {what}"
                else:
                    self.reason = None
                    self.log.warning(
                        "%s: %s started",
                        self.part,
                        self.what,
                        extra={"part": self.part, "event": f"{self.event}_started"},
                    )
                    return
            self.reason = reason
            if reason != said:  # once per distinct reason
                self._say(reason)
                said = reason

    async def stop(self) -> None:
        """End the wait; a deferred start under way is let finish first."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
