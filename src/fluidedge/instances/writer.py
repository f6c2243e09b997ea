"""The manager's store writer: one thread that commits rows beside the request's own work.

A commit with ``store_synchronous = "full"`` waits for an fsync: 0.3 ms on a quiet disk, 3 to
16 ms on this shared VM under load, the largest part of a warm request's ``config`` phase. Two
kinds of writes go through this thread instead of the request's:

- the *claim* (shell row -> instance row) is submitted first, the request writes its files and
  cgroup limits while SQLite commits, and it waits for the commit (:meth:`Writer.submit`'s
  future) before the launcher is released: the row is still on disk before the workload runs
  and before the 201, only no longer *after* the other config work;
- *follow-ups* whose truth lives elsewhere (:meth:`Writer.defer`): the timing breakdown stored
  after the instance is ready, the state after a pause or resume (re-adoption reads the
  freezer, not the row). They are committed in order after the response, without waiting for
  the fsync (``durable=False``: they survive a kill -9, and a power loss once a later commit
  synced the WAL), so that a claim queued behind them waits for no fsync but its own; a
  crash may lose the last ones (a timing, a paused flag the kernel still knows), never an
  instance.

One thread, first in first out: a deferred update never overtakes the claim it follows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("fluidedge.instances")


class Writer:
    """A single worker thread for the manager's store writes."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fe-store")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the writer thread; the caller waits on the future."""
        return self._pool.submit(fn, *args)

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread; nobody waits, a failure is logged."""
        self._pool.submit(self._logged, fn, *args)

    @staticmethod
    def _logged(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a follow-up write must not vanish silently
            log.warning(
                "deferred store write failed: %s",
                exc,
                extra={"part": "instances", "event": "store_write_failed", "ids": fn.__name__},
            )

    def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
