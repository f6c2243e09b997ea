"""The noisy-neighbour experiment of the seed (§7.6-7.8), pure part: scenarios, summaries, plots.

Each *trial* measures one target (``vfw``: an nftables rule set; ``vrouter``: a route table)
in one scenario: its saturation throughput (frames per second delivered past the target while
the generator sends as fast as it can) and the one-way latency of probes sent at a fixed,
moderate load (average, p99 and max over the trial's probes). Scenarios:

- ``baseline``: the target alone (the neighbour instances exist but are frozen);
- ``neighbour``: plus an LLC-thrashing neighbour free to run on every CPU;
- ``pinned``: the same neighbour pinned to CPUs the target does not use;
- ``cat-<model>``: pinned, plus one of the seed's CoS models, where the host has CAT.

Trials are interleaved (every scenario once per round, rounds repeated) so that slow drifts of
a shared host hit every scenario alike. Per target and scenario each metric is summarised over
the rounds (mean with a Student-t 95% CI, :mod:`fluidedge.measure.stats`) and reported as the
seed reports it: percentage change against the baseline measured in the same invocation. The
CI of a percentage change ``100 (s/b - 1)`` is propagated from both means' relative CIs
(first-order: ``(s/b) sqrt((hs/s)^2 + (hb/b)^2)``), which is stated with the results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from fluidedge.measure.errors import MeasureInputError
from fluidedge.measure.plots import SERIES_COLOURS
from fluidedge.measure.stats import Summary, percentile, summarize

TARGETS = ("vfw", "vrouter")
BASE_SCENARIOS = ("baseline", "neighbour", "pinned")
METRICS = ("throughput_kpps", "lat_avg_us", "lat_p99_us", "lat_max_us")
METRIC_LABELS = {
    "throughput_kpps": "throughput (kpps)",
    "lat_avg_us": "average latency (µs)",
    "lat_p99_us": "p99 latency (µs)",
    "lat_max_us": "max latency (µs)",
}
CI_NOTE = (
    "95% CI of a % change: first-order propagation of both means' Student-t CIs, "
    "(s/b)·sqrt((hs/s)²+(hb/b)²)"
)


def scenarios_for(models: Sequence[str], cat_supported: bool) -> list[str]:
    """The scenario list: the base three, then one per CoS model when the host has CAT."""
    out = list(BASE_SCENARIOS)
    if cat_supported:
        out += [f"cat-{m}" for m in models]
    return out


@dataclass(frozen=True)
class Trial:
    target: str
    scenario: str
    round: int
    throughput_kpps: float
    lat_avg_us: float | None  # None: no probe came back in this trial (all lost)
    lat_p99_us: float | None
    lat_max_us: float | None
    probes: int
    probes_sent: int
    neighbour_cpu_s: float = 0.0

    def row(self) -> dict[str, Any]:
        return asdict(self)


def latency_stats(samples_us: Sequence[float]) -> tuple[float, float, float] | None:
    """(average, p99, max) of one trial's probe latencies; None if no probe came back."""
    if not samples_us:
        return None
    return (sum(samples_us) / len(samples_us), percentile(samples_us, 99.0), max(samples_us))


def pct_change(value: Summary, base: Summary) -> tuple[float, float | None]:
    """Percentage change of ``value``'s mean against ``base``'s, and its CI half-width."""
    if base.mean == 0:
        raise MeasureInputError("baseline mean is 0: no percentage change")
    ratio = value.mean / base.mean
    if value.ci_low is None or base.ci_low is None or value.mean == 0:
        return 100.0 * (ratio - 1.0), None
    rel = math.hypot(value.ci_half_width / value.mean, base.ci_half_width / base.mean)
    return 100.0 * (ratio - 1.0), 100.0 * abs(ratio) * rel


@dataclass(frozen=True)
class Cell:
    target: str
    scenario: str
    metric: str
    summary: Summary
    change_pct: float | None
    change_ci_pct: float | None

    def row(self) -> dict[str, Any]:
        s = self.summary
        return {
            "target": self.target,
            "scenario": self.scenario,
            "metric": self.metric,
            "n": s.n,
            "mean": s.mean,
            "ci_low": s.ci_low,
            "ci_high": s.ci_high,
            "change_pct": self.change_pct,
            "change_ci_pct": self.change_ci_pct,
        }


def _values(trials: Sequence[Trial], metric: str) -> list[float]:
    return [float(v) for v in (getattr(x, metric) for x in trials) if v is not None]


def summarise(trials: Sequence[Trial], scenarios: Sequence[str]) -> list[Cell]:
    """One cell per (target, scenario, metric); % change against that target's baseline."""
    cells: list[Cell] = []
    targets = [t for t in TARGETS if any(x.target == t for x in trials)]
    for target in targets:
        base_trials = [x for x in trials if x.target == target and x.scenario == "baseline"]
        for scenario in scenarios:
            mine = [x for x in trials if x.target == target and x.scenario == scenario]
            if not mine:
                continue
            for metric in METRICS:
                values = _values(mine, metric)
                if not values:  # every probe of every trial lost: nothing to summarise
                    continue
                summary = summarize(values)
                change: tuple[float, float | None] = (0.0, 0.0)
                if scenario != "baseline":
                    base_values = _values(base_trials, metric)
                    if not base_values:
                        change = (math.nan, None)
                    else:
                        change = pct_change(summary, summarize(base_values))
                cells.append(
                    Cell(
                        target,
                        scenario,
                        metric,
                        summary,
                        None if math.isnan(change[0]) else change[0],
                        change[1],
                    )
                )
    return cells


def table_lines(cells: Sequence[Cell]) -> list[str]:
    """A plain-text table: one line per target and scenario, the four metrics with changes."""

    def fmt(cell: Cell) -> str:
        s = cell.summary
        text = f"{s.mean:9.1f} ±{s.ci_half_width:7.1f}"
        if cell.scenario != "baseline" and cell.change_pct is not None:
            ci = f"±{cell.change_ci_pct:.0f}" if cell.change_ci_pct is not None else ""
            text += f" ({cell.change_pct:+6.1f}%{ci})"
        else:
            text += " " * 10
        return text

    head = f"{'target':8} {'scenario':14} " + " ".join(f"{METRIC_LABELS[m]:>31}" for m in METRICS)
    lines = [head]
    keys: list[tuple[str, str]] = []
    for cell in cells:
        if (cell.target, cell.scenario) not in keys:
            keys.append((cell.target, cell.scenario))
    for target, scenario in keys:
        row = {c.metric: c for c in cells if (c.target, c.scenario) == (target, scenario)}
        lines.append(
            f"{target:8} {scenario:14} "
            + " ".join(f"{fmt(row[m]) if m in row else '-':>31}" for m in METRICS)
        )
    return lines


def chart(cells: Sequence[Cell], scenarios: Sequence[str], path: Path, title: str) -> Path:
    """The seed's figures (Figures 30-32, 34-35) in one: per metric, bars per scenario with
    95% CI whiskers, one panel per metric, targets side by side."""
    targets = [t for t in TARGETS if any(c.target == t for c in cells)]
    fig = Figure(figsize=(11, 7.2), dpi=110)
    axes = fig.subplots(2, 2)
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
    width = 0.8 / max(1, len(scenarios))
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        for index, scenario in enumerate(scenarios):
            xs, ys, errs, labels = [], [], [], []
            for t_index, target in enumerate(targets):
                cell = next(
                    (
                        c
                        for c in cells
                        if (c.target, c.scenario, c.metric) == (target, scenario, metric)
                    ),
                    None,
                )
                if cell is None:
                    continue
                xs.append(t_index + (index - (len(scenarios) - 1) / 2) * width)
                ys.append(cell.summary.mean)
                errs.append(cell.summary.ci_half_width)
                labels.append(
                    ""
                    if cell.change_pct is None or scenario == "baseline"
                    else f"{cell.change_pct:+.0f}%"
                )
            colour = SERIES_COLOURS.get(scenario, palette[index % len(palette)])
            bars = ax.bar(
                xs, ys, width=width * 0.92, yerr=errs, capsize=3, color=colour, label=scenario
            )
            for bar, label, err in zip(bars, labels, errs, strict=True):
                if label:  # above the whisker, so the two never overlap
                    ax.annotate(
                        label,
                        (bar.get_x() + bar.get_width() / 2, bar.get_height() + err),
                        xytext=(0, 3),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7.5,
                    )
        ax.set_xticks(range(len(targets)))
        ax.set_xticklabels(targets)
        ax.set_title(METRIC_LABELS[metric], loc="left", fontsize=10)
        ax.margins(y=0.18)
    axes.flat[0].legend(frameon=False, fontsize=8, ncol=2)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    return path
