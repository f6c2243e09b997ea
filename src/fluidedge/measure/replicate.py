"""The replicated-runs engine of the seed's §3.4: N runs per variant, per-phase samples.

A *trial* is one measured operation (e.g. create an instance, read its phase breakdown, delete it
before returning, so every run starts from the same state). The engine runs trials variant by
variant, shows a progress bar, hands every sample to a callback as soon as it exists (the caller
rewrites its CSV/JSON there), and stops cleanly on Ctrl-C: what was measured so far is kept and
the outcome says it was interrupted. A trial that raises is recorded as a failure and the run goes
on; too many consecutive failures abort the variant (the system under test is broken).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fluidedge.errors import FluidedgeError
from fluidedge.measure.errors import MeasureInputError
from fluidedge.measure.stats import Summary, summarize

MAX_CONSECUTIVE_FAILURES = 5


@dataclass(frozen=True, slots=True)
class Sample:
    """One run: its phase durations (ms, in order), the end-to-end total, and free metadata."""

    variant: str
    run: int
    phases_ms: dict[str, float]
    total_ms: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failure:
    variant: str
    run: int
    error: str


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0


Trial = Callable[[str, int], Sample]


@dataclass(frozen=True, slots=True)
class VariantSummary:
    variant: str
    n: int
    phases: dict[str, Summary]
    total: Summary

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "n": self.n,
            "phases": {name: s.as_dict() for name, s in self.phases.items()},
            "total": self.total.as_dict(),
        }


def phase_order(samples: Sequence[Sample]) -> list[str]:
    """All phase names, in first-seen order (the order the daemon reports them)."""
    order: dict[str, None] = {}
    for sample in samples:
        for name in sample.phases_ms:
            order.setdefault(name, None)
    return list(order)


def variant_order(samples: Sequence[Sample]) -> list[str]:
    order: dict[str, None] = {}
    for sample in samples:
        order.setdefault(sample.variant, None)
    return list(order)


def summarize_samples(samples: Sequence[Sample], confidence: float = 0.95) -> list[VariantSummary]:
    """Per variant: a Summary per phase (over the runs that report it) and of the total."""
    result = []
    for variant in variant_order(samples):
        mine = [s for s in samples if s.variant == variant]
        phases = {}
        for name in phase_order(mine):
            values = [s.phases_ms[name] for s in mine if name in s.phases_ms]
            phases[name] = summarize(values, confidence)
        total = summarize([s.total_ms for s in mine], confidence)
        result.append(VariantSummary(variant, len(mine), phases, total))
    return result


def replicate(
    variants: Sequence[str],
    runs: int,
    trial: Trial,
    *,
    on_sample: Callable[[Sample], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    progress: bool = True,
    title: str = "runs",
) -> Outcome:
    """Run ``trial(variant, i)`` ``runs`` times for each variant, in order."""
    if runs < 1:
        raise MeasureInputError(f"runs must be >= 1, got {runs}")
    if not variants:
        raise MeasureInputError("no variant to run")
    outcome = Outcome()
    started = time.monotonic()
    bar = ProgressBar(title, runs * len(variants), enabled=progress)
    try:
        with bar:
            for variant in variants:
                consecutive = 0
                for index in range(runs):
                    try:
                        sample = trial(variant, index)
                    except FluidedgeError as exc:
                        failure = Failure(variant, index, str(exc))
                        outcome.failures.append(failure)
                        if on_failure is not None:
                            on_failure(failure)
                        consecutive += 1
                        bar.advance(f"{variant}: failed ({exc})")
                        if consecutive >= MAX_CONSECUTIVE_FAILURES:
                            break
                        continue
                    consecutive = 0
                    outcome.samples.append(sample)
                    if on_sample is not None:
                        on_sample(sample)
                    bar.advance(f"{variant}: {sample.total_ms:.2f} ms")
    except KeyboardInterrupt:
        outcome.interrupted = True
    outcome.elapsed_s = time.monotonic() - started
    return outcome


class ProgressBar:
    """A rich progress bar, or nothing (tests, --no-progress)."""

    def __init__(self, title: str, total: int, *, enabled: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._title = title
        self._total = total
        self._enabled = enabled

    def __enter__(self) -> ProgressBar:
        if self._enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[last]}"),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self._title, total=self._total, last="")
        return self

    def advance(self, last: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, last=last)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
