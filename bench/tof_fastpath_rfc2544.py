"""RFC 2544 zero-loss throughput of the TOF fast path against kernel forwarding, in one run.

    .venv/bin/python bench/tof_fastpath_rfc2544.py [--sizes 64,iMIX] [--backends fastpath]

The measurement toolkit's search (``fluidedge bench dataplane``, :mod:`fluidedge.measure`)
on the lab: for each frame size, the highest rate the lab's generator can offer with no frame
lost (RFC 2544 §26.1: one trial at ``--max-rate``, then a bisection), for

* ``kernel``: the lab in routed mode, the host namespace IP-forwarding the G-PDUs (baseline);
* ``passthrough``: the lab in TOF mode with the backend (``fastpath``: the tc/eBPF program
  switches every learned tunnel's G-PDUs in the kernel);
* ``offloaded``: the same frames to a registered service: decapsulated, NATed and routed to
  the edge app (counted there).

Each backend of ``--backends`` (``fastpath``, ``userspace``) gets its own search of the two
TOF scenarios; ``kernel`` is searched once and every row's "vs kernel" is against it. The
fast path's kernel-side counters (pass-through, offloaded, punted) after each backend's run
are printed: they show the kernel program did the forwarding. Outputs (CSV, JSON, charts) go
to ``--runs-dir`` like the CLI's. The machine is shared: read the ratios of one run.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from fluidedge.measure import benches, rundir
from fluidedge.measure.labsource import LabSource
from fluidedge.measure.rfc2544 import SearchConfig


def run(
    backend: str, scenarios: list[str], sizes: list[str], search: SearchConfig, runs: Path
) -> tuple[list[dict[str, object]], dict[str, object]]:
    source = LabSource(backend=backend, latency=False)
    try:
        benches.run_dataplane_bench(
            source,
            backend=backend,
            sizes=sizes,
            scenarios=scenarios,
            search=search,
            runs_dir=runs,
            console=Console(file=io.StringIO(), width=120),
            describe_source=source.described,
        )
    finally:
        source.close()
    newest = max((p for kind, p in rundir.run_dirs(runs) if kind == "dataplane"), key=str)
    results = json.loads((newest / "results.json").read_text())
    fast = source.described.get("fastpath_counters", {})
    return list(results["table"]), fast if isinstance(fast, dict) else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,iMIX")
    parser.add_argument("--backends", default="fastpath", help="comma-separated TOF backends")
    parser.add_argument("--max-rate", type=float, default=600_000.0)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per trial")
    parser.add_argument("--resolution", type=float, default=0.05)
    parser.add_argument("--max-trials", type=int, default=8)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    search = SearchConfig(
        max_rate_pps=args.max_rate,
        duration_s=args.duration,
        resolution=args.resolution,
        max_trials=args.max_trials,
    )
    rows: dict[tuple[str, str, str], dict[str, object]] = {}
    counters: dict[str, dict[str, object]] = {}
    kernel_rows, _ = run("userspace", ["kernel"], sizes, search, args.runs_dir)
    for row in kernel_rows:
        rows[("kernel", "kernel", str(row["size"]))] = row
    print("measured kernel", file=sys.stderr, flush=True)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in backends:
        table, counters[backend] = run(
            backend, ["passthrough", "offloaded"], sizes, search, args.runs_dir
        )
        for row in table:
            rows[(backend, str(row["scenario"]), str(row["size"]))] = row
        print(f"measured {backend}", file=sys.stderr, flush=True)
    print(f"RFC 2544 zero-loss throughput, TOF vs kernel forwarding ({time.ctime()})")
    print(
        f"search: max {args.max_rate:,.0f} pps, {args.duration} s trials, resolution "
        f"{args.resolution}, at most {args.max_trials} trials; lab generator\n"
    )
    print(f"{'backend':10}{'scenario':13}{'size':>6}{'zero-loss pps':>15}{'vs kernel':>11}  note")
    for size in sizes:
        base = rows.get(("kernel", "kernel", size))
        base_pps = float(base["throughput_pps"]) if base else 0.0  # type: ignore[arg-type]
        for (backend, scenario, s), row in rows.items():
            if s != size:
                continue
            pps = float(row["throughput_pps"])  # type: ignore[arg-type]
            ratio = f"{pps / base_pps:.2f}x" if base_pps else "-"
            notes = []
            if row.get("generator_limited"):
                notes.append("generator-limited")
            if not row.get("converged"):
                notes.append("not converged")
            print(f"{backend:10}{scenario:13}{size:>6}{pps:>15,.0f}{ratio:>11}  {', '.join(notes)}")
    for backend, fast in counters.items():
        if fast:
            shown = (
                "passthrough_uplink",
                "offloaded_uplink",
                "punted_from_enb",
                "punt_rate_limited",
            )
            text = ", ".join(f"{k} {fast.get(k, 0):,}" for k in shown)
            print(f"\n{backend} kernel counters over its run: {text}")


if __name__ == "__main__":
    main()
