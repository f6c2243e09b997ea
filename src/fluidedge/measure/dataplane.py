"""``bench dataplane``: zero-loss throughput per frame size and scenario, against kernel forwarding.

The seed's §7 reports RFC 2544 throughput and latency at 64/256/1024/1518 bytes and iMIX, and §8
normalises every platform against stock Linux measured in the same campaign. Here a *scenario*
is a way the same GTP-U frames cross the host: ``kernel`` (plain Linux IP forwarding: the
baseline), ``passthrough`` (a TOF backend forwarding traffic it does not offload) and
``offloaded`` (the TOF decapsulating and NATing it to an edge app). For each frame size and
scenario the RFC 2544 search (:mod:`fluidedge.measure.rfc2544`) finds the zero-loss rate.

Pure orchestration: a :class:`TrafficSource` offers traffic for a (scenario, size); the lab
adapter (:mod:`fluidedge.measure.labsource`) is the real one, the unit tests use a fake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fluidedge.measure import plots
from fluidedge.measure.errors import MeasureInputError
from fluidedge.measure.rfc2544 import (
    OfferResult,
    SearchConfig,
    SearchResult,
    latency_summary,
    line_bits_per_second,
    zero_loss_search,
)

BASELINE = "kernel"
SCENARIOS = (BASELINE, "passthrough", "offloaded")
THROUGHPUT_PNG = "throughput.png"
LATENCY_PNG = "latency.png"


class TrafficSource(Protocol):
    """Offers traffic of one frame size through one scenario and counts what arrives."""

    def offer(self, scenario: str, size: str, rate_pps: float, duration_s: float) -> OfferResult:
        """Offer ``rate_pps`` for ``duration_s``; ``OfferResult.latency_us`` may be empty."""
        ...


@dataclass
class Cell:
    """One (scenario, size): the search and what it found."""

    scenario: str
    size: str
    search: SearchResult

    def row(self, baseline_pps: float | None) -> dict[str, Any]:
        best = self.search.best
        latency = latency_summary(best.latency_us) if best is not None else None
        pps = self.search.throughput_pps
        return {
            "scenario": self.scenario,
            "size": self.size,
            "throughput_pps": pps,
            "throughput_mbps": line_bits_per_second(pps, self.size) / 1e6,
            "forwarded_pps": best.forwarded_pps if best is not None else 0.0,
            "ratio_to_baseline": (pps / baseline_pps) if baseline_pps else None,
            "generator_limited": self.search.generator_limited,
            "converged": self.search.converged,
            "trials": len(self.search.trials),
            "latency_avg_us": latency["avg_us"] if latency else None,
            "latency_max_us": latency["max_us"] if latency else None,
            "latency_p99_us": latency["p99_us"] if latency else None,
        }


@dataclass
class DataplaneOutcome:
    cells: list[Cell] = field(default_factory=list)
    interrupted: bool = False

    def cell(self, scenario: str, size: str) -> Cell | None:
        for cell in self.cells:
            if cell.scenario == scenario and cell.size == size:
                return cell
        return None

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for cell in self.cells:
            base = self.cell(BASELINE, cell.size)
            rows.append(cell.row(base.search.throughput_pps if base is not None else None))
        return rows


def run_dataplane(
    source: TrafficSource,
    *,
    sizes: Sequence[str],
    scenarios: Sequence[str],
    config: SearchConfig,
    on_cell: Callable[[Cell], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DataplaneOutcome:
    """The whole matrix, scenario by scenario (one set-up each), size by size; Ctrl-C keeps."""
    if not sizes or not scenarios:
        raise MeasureInputError("give at least one frame size and one scenario")
    config.check()
    outcome = DataplaneOutcome()
    try:
        for scenario in scenarios:
            for size in sizes:
                if progress is not None:
                    progress(f"{scenario} {size}")

                def offer(
                    rate: float, duration: float, s: str = scenario, z: str = size
                ) -> OfferResult:
                    return source.offer(s, z, rate, duration)

                cell = Cell(scenario, size, zero_loss_search(offer, config))
                outcome.cells.append(cell)
                if on_cell is not None:
                    on_cell(cell)
    except KeyboardInterrupt:
        outcome.interrupted = True
    return outcome


def charts(outcome: DataplaneOutcome, sizes: Sequence[str], run_dir: Path, title: str) -> list[str]:
    """Throughput (and latency if measured) normalised to the kernel baseline."""
    figures: list[str] = []
    base = [outcome.cell(BASELINE, s) for s in sizes]
    if not any(base):
        return figures
    baseline = [c.search.throughput_pps if c is not None else None for c in base]
    others = [s for s in dict.fromkeys(c.scenario for c in outcome.cells) if s != BASELINE]
    series: dict[str, list[float | None]] = {}
    notes: dict[str, list[str]] = {}
    for scenario in others:
        cells = [outcome.cell(scenario, s) for s in sizes]
        series[scenario] = [c.search.throughput_pps if c is not None else None for c in cells]
        notes[scenario] = [
            f"{c.search.throughput_pps / 1e6:.3f} Mpps" if c is not None else "" for c in cells
        ]
    if not series:
        return figures
    kernel_text = ", ".join(
        f"{s}: {b / 1e6:.3f}" for s, b in zip(sizes, baseline, strict=True) if b
    )
    if any(c is not None and c.search.generator_limited for c in base):
        kernel_text += "\n(baseline limited by the generator: ratios are upper bounds)"
    plots.normalised_bars(
        list(sizes),
        series,
        baseline,
        run_dir / THROUGHPUT_PNG,
        title=f"{title}\nkernel forwarding (Mpps) {kernel_text}",
        ylabel="zero-loss throughput / kernel forwarding",
        annotations=notes,
    )
    figures.append(THROUGHPUT_PNG)
    latency = {
        scenario: [_avg_latency(outcome.cell(scenario, s)) for s in sizes]
        for scenario in dict.fromkeys(c.scenario for c in outcome.cells)
    }
    if any(v for values in latency.values() for v in values):
        plots.grouped_bars(
            list(sizes),
            latency,
            run_dir / LATENCY_PNG,
            title="Average one-way latency at the zero-loss rate\n(probes in the stream, "
            "kernel timestamps; log scale)",
            ylabel="latency (µs)",
        )
        figures.append(LATENCY_PNG)
    return figures


def _avg_latency(cell: Cell | None) -> float | None:
    if cell is None or cell.search.best is None:
        return None
    summary = latency_summary(cell.search.best.latency_us)
    return summary["avg_us"] if summary else None
