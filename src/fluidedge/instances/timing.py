"""Per-phase timing of a request (the VIM instantiation model of seed §3) and its histograms.

Phases, in order: ``accept`` (API accept + validation), ``placement``, ``shell`` (acquisition
from the pool, or the whole cold create), ``config`` (assignment, per-request limits),
``network`` (addresses, routes), ``start`` (release of the shell's process), ``ready`` (the
readiness check). :class:`PhaseTimer` marks phase ends with ``perf_counter``; the manager stores
the breakdown with the instance and feeds :class:`Histograms` for ``/metrics``.
"""

from __future__ import annotations

import threading
import time

PHASES = ("accept", "placement", "shell", "config", "network", "start", "ready")
BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


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


class Histogram:
    """A Prometheus histogram (cumulative buckets, sum, count) for one label set."""

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS_S)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.total += 1
        self.sum += seconds
        for index, bound in enumerate(BUCKETS_S):
            if seconds <= bound:
                self.counts[index] += 1


class Histograms:
    """Histograms keyed by (metric, labels), rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[tuple[tuple[str, str], ...], Histogram]] = {}
        self._help: dict[str, str] = {}

    def declare(self, metric: str, help_text: str) -> None:
        self._help[metric] = help_text
        self._data.setdefault(metric, {})

    def observe(self, metric: str, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._data.setdefault(metric, {})
            series.setdefault(key, Histogram()).observe(seconds)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for metric, series in self._data.items():
                lines.append(f"# HELP {metric} {self._help.get(metric, metric)}")
                lines.append(f"# TYPE {metric} histogram")
                for key, hist in series.items():
                    base = ",".join(f'{k}="{v}"' for k, v in key)
                    sep = "," if base else ""
                    for bound, count in zip(BUCKETS_S, hist.counts, strict=True):
                        lines.append(f'{metric}_bucket{{{base}{sep}le="{bound}"}} {count}')
                    lines.append(f'{metric}_bucket{{{base}{sep}le="+Inf"}} {hist.total}')
                    labels = f"{{{base}}}" if base else ""
                    lines.append(f"{metric}_sum{labels} {hist.sum:.6f}")
                    lines.append(f"{metric}_count{labels} {hist.total}")
        return "\n".join(lines) + ("\n" if lines else "")
