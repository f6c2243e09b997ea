"""Command-line interface of the measurement toolkit.

``fluidedge bench instantiate|density|dataplane|report`` and ``fluidedge analyze CAPTURE.pcap``.
Every bench command writes a run directory (``--runs-dir``, default ``./runs``) and can be
interrupted with Ctrl-C: what was measured is kept, outputs are written, exit code 130.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

bench_app = typer.Typer(
    name="bench",
    help="Measure fluidedge the way the seed measured VIMs and data planes (§3.4, §7, §8).",
    no_args_is_help=True,
)

RunsDir = Annotated[
    Path, typer.Option("--runs-dir", help="where run directories are created", file_okay=False)
]
Url = Annotated[
    str | None, typer.Option("--url", help="daemon URL (default: $FLUIDEDGE_URL or loopback)")
]
Token = Annotated[str | None, typer.Option("--token", help="API token (default: token file)")]
Quiet = Annotated[bool, typer.Option("--no-progress", help="no progress bar")]
Serve = Annotated[
    Path | None,
    typer.Option("--serve", help="start a daemon from this config for the run, stop it after"),
]
EXIT_INTERRUPTED = 130


def _client(url: str | None, token: str | None) -> Any:
    from fluidedge.core.client import Client

    return Client(url, token)


def _with_api(url: str | None, token: str | None, serve: Path | None, body: Any) -> int:
    """Run ``body(api)`` against the daemon at ``url``, or one started from ``serve``."""
    if serve is not None:
        from fluidedge.measure.served import served_daemon

        with served_daemon(serve) as api:
            return int(body(api))
    api = _client(url, token)
    try:
        return int(body(api))
    finally:
        api.close()


@bench_app.command("instantiate")
def instantiate(  # noqa: PLR0917 - typer maps options to parameters
    template: Annotated[str, typer.Option("--template", "-t", help="template to instantiate")] = (
        "idle"
    ),
    runs: Annotated[int, typer.Option("--runs", "-n", min=1, help="runs per variant")] = 100,
    cold: Annotated[bool, typer.Option("--cold", help="also measure the cold path")] = False,
    compare_runc: Annotated[
        bool, typer.Option("--compare-runc", help="also measure `runc run` of the workload")
    ] = False,
    no_pool: Annotated[bool, typer.Option("--no-pool", help="skip the warm-pool variant")] = False,
    pool_wait: Annotated[
        float, typer.Option("--pool-wait", help="max seconds to wait for a quiet pool")
    ] = 15.0,
    runs_dir: RunsDir = Path("runs"),
    url: Url = None,
    token: Token = None,
    serve: Serve = None,
    no_progress: Quiet = False,
) -> None:
    """Replicated instantiations: per-phase mean/median/p99/95% CI, breakdown PNG, raw CSV."""
    from fluidedge.measure.benches import run_instantiate

    def body(api: Any) -> int:
        return run_instantiate(
            api,
            template=template,
            runs=runs,
            pool=not no_pool,
            cold=cold,
            compare_runc=compare_runc,
            pool_wait_s=pool_wait,
            runs_dir=runs_dir,
            progress=not no_progress,
        )

    raise typer.Exit(_with_api(url, token, serve, body))


@bench_app.command("density")
def density_command(  # noqa: PLR0917 - typer maps options to parameters
    template: Annotated[str, typer.Option("--template", "-t", help="template to pile up")] = (
        "idle"
    ),
    max_instances: Annotated[
        int, typer.Option("--max", min=1, help="instances to create in total")
    ] = 100,
    step: Annotated[int, typer.Option("--step", min=1, help="instances per plotted point")] = 10,
    cold: Annotated[bool, typer.Option("--cold", help="create on the cold path")] = False,
    pool_wait: Annotated[
        float, typer.Option("--pool-wait", help="max seconds to wait for a quiet pool")
    ] = 10.0,
    runs_dir: RunsDir = Path("runs"),
    url: Url = None,
    token: Token = None,
    serve: Serve = None,
    no_progress: Quiet = False,
) -> None:
    """Creation latency and memory as a function of instances already running (line plot)."""
    from fluidedge.measure.benches import run_density_bench

    def body(api: Any) -> int:
        return run_density_bench(
            api,
            template=template,
            max_instances=max_instances,
            step=step,
            cold=cold,
            pool_wait_s=pool_wait,
            runs_dir=runs_dir,
            progress=not no_progress,
        )

    raise typer.Exit(_with_api(url, token, serve, body))


@bench_app.command("dataplane")
def dataplane_command(  # noqa: PLR0917 - typer maps options to parameters
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="TOF backend: userspace, fastpath")
    ] = "userspace",
    sizes: Annotated[
        str, typer.Option("--sizes", help="comma-separated frame sizes and/or iMIX")
    ] = "64,256,1024,1518,iMIX",
    scenarios: Annotated[
        str, typer.Option("--scenarios", help="kernel (baseline), passthrough, offloaded")
    ] = "kernel,passthrough,offloaded",
    max_rate: Annotated[
        float, typer.Option("--max-rate", help="highest offered rate tried (pps)")
    ] = 600_000.0,
    duration: Annotated[float, typer.Option("--duration", help="seconds per trial")] = 1.0,
    loss_tolerance: Annotated[
        float, typer.Option("--loss-tolerance", help="accepted loss ratio (0 = RFC 2544)")
    ] = 0.0,
    resolution: Annotated[
        float, typer.Option("--resolution", help="stop when the bracket is this narrow")
    ] = 0.05,
    max_trials: Annotated[int, typer.Option("--max-trials", help="per search")] = 12,
    tool: Annotated[str, typer.Option("--tool", help="auto, trafgen, tcpreplay")] = "auto",
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """RFC 2544 zero-loss throughput per frame size, kernel forwarding as the baseline."""
    from fluidedge.measure.benches import run_dataplane_bench
    from fluidedge.measure.labsource import LabSource
    from fluidedge.measure.rfc2544 import SearchConfig

    search = SearchConfig(
        max_rate_pps=max_rate,
        duration_s=duration,
        loss_tolerance=loss_tolerance,
        resolution=resolution,
        max_trials=max_trials,
    )
    with LabSource(backend=backend, tool=tool) as source:
        code = run_dataplane_bench(
            source,
            backend=backend,
            sizes=[s.strip() for s in sizes.split(",") if s.strip()],
            scenarios=[s.strip() for s in scenarios.split(",") if s.strip()],
            search=search,
            runs_dir=runs_dir,
            describe_source=source.described,
        )
    raise typer.Exit(code)


@bench_app.command("noisy")
def noisy_command(  # noqa: PLR0917 - typer maps options to parameters
    rounds: Annotated[int, typer.Option("--rounds", help="repetitions of every scenario")] = 5,
    throughput_s: Annotated[float, typer.Option(help="seconds of flat-out load per trial")] = 2.0,
    latency_s: Annotated[float, typer.Option(help="seconds of probed load per trial")] = 2.5,
    probes: Annotated[int, typer.Option(help="latency probes per trial")] = 400,
    load_fraction: Annotated[
        float, typer.Option(help="latency load as a fraction of baseline throughput")
    ] = 0.4,
    rules: Annotated[int, typer.Option(help="vfw: nftables rules before the accept")] = 2000,
    routes: Annotated[int, typer.Option(help="vrouter: routes in its table")] = 8192,
    neighbour_mb: Annotated[int, typer.Option(help="cache walker buffer per process")] = 256,
    targets: Annotated[str, typer.Option(help="comma-separated: vfw, vrouter")] = "vfw,vrouter",
    quick: Annotated[bool, typer.Option("--quick", help="a short run (functional tests)")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """The seed's noisy-neighbour experiment (§7.6-7.8): baseline, neighbour, pinned, CoS models."""
    from fluidedge.measure.noisy import table_lines
    from fluidedge.measure.noisyrig import run_noisy
    from fluidedge.measure.rundir import read_json

    if quick:
        rounds, throughput_s, latency_s, probes = 2, 0.6, 0.8, 100
        rules, routes, neighbour_mb = 200, 1024, 64
    run_dir, cells, interrupted = run_noisy(
        runs_dir=runs_dir,
        rounds=rounds,
        throughput_s=throughput_s,
        latency_s=latency_s,
        probes=probes,
        load_fraction=load_fraction,
        rules=rules,
        routes=routes,
        neighbour_mb=neighbour_mb,
        targets=[t.strip() for t in targets.split(",") if t.strip()],
        log=typer.echo,
    )
    if (run_dir / "results.json").exists():
        results = read_json(run_dir / "results.json")
        typer.echo(f"\nCAT: {results['cat']}")
        typer.echo(f"latency load (pps): {results['latency_load_pps']}; {results['ci_note']}")
        for line in table_lines(cells):
            typer.echo(line)
    typer.echo(f"\nrun directory: {run_dir}")
    if interrupted:
        typer.echo("interrupted: the rounds measured so far are kept")
        raise typer.Exit(EXIT_INTERRUPTED)


@bench_app.command("replot")
def replot_command(
    run_dir: Annotated[Path, typer.Argument(help="an instantiate run directory")],
) -> None:
    """Redraw an instantiate or density run's figures from its raw data."""
    from fluidedge.measure import outputs, plots, rundir
    from fluidedge.measure.benches import DENSITY_CSV, DENSITY_PNG
    from fluidedge.measure.errors import MeasureInputError
    from fluidedge.measure.replicate import Outcome

    results_path = run_dir / outputs.RESULTS_JSON
    if not results_path.exists():
        raise MeasureInputError(f"{run_dir} is not a run directory (no results.json)")
    results = rundir.read_json(results_path)
    if results.get("kind") == "density" and results.get("points"):
        raw = [
            (int(r["running_before"]), float(r["latency_ms"]))
            for r in rundir.read_csv(run_dir / DENSITY_CSV)
        ]
        template = results.get("config", {}).get("template", "?")
        plots.density_chart(
            [plots.DensityPoint(**p) for p in results["points"]],
            run_dir / DENSITY_PNG,
            title=f"Density: creation latency and memory vs instances running ({template})",
            raw=raw,
        )
        typer.echo(f"figures: {DENSITY_PNG}")
        return
    if results.get("kind") != "instantiate" or not (run_dir / outputs.RUNS_CSV).exists():
        raise MeasureInputError(f"{run_dir}: only instantiate and density runs can be re-plotted")
    samples = outputs.samples_from_csv(run_dir / outputs.RUNS_CSV)
    outcome = Outcome(samples=samples, interrupted=bool(results.get("interrupted")))
    template = results.get("config", {}).get("template", "?")
    variants = list(dict.fromkeys(s.variant for s in samples))
    subtitle = ", ".join(f"{v}: {sum(1 for s in samples if s.variant == v)} runs" for v in variants)
    results["figures"] = outputs.write_breakdown(
        run_dir, outcome, f"Instantiation time breakdown: template {template}", subtitle
    )
    rundir.write_json(results_path, results)
    typer.echo(f"figures: {', '.join(results['figures'])}")


@bench_app.command("report")
def report_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for report.html + data/")],
    runs_dir: RunsDir = Path("runs"),
    run: Annotated[
        list[Path] | None,
        typer.Option("--run", help="a run directory to include (default: latest of each kind)"),
    ] = None,
) -> None:
    """One self-contained HTML report of the latest runs (figures embedded, raw data linked)."""
    from fluidedge.measure import report, rundir
    from fluidedge.measure.errors import MeasureInputError

    if run:
        chosen: dict[str, Path] = {}
        for path in run:
            results = path / "results.json"
            if not results.exists():
                raise MeasureInputError(f"{path} is not a run directory (no results.json)")
            chosen[str(rundir.read_json(results).get("kind", path.name))] = path
    else:
        chosen = rundir.latest_runs(runs_dir)
    path = report.build_report(out, chosen)
    typer.echo(f"report: {path} ({', '.join(f'{k}: {v.name}' for k, v in chosen.items())})")


def analyze(  # noqa: PLR0917 - typer maps options to parameters
    capture: Annotated[
        Path,
        typer.Argument(
            help="pcap or pcapng of the API port (tcpdump -i lo port 8181 -w FILE), streamed; "
            "- reads standard input"
        ),
    ],
    api_port: Annotated[int, typer.Option("--api-port", help="the daemon's API port")] = 8181,
    dataplane: Annotated[
        Path | None,
        typer.Option("--dataplane", help="capture to look for the instances' first packets"),
    ] = None,
    tolerance_ms: Annotated[
        float, typer.Option("--tolerance-ms", help="max wire-minus-daemon difference accepted")
    ] = 5.0,
    ask_daemon: Annotated[
        bool, typer.Option("--ask-daemon", help="GET timings the capture lacks from the daemon")
    ] = False,
    save: Annotated[
        bool, typer.Option("--save", help="also write a run directory (CSV + JSON)")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 1 unless wire and daemon agree")
    ] = False,
    runs_dir: RunsDir = Path("runs"),
    url: Url = None,
    token: Token = None,
) -> None:
    """The VIM message analyzer: per-request timings from a capture, checked against the daemon."""
    from fluidedge.measure.analyze import run_analyze

    _, check = run_analyze(
        capture,
        api_port=api_port,
        dataplane_path=dataplane,
        api=_client(url, token) if ask_daemon else None,
        tolerance_ms=tolerance_ms,
        save_dir=runs_dir if save else None,
    )
    if strict and not check.agrees:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``bench ...`` and ``analyze`` to the root fluidedge app."""
    app.add_typer(bench_app, name="bench")
    app.command("analyze")(analyze)
