"""bench dataplane for real, at small scale: one frame size, the three scenarios, short trials."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from fluidedge.measure import benches, plots, rundir
from fluidedge.measure.dataplane import SCENARIOS
from fluidedge.measure.labsource import LabSource
from fluidedge.measure.rfc2544 import SearchConfig
from tests.fixtures.lab import lab_leftovers

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_dataplane_small(tmp_path: Path) -> None:
    prefix = f"mb{os.getpid() % 100000}"
    search = SearchConfig(max_rate_pps=60_000, duration_s=0.5, resolution=0.3, max_trials=3)
    source = LabSource(backend="userspace", prefix=prefix, workdir=tmp_path / "streams")
    try:
        code = benches.run_dataplane_bench(
            source,
            backend="userspace",
            sizes=["64"],
            scenarios=list(SCENARIOS),
            search=search,
            runs_dir=tmp_path / "runs",
            console=Console(file=io.StringIO(), width=120),
            describe_source=source.described,
        )
    finally:
        source.close()
    assert code == 0
    assert lab_leftovers(f"{prefix}k") == []
    assert lab_leftovers(f"{prefix}t") == []

    (run,) = [p for kind, p in rundir.run_dirs(tmp_path / "runs") if kind == "dataplane"]
    results = json.loads((run / "results.json").read_text())
    rows = {r["scenario"]: r for r in results["table"]}
    assert set(rows) == set(SCENARIOS)
    assert len(rundir.read_csv(run / "dataplane.csv")) == 3
    trials = rundir.read_csv(run / "trials.csv")
    assert len(trials) == sum(len(s["trials"]) for s in results["searches"])
    # plain kernel forwarding of G-PDUs at a modest rate loses nothing
    assert rows["kernel"]["throughput_pps"] > 0
    assert rows["kernel"]["ratio_to_baseline"] == pytest.approx(1.0)
    # the TOF really carried traffic: to the SGWs (pass-through), to the edge app (offloaded)
    for scenario in ("passthrough", "offloaded"):
        received = [int(t["received"]) for t in trials if t["scenario"] == scenario]
        assert max(received) > 0, scenario
    # latency probes crossed with the load: one-way, positive, below a second on loopback veths
    assert 0 < rows["kernel"]["latency_avg_us"] < 1_000_000
    assert rows["kernel"]["latency_max_us"] >= rows["kernel"]["latency_avg_us"]
    assert results["figures"] == ["throughput.png", "latency.png"]
    width_in, height_in = plots.bars_size_in(1)
    assert plots.png_size(run / "throughput.png") == (
        round(width_in * plots.DPI),
        round(height_in * plots.DPI),
    )


def test_dataplane_on_the_fast_path(tmp_path: Path) -> None:
    """The search's TOF scenarios on the tc/eBPF backend: the kernel program did the work."""
    prefix = f"mf{os.getpid() % 100000}"
    search = SearchConfig(max_rate_pps=20_000, duration_s=0.3, resolution=0.3, max_trials=1)
    source = LabSource(backend="fastpath", prefix=prefix, latency=False)
    try:
        code = benches.run_dataplane_bench(
            source,
            backend="fastpath",
            sizes=["64"],
            scenarios=["passthrough", "offloaded"],
            search=search,
            runs_dir=tmp_path / "runs",
            console=Console(file=io.StringIO(), width=120),
            describe_source=source.described,
        )
    finally:
        source.close()
    assert code == 0
    assert lab_leftovers(f"{prefix}t") == []
    (run,) = [p for kind, p in rundir.run_dirs(tmp_path / "runs") if kind == "dataplane"]
    trials = rundir.read_csv(run / "trials.csv")
    for scenario in ("passthrough", "offloaded"):
        assert max(int(t["received"]) for t in trials if t["scenario"] == scenario) > 0, scenario
    # Forwarded by the program, not by the agent: its pass-through and offload counters moved.
    fast = source.described["fastpath_counters"]
    assert fast["passthrough_uplink"] > 0
    assert fast["offloaded_uplink"] > 0
