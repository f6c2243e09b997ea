"""A check run every few seconds for as long as a part runs, whose failures are logged once.

The parts' background checks (security-group rules taken away from outside, a switch of ours
that died) run every second or so; a failure that persists (a namespace deleted under the
daemon) would otherwise write the same error every second. :func:`every` logs a failure once
per distinct message, and once when the check works again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable


async def every(
    interval: float,
    check: Callable[[], object],
    log: logging.Logger,
    what: str,
    event: str,
    *,
    first: float | None = None,
) -> None:
    """Run ``check`` in a thread every ``interval`` seconds until cancelled (the first time
    after ``first`` seconds, default ``interval``); ``what`` names it in the log (``"<what>
    failed (tried again every N s): <error>"``), ``event`` is the log record's ``event``."""
    failing: str | None = None
    delay = interval if first is None else first
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            await asyncio.to_thread(check)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != failing:
                log.error(
                    "%s failed (tried again every %g s): %s",
                    what,
                    interval,
                    error,
                    extra={"event": event},
                )
            failing = error
        else:
            if failing is not None:
                log.info("%s works again", what)
            failing = None
