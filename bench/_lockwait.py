"""What the lock-wait benchmarks share (``tof_fastpath_fold.py``, ``tof_tunnel_listing.py``,
``tof_usage_readout.py``): a prober standing in for the data plane, which takes its lock every
millisecond, and a userspace backend whose pipeline learned N bearers (not started: no root).

"max wait" is the longest the prober waited for the lock while a call ran: how long no packet
would have moved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fluidedge.tof.config import TofConfig
from fluidedge.tof.pipeline import ENB
from fluidedge.tof.userspace import UserspaceBackend
from tof_bearer_churn import gpdu, ue


class Prober:
    """Takes ``lock`` every millisecond; the longest wait while it ran (``max_wait``, s)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.max_wait = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            with self.lock:
                pass
            self.max_wait = max(self.max_wait, time.perf_counter() - t0)
            time.sleep(0.001)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(lock: threading.Lock, call: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, the prober's longest wait) of one ``call``."""
    with Prober(lock) as prober:
        time.sleep(0.005)
        t0 = time.perf_counter()
        call()
        wall = time.perf_counter() - t0
        time.sleep(0.003)
    return wall, prober.max_wait


def learned(n: int) -> UserspaceBackend:
    """A userspace backend (not started) whose pipeline learned ``n`` bearers from G-PDUs."""
    backend = UserspaceBackend(TofConfig(max_tunnels=max(n, 1)))
    for i in range(n):
        backend.pipeline.from_s1(gpdu(0x1000 + i, ue(i)), ENB, 1.0)
    return backend
