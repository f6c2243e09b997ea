"""The figures: phase breakdowns (seed Figs 6-10), density curves (LightVM), data-plane bars (§8).

Rendering only: every function takes already-summarised numbers and writes one PNG with the Agg
backend (no display needed). Phases and series keep the same colour in every figure so that a
reader can compare a pool bar with a cold bar, or one report with another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from fluidedge.measure.replicate import VariantSummary

DPI = 110
BREAKDOWN_WIDTH_IN = 9.0
# Muted qualitative palette (seaborn "deep"), extended; known phases take the first eight.
_PALETTE = (
    "#4C72B0",
    "#8172B3",
    "#55A868",
    "#C44E52",
    "#DD8452",
    "#64B5CD",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#2F4B7C",
    "#A05195",
)
# The instance manager's phases in the order of the VIM model (seed §3, Figures 1-5).
KNOWN_PHASES = (
    "accept",
    "placement",
    "shell",
    "config",
    "network",
    "start",
    "durable",
    "ready",
    "http",
)
SERIES_COLOURS = {
    "baseline": "#999999",
    "kernel": "#999999",
    "passthrough": "#0072B2",
    "offload": "#E69F00",
    "offloaded": "#E69F00",
}


_STYLE: dict[Any, Any] = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "--",
}


def _figure(width: float, height: float) -> Figure:
    """A pyplot-free Figure (no global backend state; thread-safe; renders with Agg)."""
    return Figure(figsize=(width, height), dpi=DPI)


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)


def phase_colours(phases: Sequence[str]) -> dict[str, str]:
    """A stable colour per phase: known phases keep theirs, others follow in order."""
    colours: dict[str, str] = {}
    spare = iter(_PALETTE[len(KNOWN_PHASES) :] + _PALETTE)
    for phase in phases:
        key = phase.lower()
        hit = next((i for i, known in enumerate(KNOWN_PHASES) if key == known), None)
        if hit is not None:
            colours[phase] = _PALETTE[hit % len(_PALETTE)]
        else:
            colours[phase] = next(spare, "#777777")
    return colours


def breakdown_chart(
    summaries: Sequence[VariantSummary],
    path: Path,
    *,
    title: str,
    unit: str = "ms",
    subtitle: str = "",
) -> Path:
    """Horizontal stacked bars, one per variant, one segment per phase (mean), CI error bars.

    Each segment's error bar sits at its right end and spans its own 95% CI; the total's CI is
    printed after the bar, since phases are not independent and their CIs do not simply add.
    """
    with matplotlib.rc_context(_STYLE):
        return _breakdown_chart(summaries, path, title=title, unit=unit, subtitle=subtitle)


def _breakdown_chart(
    summaries: Sequence[VariantSummary], path: Path, *, title: str, unit: str, subtitle: str
) -> Path:
    phases: list[str] = []
    for summary in summaries:
        for name in summary.phases:
            if name not in phases:
                phases.append(name)
    colours = phase_colours(phases)
    legend_rows = _legend_rows(len(phases))
    height = breakdown_height_in(len(summaries), len(phases))
    fig = _figure(BREAKDOWN_WIDTH_IN, height)
    ax = fig.subplots()
    labels = [s.variant for s in summaries]
    positions = list(range(len(summaries)))[::-1]
    drawn: set[str] = set()
    ends: list[tuple[float, int, str]] = []
    widest = 0.0
    for y, summary in zip(positions, summaries, strict=True):
        left = 0.0
        reach = 0.0
        for name, phase in summary.phases.items():
            if phase.mean <= 0:
                continue
            ax.barh(
                y,
                phase.mean,
                left=left,
                height=0.55,
                color=colours[name],
                edgecolor="white",
                linewidth=0.6,
                label=name if name not in drawn else None,
            )
            drawn.add(name)
            left += phase.mean
            reach = max(reach, left + phase.ci_half_width)
            ax.errorbar(
                left,
                y,
                xerr=phase.ci_half_width,
                fmt="none",
                ecolor="#222222",
                elinewidth=0.9,
                capsize=3,
            )
        total = summary.total
        end = max(left, total.mean, reach)
        widest = max(widest, end)
        text = f"{total.mean:.2f}"
        if total.ci_low is not None:
            text += f" ± {total.ci_half_width:.2f}"
        text += f" {unit}\np50 {total.median:.2f} · p99 {total.p99:.2f} · n={total.n}"
        ends.append((end, y, text))
    for end, y, text in ends:
        ax.text(end + widest * 0.03, y, text, va="center", ha="left", fontsize=8.5)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels)
    ax.set_xlabel(f"time ({unit}), mean of replicated runs; error bars: 95% CI (Student t)")
    ax.set_xlim(0, widest * 1.35 if widest > 0 else 1)
    ax.set_ylim(-0.6, len(summaries) - 0.2)
    ax.grid(axis="y", visible=False)
    full_title = title + (f"\n{subtitle}" if subtitle else "")
    ax.set_title(full_title, loc="left")
    if drawn:
        handles, names = ax.get_legend_handles_labels()
        by_name = dict(zip(names, handles, strict=True))
        ordered = [name for name in phases if name in by_name]
        fig.legend(
            [by_name[name] for name in ordered],
            ordered,
            loc="lower center",
            ncol=min(len(ordered), 5),
            frameon=False,
            fontsize=9,
        )
    fig.tight_layout(rect=(0, 0.07 + 0.05 * legend_rows, 1, 1))
    _save(fig, path)
    return path


def _legend_rows(phases: int) -> int:
    return (phases + 4) // 5


def breakdown_height_in(variants: int, phases: int) -> float:
    """Figure height (inches) of a breakdown chart: grows with bars and legend rows."""
    return 1.6 + 0.7 * variants + 0.3 * _legend_rows(phases)


def breakdown_size_px(variants: int, phases: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`breakdown_chart` writes."""
    return round(BREAKDOWN_WIDTH_IN * DPI), round(breakdown_height_in(variants, phases) * DPI)


DENSITY_SIZE_IN = (8.0, 6.0)


@dataclass(frozen=True, slots=True)
class DensityPoint:
    """At ``running`` instances already up: creation latency stats and memory in use."""

    running: int
    latency_ms_median: float
    latency_ms_p99: float
    latency_ms_mean: float
    memory_mib: float
    instances_memory_mib: float | None = None


def density_chart(
    points: Sequence[DensityPoint],
    path: Path,
    *,
    title: str,
    raw: Sequence[tuple[int, float]] = (),
) -> Path:
    """Two stacked panels sharing x: creation latency (median, p99, raw dots), memory used."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(*DENSITY_SIZE_IN)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        _density_axes(top, bottom, points, title, raw)
        fig.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=12)
        fig.tight_layout()
        _save(fig, path)
    return path


def _density_axes(
    top: Any,
    bottom: Any,
    points: Sequence[DensityPoint],
    title: str,
    raw: Sequence[tuple[int, float]],
) -> None:
    xs = [p.running for p in points]
    if raw:
        top.scatter(
            [r[0] for r in raw],
            [r[1] for r in raw],
            s=6,
            color="#56B4E9",
            alpha=0.35,
            label="each creation",
            zorder=1,
        )
    top.plot(
        xs,
        [p.latency_ms_median for p in points],
        marker="o",
        color="#0072B2",
        label="median",
        zorder=3,
    )
    top.plot(
        xs,
        [p.latency_ms_p99 for p in points],
        marker="^",
        linestyle="--",
        color="#D55E00",
        label="p99",
        zorder=2,
    )
    top.set_ylabel("creation latency (ms)")
    top.set_ylim(bottom=0)
    top.legend(frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize=9)
    bottom.plot(
        xs,
        [p.memory_mib for p in points],
        marker="s",
        color="#8C8C8C",
        linestyle=":",
        label="host: MemTotal - MemAvailable, above start (shared host: noisy)",
    )
    charged = [
        (p.running, p.instances_memory_mib) for p in points if p.instances_memory_mib is not None
    ]
    if charged:
        last_x, last_y = charged[-1]
        each = (
            f": ≈ {last_y * 1024 / last_x:.0f} KiB each"
            if last_x > 0 and last_y is not None
            else ""
        )
        bottom.plot(
            [c[0] for c in charged],
            [c[1] for c in charged],
            marker="o",
            color="#55A868",
            label=f"instances' memory cgroups (sum){each}",
        )
    bottom.set_ylabel("memory (MiB)")
    bottom.set_xlabel("instances already running")
    bottom.legend(frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=1, fontsize=8)


def normalised_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    baseline: Sequence[float | None],
    path: Path,
    *,
    title: str,
    ylabel: str,
    baseline_label: str = "kernel forwarding = 1.0",
    annotations: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Grouped bars per category of each series divided by the baseline (seed §8, Fig. 39)."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(*bars_size_in(len(categories)))
        ax = fig.subplots()
        _normalised_axes(
            ax,
            categories,
            series,
            baseline,
            title=title,
            ylabel=ylabel,
            baseline_label=baseline_label,
            annotations=annotations,
        )
        fig.tight_layout()
        _save(fig, path)
    return path


def _normalised_axes(
    ax: Any,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    baseline: Sequence[float | None],
    *,
    title: str,
    ylabel: str,
    baseline_label: str,
    annotations: Mapping[str, Sequence[str]] | None,
) -> None:
    names = list(series)
    width = 0.8 / max(1, len(names))
    for index, name in enumerate(names):
        values = series[name]
        ratios = [
            (v / b) if (v is not None and b not in (None, 0)) else 0.0
            for v, b in zip(values, baseline, strict=True)
        ]
        xs = [c + (index - (len(names) - 1) / 2) * width for c in range(len(categories))]
        colour = SERIES_COLOURS.get(name.lower(), _PALETTE[index % len(_PALETTE)])
        bars = ax.bar(xs, ratios, width=width * 0.92, color=colour, label=name)
        labels = (annotations or {}).get(name)
        for bar, ratio, label in zip(bars, ratios, labels or [""] * len(bars), strict=True):
            text = f"{ratio:.2f}" + (f"\n{label}" if label else "")
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7.5,
            )
    ax.axhline(1.0, color="#444444", linestyle="--", linewidth=1, label=baseline_label)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("frame size")
    ax.set_title(title, loc="left")
    top = max(
        [1.0]
        + [
            (v / b)
            for name in names
            for v, b in zip(series[name], baseline, strict=True)
            if v is not None and b not in (None, 0)
        ]
    )
    ax.set_ylim(0, top * 1.25)
    ax.grid(axis="x", visible=False)
    ax.legend(frameon=False, loc="upper left", ncol=len(names) + 1, fontsize=8.5)


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    path: Path,
    *,
    title: str,
    ylabel: str,
    log: bool = True,
) -> Path:
    """Absolute values per category and series (e.g. latency in µs), log scale by default."""
    with matplotlib.rc_context(_STYLE):
        fig = _figure(*bars_size_in(len(categories)))
        ax = fig.subplots()
        names = list(series)
        width = 0.8 / max(1, len(names))
        for index, name in enumerate(names):
            values = [v if v is not None and v > 0 else 0.0 for v in series[name]]
            xs = [c + (index - (len(names) - 1) / 2) * width for c in range(len(categories))]
            colour = SERIES_COLOURS.get(name.lower(), _PALETTE[index % len(_PALETTE)])
            bars = ax.bar(xs, values, width=width * 0.92, color=colour, label=name)
            for bar, value in zip(bars, values, strict=True):
                if value > 0:
                    ax.annotate(
                        f"{value:,.0f}" if value >= 10 else f"{value:.1f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=7.5,
                    )
        if log:
            ax.set_yscale("log")
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("frame size")
        ax.set_title(title, loc="left")
        ax.grid(axis="x", visible=False)
        ax.legend(frameon=False, loc="upper left", ncol=len(names), fontsize=8.5)
        top = max([1.0] + [v for values in series.values() for v in values if v])
        if log:
            ax.set_ylim(top=top * 30)
        else:
            ax.set_ylim(0, top * 1.25)
        fig.tight_layout()
        _save(fig, path)
    return path


def bars_size_in(categories: int) -> tuple[float, float]:
    """(width, height) in inches of a :func:`normalised_bars` figure."""
    return max(6.5, 1.3 * categories + 3), 4.2


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG, read back with matplotlib."""
    image = imread(str(path))
    return int(image.shape[1]), int(image.shape[0])
