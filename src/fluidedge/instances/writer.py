"""The manager's store writer: one thread that commits follow-up rows after the answers.

A commit with ``store_synchronous = "full"`` waits for an fsync: 0.3 ms on a quiet disk, 3 to
16 ms on this shared VM under load. A warm creation's *claim* (shell row -> instance row) is
committed in the request's own thread without its flush, before the launcher is released
(a kill -9 from then on re-adopts the instance), and the flush of the WAL
(:meth:`fluidedge.core.store.Store.sync`) is made while the workload execs, before the 201: a
flush on this thread, overlapping the config work, measured no faster (its wake-up and GIL
hand-offs with that work cost what the overlap saved). What goes through this thread are
*follow-ups* whose truth lives elsewhere (:meth:`Writer.defer`): the timing breakdown stored
after the instance is ready, the state after a pause or resume (re-adoption reads the
freezer, not the row). They are committed
in order after the response, without waiting for the fsync (``durable=False``: they survive a
kill -9, and a power loss once a later commit synced the WAL); a crash may lose the last ones
(a timing, a paused flag the kernel still knows), never an instance. :meth:`Writer.submit`
runs a call on the thread and returns its future (tests, rare writes that must follow the
queued ones).

One thread, first in first out: a follow-up never overtakes another; it is queued after its
claim committed, and a late one never rewrites a deleted or newer row
(:meth:`~fluidedge.instances.persist.Tables.update_instance` matches name *and* id).

A follow-up also waits until the answer that caused it is out: the writer holds it back for up
to ``DEFER_DELAY_S`` (or until the next submitted call, which must come after it), and the API
releases it (:meth:`Writer.kick`) once its response is sent. Started at once, it competed with
that very response for the GIL and, on this 2-CPU host, for a CPU (its ``json.dumps`` and
SQLite's statement preparation run under the GIL), adding to the pause, resume or creation it
follows.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("fluidedge.instances")

# How long a follow-up waits for a kick (the response sent) before it is written anyway.
DEFER_DELAY_S = 0.02


# Writers whose thread runs: at the interpreter's exit, what they hold is written (their thread
# is a daemon thread, which would otherwise be stopped with follow-ups still queued).
_LIVE: weakref.WeakSet[Writer] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    for writer in list(_LIVE):
        writer.close()


class Writer:
    """A single worker thread for the manager's store writes (see the module docstring)."""

    def __init__(self, delay: float = DEFER_DELAY_S) -> None:
        self.delay = delay
        self._cond = threading.Condition()
        # (fn, args, the caller's future or None for a follow-up, due: monotonic seconds)
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...], Future[Any] | None, float]]
        self._queue = deque()
        self._urgent = 0  # submitted calls in the queue: everything before them goes now
        self._kicked = False  # the follow-ups queued so far may go now
        self._closed = False
        self._thread: threading.Thread | None = None  # started on first use

    def _start(self) -> None:
        """Start the thread if it is not running (called with the condition held)."""
        if self._closed:
            raise RuntimeError("store writer closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fe-store", daemon=True)
            self._thread.start()
            _LIVE.add(self)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the writer thread now (after what is queued before it); the
        caller waits on the future."""
        future: Future[Any] = Future()
        with self._cond:
            self._start()
            self._queue.append((fn, args, future, 0.0))
            self._urgent += 1
            self._cond.notify()
        return future

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread after a kick, the next submit or
        ``delay``, whichever comes first; nobody waits, a failure is logged."""
        with self._cond:
            self._start()
            self._queue.append((fn, args, None, time.monotonic() + self.delay))
            if len(self._queue) == 1:
                self._cond.notify()  # an idle writer sleeps without a deadline: give it one

    def kick(self) -> None:
        """Release the follow-ups queued so far (the answer they follow is out)."""
        with self._cond:
            if self._queue and not self._kicked:
                self._kicked = True
                self._cond.notify()

    def _next(self) -> tuple[Callable[..., Any], tuple[Any, ...], Future[Any] | None] | None:
        """The next call to run, waiting for one; None once closed and drained."""
        with self._cond:
            while True:
                if self._queue:
                    fn, args, future, due = self._queue[0]
                    now = time.monotonic()
                    if self._urgent or self._kicked or self._closed or due <= now:
                        self._queue.popleft()
                        if future is not None:
                            self._urgent -= 1
                        if not self._queue:
                            self._kicked = False
                        return fn, args, future
                    self._cond.wait(due - now)
                elif self._closed:
                    return None
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while (job := self._next()) is not None:
            fn, args, future = job
            if future is None:
                self._logged(fn, *args)
            elif future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # the caller re-raises it
                    future.set_exception(exc)
                else:
                    future.set_result(result)

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
        """Wait until everything submitted or deferred so far is committed."""
        self.submit(lambda: None).result()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
