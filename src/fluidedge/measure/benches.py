"""The bench commands' bodies: set up, replicate, write outputs, print, clean up.

The CLI only parses options; everything here takes an API client object and a runs directory so
that functional tests can drive it against a daemon they started. Return values are exit codes
(0, or 130 when interrupted: outputs are still written).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fluidedge.core.client import ClientError
from fluidedge.measure import (
    dataplane,
    density,
    machine,
    outputs,
    plots,
    rundir,
)
from fluidedge.measure.dataplane import TrafficSource
from fluidedge.measure.errors import BenchmarkFailure, MeasureInputError
from fluidedge.measure.instantiate import (
    VARIANT_COLD,
    VARIANT_POOL,
    VARIANT_RUNC,
    Api,
    InstantiateConfig,
    daemon_trial,
    default_prefix,
)
from fluidedge.measure.replicate import Failure, Outcome, Sample, replicate, summarize_samples
from fluidedge.measure.rfc2544 import SearchConfig, frame_size_bytes
from fluidedge.measure.runcbase import RuncBaseline
from fluidedge.measure.stats import percentile

EXIT_OK = 0
EXIT_INTERRUPTED = 130


def _template(api: Api, name: str) -> dict[str, Any]:
    try:
        health = api.get("/healthz")
    except ClientError as exc:
        raise BenchmarkFailure(str(exc)) from exc
    if isinstance(health, dict) and "instances" not in (health.get("parts") or []):
        raise MeasureInputError(
            "the daemon runs without the instance manager: add an [instances] table to its config"
        )
    try:
        spec = api.get(f"/v1/templates/{name}")
    except ClientError as exc:
        if exc.status == 404:
            raise MeasureInputError(f"unknown template {name!r}") from exc
        raise
    if not isinstance(spec, dict):
        raise BenchmarkFailure(f"unexpected template answer: {spec!r}")
    return spec


def run_instantiate(
    api: Api,
    *,
    template: str,
    runs: int,
    pool: bool = True,
    cold: bool = False,
    compare_runc: bool = False,
    pool_wait_s: float = 15.0,
    runs_dir: Path = rundir.DEFAULT_ROOT,
    progress: bool = True,
    console: Console | None = None,
) -> int:
    console = console or Console()
    variants = [
        v
        for v, wanted in ((VARIANT_POOL, pool), (VARIANT_COLD, cold), (VARIANT_RUNC, compare_runc))
        if wanted
    ]
    if not variants:
        raise MeasureInputError("nothing to measure: give at least one variant")
    spec = _template(api, template)
    config = InstantiateConfig(
        template=template,
        runs=runs,
        variants=tuple(variants),
        name_prefix=default_prefix(),
        pool_wait_s=pool_wait_s,
    )
    config.check()
    run_dir = rundir.new_run_dir("instantiate", runs_dir)
    config_doc = {
        "template": template,
        "runs": runs,
        "variants": variants,
        "pool_wait_s": pool_wait_s,
        "template_spec": spec,
        "daemon": getattr(api, "url", None),
    }
    rundir.write_json(run_dir / outputs.CONFIG_JSON, config_doc)
    rundir.write_json(run_dir / outputs.MACHINE_JSON, machine.describe())
    console.print(
        f"[bold]bench instantiate[/bold] {template}: {runs} runs x {variants} -> {run_dir}"
    )

    through_daemon = daemon_trial(api, config)
    baseline: RuncBaseline | None = None
    if compare_runc:
        resources = spec.get("resources") or {}
        baseline = RuncBaseline(
            Path(tempfile.mkdtemp(prefix="fe-runc-base-")),
            list(spec.get("command") or []),
            memory_mb=int(resources.get("memory_mb", 32)),
            pids=int(resources.get("pids", 64)),
            prefix=f"{config.name_prefix}-rb",
        )
        baseline.setup()

    samples: list[Sample] = []
    failures: list[Failure] = []

    def trial(variant: str, index: int) -> Sample:
        if variant == VARIANT_RUNC and baseline is not None:
            return baseline.trial(variant, index)
        return through_daemon(variant, index)

    def keep(sample: Sample) -> None:
        samples.append(sample)
        partial = Outcome(samples=samples, failures=failures, interrupted=True)
        outputs.write_samples_csv(run_dir / outputs.RUNS_CSV, samples)
        rundir.write_json(
            run_dir / outputs.RESULTS_JSON, outputs.instantiate_results(config_doc, partial, [])
        )

    try:
        outcome = replicate(
            variants,
            runs,
            trial,
            on_sample=keep,
            on_failure=failures.append,
            progress=progress,
            title=f"instantiate {template}",
        )
    finally:
        if baseline is not None:
            baseline.close()
    outcome.failures = failures
    per_variant = {v: sum(1 for s in outcome.samples if s.variant == v) for v in variants}
    subtitle = ", ".join(f"{v}: {n} runs" for v, n in per_variant.items())
    if outcome.interrupted:
        subtitle += " (interrupted)"
    figures = outputs.write_breakdown(
        run_dir, outcome, f"Instantiation time breakdown: template {template}", subtitle
    )
    outputs.write_samples_csv(run_dir / outputs.RUNS_CSV, outcome.samples)
    results = outputs.instantiate_results(config_doc, outcome, figures)
    rundir.write_json(run_dir / outputs.RESULTS_JSON, results)
    if outcome.samples:
        summaries = summarize_samples(outcome.samples)
        console.print(outputs.summaries_table(summaries, f"instantiate {template} (ms)"))
        outputs.print_ratio_lines(console, summaries)
    for failure in outcome.failures:
        console.print(f"[red]run {failure.variant}#{failure.run} failed:[/red] {failure.error}")
    console.print(f"outputs: {run_dir}")
    if outcome.interrupted:
        console.print("[yellow]interrupted: partial results written[/yellow]")
        return EXIT_INTERRUPTED
    return EXIT_OK


DENSITY_CSV = "creations.csv"
DENSITY_PNG = "density.png"


def run_density_bench(
    api: Api,
    *,
    template: str,
    max_instances: int,
    step: int,
    cold: bool = False,
    pool_wait_s: float = 10.0,
    runs_dir: Path = rundir.DEFAULT_ROOT,
    progress: bool = True,
    console: Console | None = None,
) -> int:
    console = console or Console()
    spec = _template(api, template)
    run_dir = rundir.new_run_dir("density", runs_dir)
    config_doc = {
        "template": template,
        "max": max_instances,
        "step": step,
        "cold": cold,
        "pool_wait_s": pool_wait_s,
        "template_spec": spec,
        "daemon": getattr(api, "url", None),
    }
    rundir.write_json(run_dir / outputs.CONFIG_JSON, config_doc)
    rundir.write_json(run_dir / outputs.MACHINE_JSON, machine.describe())
    console.print(f"[bold]bench density[/bold] {template}: up to {max_instances}, step {step}")
    created: list[density.Creation] = []

    def keep(creation: density.Creation) -> None:
        created.append(creation)
        rundir.write_csv(run_dir / DENSITY_CSV, density.CSV_COLUMNS, (c.row() for c in created))

    outcome = density.run_density(
        api,
        template=template,
        max_instances=max_instances,
        step=step,
        name_prefix=default_prefix(),
        memory_used=machine.memory_used_mib,
        instance_memory=machine.memory_cgroup_bytes,
        cold=cold,
        pool_wait_s=pool_wait_s,
        progress=progress,
        on_creation=keep,
    )
    rundir.write_csv(
        run_dir / DENSITY_CSV, density.CSV_COLUMNS, (c.row() for c in outcome.creations)
    )
    pts = density.points(outcome.creations, step) if outcome.creations else []
    figures = []
    if pts:
        title = f"Density: creation latency and memory vs instances running ({template})"
        raw = [(c.running_before, c.latency_ms) for c in outcome.creations]
        plots.density_chart(pts, run_dir / DENSITY_PNG, title=title, raw=raw)
        figures.append(DENSITY_PNG)
    count = len(outcome.creations)
    charged_end = outcome.instances_memory_end_mib
    per_instance = charged_end / count if charged_end is not None and count else None
    paths: dict[str, int] = {}
    for creation in outcome.creations:
        paths[creation.path] = paths.get(creation.path, 0) + 1
    results = {
        "kind": "density",
        "created": outputs.now_iso(),
        "interrupted": outcome.interrupted,
        "failure": outcome.failure,
        "config": config_doc,
        "figures": figures,
        "raw": [DENSITY_CSV],
        "instances_created": count,
        "memory_start_mib": outcome.memory_start_mib,
        "memory_end_above_start_mib": outcome.memory_end_mib,
        "instances_memory_end_mib": charged_end,
        "memory_per_instance_kib": per_instance * 1024 if per_instance is not None else None,
        "flatness_last_over_first": density.flatness(pts),
        "paths_taken": paths,
        "points": [asdict(p) for p in pts],
        "delete_ms_median": (
            percentile([c.delete_ms for c in outcome.creations if c.delete_ms is not None], 50)
            if any(c.delete_ms is not None for c in outcome.creations)
            else None
        ),
    }
    rundir.write_json(run_dir / outputs.RESULTS_JSON, results)
    table = Table(title=f"density {template}", title_justify="left")
    for column in ("running", "median ms", "p99 ms", "mean ms", "host MiB", "instances MiB"):
        table.add_column(column, justify="right")
    for p in pts:
        table.add_row(
            str(p.running),
            f"{p.latency_ms_median:.2f}",
            f"{p.latency_ms_p99:.2f}",
            f"{p.latency_ms_mean:.2f}",
            f"{p.memory_mib:+.1f}",
            "-" if p.instances_memory_mib is None else f"{p.instances_memory_mib:.1f}",
        )
    console.print(table)
    if results["flatness_last_over_first"] is not None:
        console.print(
            f"last/first step median latency: {results['flatness_last_over_first']:.2f}x; "
            f"paths: {paths}"
        )
    if per_instance is not None and charged_end is not None:
        console.print(
            f"memory charged to {count} instances' cgroups: {charged_end:.1f} MiB "
            f"≈ {per_instance * 1024:.0f} KiB per instance; host memory in use "
            f"{outcome.memory_end_mib:+.1f} MiB since start (shared host)"
        )
    if outcome.failure:
        console.print(f"[red]stopped early:[/red] {outcome.failure}")
    console.print(f"outputs: {run_dir}")
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


DATAPLANE_CSV = "dataplane.csv"
DATAPLANE_TRIALS_CSV = "trials.csv"


def run_dataplane_bench(
    source: TrafficSource,
    *,
    backend: str,
    sizes: list[str],
    scenarios: list[str],
    search: SearchConfig,
    runs_dir: Path = rundir.DEFAULT_ROOT,
    console: Console | None = None,
    describe_source: Any = None,
) -> int:
    console = console or Console()
    for size in sizes:
        frame_size_bytes(size)  # validates
    run_dir = rundir.new_run_dir("dataplane", runs_dir)
    config_doc: dict[str, Any] = {
        "backend": backend,
        "sizes": sizes,
        "scenarios": scenarios,
        "search": asdict(search),
    }
    rundir.write_json(run_dir / outputs.CONFIG_JSON, config_doc)
    rundir.write_json(run_dir / outputs.MACHINE_JSON, machine.describe())
    console.print(f"[bold]bench dataplane[/bold] backend {backend}: {scenarios} x {sizes}")
    trial_rows: list[dict[str, Any]] = []

    def keep(cell: dataplane.Cell) -> None:
        base = next(
            (c for c in done if c.scenario == dataplane.BASELINE and c.size == cell.size), None
        )
        row = cell.row(base.search.throughput_pps if base else None)
        console.print(
            f"  {cell.scenario:12s} {cell.size:>5s}: {row['throughput_pps']:>12,.0f} pps"
            + (f"  ({row['ratio_to_baseline']:.2f}x kernel)" if row["ratio_to_baseline"] else "")
            + ("  (generator-limited)" if row["generator_limited"] else "")
        )
        for index, trial in enumerate(cell.search.trials):
            trial_rows.append(
                {
                    "scenario": cell.scenario,
                    "size": cell.size,
                    "trial": index,
                    "requested_pps": trial.requested_pps,
                    "offered_pps": trial.offered_pps,
                    "forwarded_pps": trial.forwarded_pps,
                    "sent": trial.sent,
                    "received": trial.received,
                    "loss_ratio": trial.loss_ratio,
                    "passed": trial.passed,
                }
            )
        rundir.write_csv(run_dir / DATAPLANE_TRIALS_CSV, TRIAL_COLUMNS, trial_rows)

    done: list[dataplane.Cell] = []

    def on_cell(cell: dataplane.Cell) -> None:
        done.append(cell)
        keep(cell)

    outcome = dataplane.run_dataplane(
        source, sizes=sizes, scenarios=scenarios, config=search, on_cell=on_cell
    )
    table = outcome.table()
    rundir.write_csv(run_dir / DATAPLANE_CSV, list(table[0]) if table else ["scenario"], table)
    figures = dataplane.charts(
        outcome, sizes, run_dir, f"Zero-loss throughput (RFC 2544), TOF backend {backend}"
    )
    if describe_source is not None:
        config_doc["source"] = describe_source
        rundir.write_json(run_dir / outputs.CONFIG_JSON, config_doc)
    rundir.write_json(
        run_dir / outputs.RESULTS_JSON,
        {
            "kind": "dataplane",
            "created": outputs.now_iso(),
            "interrupted": outcome.interrupted,
            "config": config_doc,
            "figures": figures,
            "raw": [DATAPLANE_CSV, DATAPLANE_TRIALS_CSV],
            "table": table,
            "searches": [
                {"scenario": c.scenario, "size": c.size, **c.search.as_dict()}
                for c in outcome.cells
            ],
        },
    )
    out = Table(title=f"dataplane, backend {backend}", title_justify="left")
    for column in ("frame", "scenario", "zero-loss pps", "Mbit/s", "vs kernel", "note"):
        out.add_column(
            column, justify="left" if column in ("frame", "scenario", "note") else "right"
        )
    for row in table:
        out.add_row(
            row["size"],
            row["scenario"],
            f"{row['throughput_pps']:,.0f}",
            f"{row['throughput_mbps']:,.1f}",
            "-" if row["ratio_to_baseline"] is None else f"{row['ratio_to_baseline']:.2f}",
            "generator-limited" if row["generator_limited"] else "",
        )
    console.print(out)
    console.print(f"outputs: {run_dir}")
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


TRIAL_COLUMNS = (
    "scenario",
    "size",
    "trial",
    "requested_pps",
    "offered_pps",
    "forwarded_pps",
    "sent",
    "received",
    "loss_ratio",
    "passed",
)
