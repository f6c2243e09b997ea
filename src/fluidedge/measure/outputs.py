"""Writing a replicated run's outputs: raw CSV, results JSON, breakdown PNG, console table.

Kept apart from the benchmarks so that every command writes the same shapes and the report can
read any of them. ``results.json`` always holds ``kind``, ``created``, ``interrupted``,
``config`` and ``figures`` (PNG file names); the rest depends on the kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fluidedge.measure import plots, rundir
from fluidedge.measure.instantiate import csv_columns, sample_row
from fluidedge.measure.replicate import Outcome, Sample, VariantSummary, phase_order
from fluidedge.measure.replicate import summarize_samples as _summarize

RUNS_CSV = "runs.csv"
RESULTS_JSON = "results.json"
CONFIG_JSON = "config.json"
MACHINE_JSON = "machine.json"
BREAKDOWN_PNG = "breakdown.png"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_samples_csv(path: Path, samples: Sequence[Sample]) -> None:
    rundir.write_csv(path, csv_columns(phase_order(samples)), (sample_row(s) for s in samples))


def samples_from_csv(path: Path) -> list[Sample]:
    """Read back a ``runs.csv`` (to re-plot or re-summarise a run)."""
    samples = []
    for row in rundir.read_csv(path):
        phases = {
            key[: -len("_ms")]: float(value)
            for key, value in row.items()
            if key.endswith("_ms")
            and key not in ("total_ms", "daemon_total_ms", "delete_ms")
            and value not in ("", None)
        }
        meta = {"name": row.get("name", ""), "path": row.get("path", "")}
        samples.append(
            Sample(row["variant"], int(row["run"]), phases, float(row["total_ms"]), meta)
        )
    return samples


def instantiate_results(
    config: dict[str, Any], outcome: Outcome, figures: list[str]
) -> dict[str, Any]:
    summaries = _summarize(outcome.samples) if outcome.samples else []
    paths: dict[str, dict[str, int]] = {}
    for sample in outcome.samples:
        path = str(sample.meta.get("path") or "?")
        counts = paths.setdefault(sample.variant, {})
        counts[path] = counts.get(path, 0) + 1
    return {
        "kind": "instantiate",
        "created": now_iso(),
        "interrupted": outcome.interrupted,
        "elapsed_s": round(outcome.elapsed_s, 3),
        "config": config,
        "figures": figures,
        "raw": [RUNS_CSV],
        "variants": [s.as_dict() for s in summaries],
        "paths_taken": paths,
        "failures": [
            {"variant": f.variant, "run": f.run, "error": f.error} for f in outcome.failures
        ],
    }


def summaries_table(summaries: Sequence[VariantSummary], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("variant", "phase", "mean ms", "±95% CI", "median", "p99", "n"):
        table.add_column(column, justify="left" if column in ("variant", "phase") else "right")
    for summary in summaries:
        rows = [*summary.phases.items(), ("TOTAL", summary.total)]
        for index, (name, s) in enumerate(rows):
            table.add_row(
                summary.variant if index == 0 else "",
                f"[bold]{name}[/bold]" if name == "TOTAL" else name,
                f"{s.mean:.3f}",
                f"{s.ci_half_width:.3f}" if s.ci_low is not None else "-",
                f"{s.median:.3f}",
                f"{s.p99:.3f}",
                str(s.n),
                end_section=index == len(rows) - 1,
            )
    return table


def print_ratio_lines(console: Console, summaries: Sequence[VariantSummary]) -> None:
    """The headline: how many times faster the first variant is than each other one (medians)."""
    if len(summaries) < 2:
        return
    first = summaries[0]
    for other in summaries[1:]:
        if first.total.median > 0:
            console.print(
                f"{first.variant} vs {other.variant}: median {first.total.median:.2f} ms vs "
                f"{other.total.median:.2f} ms -> {other.total.median / first.total.median:.1f}x"
            )


ZOOM_PNG = "breakdown-zoom.png"
ZOOM_FACTOR = 5.0


def write_breakdown(run_dir: Path, outcome: Outcome, title: str, subtitle: str) -> list[str]:
    """The breakdown chart; plus a zoom on the fastest variant when the others dwarf it."""
    if not outcome.samples:
        return []
    summaries = _summarize(outcome.samples)
    plots.breakdown_chart(summaries, run_dir / BREAKDOWN_PNG, title=title, subtitle=subtitle)
    figures = [BREAKDOWN_PNG]
    fastest = min(summaries, key=lambda s: s.total.mean)
    slowest = max(summaries, key=lambda s: s.total.mean)
    if fastest.total.mean > 0 and slowest.total.mean > ZOOM_FACTOR * fastest.total.mean:
        plots.breakdown_chart(
            [fastest],
            run_dir / ZOOM_PNG,
            title=f"{title}: {fastest.variant} only",
            subtitle=f"{fastest.n} runs",
        )
        figures.append(ZOOM_PNG)
    return figures
