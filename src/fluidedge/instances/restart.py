"""Instances whose restart policy is ``always``: made again when their workload is gone.

Why: a reboot takes every container, and a workload may exit on its own (a crash, an OOM
kill). An instance used to stay ``exited`` then, until someone deleted it and created it
again: an edge node whose apps do not come back after a power cut is not one an operator can
leave alone. ``restart = "always"`` (the template's, or the request's) says to make it again.

When: at the daemon's start, for each such instance whose container is gone (re-adoption finds
it ``exited``), and while the daemon runs, when its workload exits (one pidfd per such
instance, waited on by a :class:`~fluidedge.instances.shellwatch.ShellWatch`; nothing is
polled, and instances without the policy cost nothing).

How (the manager's ``_restart_now``): the same name, the same container id (so its veths,
switch ports, a chain's port pairs and its directory keep their names), the same addresses
and the request it was created with, stored in its row; on the cold path, a fresh shell of
that id. Its security-group settings are the stored ones (a change made since its creation
holds). A re-creation that fails leaves the instance ``exited``, its row as it was, and is
tried again after the back-off.

Back-off (:func:`delay`, pure): a workload that ran less than :data:`STABLE_S` counts as a
failure, and so does a re-creation that failed; the n-th failure in a row waits
``BASE_S * 2**(n-1)`` seconds, at most :data:`MAX_S`; a run of :data:`STABLE_S` or more starts
the count again (systemd's ``Restart=always`` with a growing ``RestartSec``, Kubernetes'
CrashLoopBackOff).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from fluidedge.linux import procfs

log = logging.getLogger("fluidedge.instances")

BASE_S = 1.0
MAX_S = 300.0
STABLE_S = 10.0


def delay(failures: int) -> float:
    """Seconds to wait before making an instance again after ``failures`` in a row."""
    if failures <= 0:
        return 0.0
    return float(min(MAX_S, BASE_S * 2 ** min(failures - 1, 30)))


def exit_fd(pid: int) -> int:
    """A pidfd of ``pid``, readable once it exits (the caller owns it); ProcessLookupError
    when it is gone or a zombie already."""
    fd = os.pidfd_open(pid)
    if not procfs.process_running(pid):
        os.close(fd)
        raise ProcessLookupError(f"process {pid} has exited")
    return fd


class Restarter:
    """The instances due to be made again, and the thread that makes them.

    ``restart(name, container_id)`` makes the instance again, does nothing when there is
    nothing to do (deleted or replaced meanwhile, its workload running), and raises when it
    failed (counted as a failure: tried again after the back-off)."""

    def __init__(self, restart: Callable[[str, str], object]) -> None:
        self._restart = restart
        self._cond = threading.Condition()
        self._due: dict[str, tuple[float, str]] = {}  # name -> (monotonic due time, id)
        self._failures: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def schedule(self, name: str, container_id: str, *, ran_for: float | None) -> float:
        """Make ``name`` again after the back-off; ``ran_for``: how long its workload ran (None:
        not known, e.g. found gone at start: no failure counted). The delay chosen."""
        with self._cond:
            if self._closed:
                return 0.0
            if ran_for is not None and ran_for < STABLE_S:
                self._failures[name] = self._failures.get(name, 0) + 1
            elif ran_for is not None:
                self._failures.pop(name, None)
            wait = delay(self._failures.get(name, 0))
            self._due[name] = (time.monotonic() + wait, container_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fe-restart", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return wait

    def cancel(self, name: str) -> None:
        """Forget ``name`` (deleted)."""
        with self._cond:
            self._due.pop(name, None)
            self._failures.pop(name, None)

    def pending(self) -> dict[str, float]:
        """Name -> seconds until it is made again (``GET /v1/stats``)."""
        now = time.monotonic()
        with self._cond:
            return {n: round(max(0.0, due - now), 3) for n, (due, _) in self._due.items()}

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def _next(self) -> tuple[str, str] | None:
        """The next instance due (waiting for it), None once closed."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._due:
                    name, (due, container_id) = min(self._due.items(), key=lambda kv: kv[1][0])
                    if due <= now:
                        del self._due[name]
                        return name, container_id
                    self._cond.wait(timeout=due - now)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (item := self._next()) is not None:
            name, container_id = item
            try:
                self._restart(name, container_id)
            except Exception as exc:  # the thread outlives any one failure
                with self._cond:
                    failures = self._failures.get(name, 0) + 1
                    self._failures[name] = failures
                    wait = delay(failures)
                    if not self._closed:
                        self._due.setdefault(name, (time.monotonic() + wait, container_id))
                log.error(
                    "instances: instance %s could not be made again (%s): tried again in %g s",
                    name,
                    exc,
                    wait,
                    extra={"part": "instances", "event": "instance_restart_failed", "ids": name},
                )
