"""Per-phase timing of a request (the VIM instantiation model of seed §3) and its histograms.

Phases, in order: ``accept`` (API accept + validation), ``placement``, ``shell`` (acquisition
from the pool, or the whole cold create), ``config`` (assignment, per-request limits),
``network`` (addresses, routes), ``start`` (release of the shell's process), ``durable`` (the
claim's flush to disk, while the workload execs), ``ready`` (the readiness check).
:class:`PhaseTimer` marks phase ends with ``perf_counter``; the manager stores the breakdown
with the instance and feeds :class:`Histograms` for ``/metrics``.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from fluidedge.core.metrics import LATENCY_BUCKETS_S

PHASES = ("accept", "placement", "shell", "config", "network", "start", "durable", "ready")
BUCKETS_S = LATENCY_BUCKETS_S


class PhaseTimer:
    """Record phase durations from a start instant (``perf_counter`` seconds)."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.perf_counter() if started is None else started
        self._last = self.started
        self.phases: dict[str, float] = dict.fromkeys(PHASES, 0.0)

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + (now - self._last)
        self._last = now

    def milliseconds(self) -> dict[str, float]:
        out = {phase: round(seconds * 1000, 4) for phase, seconds in self.phases.items()}
        out["total"] = round((self._last - self.started) * 1000, 4)
        return out


class Histograms:
    """Histograms keyed by metric name, label names taken from the first observation.

    Backed by ``prometheus_client`` (a private registry per manager, so several managers in a
    process do not clash); :meth:`render` gives the Prometheus text the part contributes to the
    daemon's ``/metrics``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self._help: dict[str, str] = {}
        self._metrics: dict[str, Histogram] = {}
        # (metric, label values in call order) -> the labelled child: ``labels()`` checks and
        # sorts its arguments and takes a lock on every call (about 10 µs, eight times per
        # warm creation); the children are the same objects each time.
        self._children: dict[tuple[str, tuple[tuple[str, str], ...]], Histogram] = {}

    def declare(self, metric: str, help_text: str) -> None:
        self._help[metric] = help_text

    def observe(self, metric: str, seconds: float, **labels: str) -> None:
        key = (metric, tuple(labels.items()))
        child = self._children.get(key)
        if child is None:
            child = self._child(metric, labels)
            self._children[key] = child
        child.observe(seconds)

    def _child(self, metric: str, labels: dict[str, str]) -> Histogram:
        histogram = self._metrics.get(metric)
        if histogram is None:
            with self._lock:
                histogram = self._metrics.get(metric)
                if histogram is None:
                    histogram = Histogram(
                        metric,
                        self._help.get(metric, metric),
                        sorted(labels),
                        buckets=BUCKETS_S,
                        registry=self.registry,
                    )
                    self._metrics[metric] = histogram
        return histogram.labels(**labels) if labels else histogram

    def render(self) -> str:
        return generate_latest(self.registry).decode()
