"""The bench bodies against fakes: an in-memory daemon API and a fake data plane."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console

from fluidedge.core.client import ClientError
from fluidedge.measure import benches, dataplane, density, plots, report, rundir
from fluidedge.measure.errors import MeasureInputError
from fluidedge.measure.instantiate import (
    HTTP_PHASE,
    InstantiateConfig,
    daemon_trial,
    wait_pool_quiet,
)
from fluidedge.measure.rfc2544 import OfferResult, SearchConfig


class FakeApi:
    """Answers like the instance manager: a pool that refills at once, fixed phase timings."""

    url = "http://fake"

    def __init__(self) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.posts: list[dict[str, Any]] = []
        self.pool_ready = 2
        self.parts = ["instances"]

    def get(self, path: str) -> Any:
        if path == "/v1/pools":
            return [{"template": "idle", "target": 2, "ready": self.pool_ready, "preparing": 0}]
        if path == "/healthz":
            return {"status": "ok", "parts": self.parts}
        if path == "/v1/templates/idle":
            return {"name": "idle", "command": ["/bin/true"], "resources": {"memory_mb": 8}}
        raise ClientError(404, f"no {path}")

    def post(self, path: str, json: Any = None) -> Any:
        assert path == "/v1/instances"
        self.posts.append(json)
        cold = json.get("cold", False)
        shell = 40.0 if cold else 0.5
        timing = {"accept": 0.2, "shell": shell, "start": 1.0, "total": shell + 1.3}
        view = {"name": json["name"], "path": "cold" if cold else "warm", "timing": timing,
                "pid": 4242}  # fmt: skip
        self.instances[json["name"]] = view
        return view

    def delete(self, path: str) -> Any:
        name = path.rsplit("/", 1)[1]
        if self.instances.pop(name, None) is None:
            raise ClientError(404, "not found")


def _console() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_daemon_trial_deletes_and_adds_http_phase() -> None:
    api = FakeApi()
    trial = daemon_trial(api, InstantiateConfig("idle", 3, ("pool", "cold"), "t1"))
    sample = trial("cold", 7)
    assert api.posts[-1] == {"name": "t1-c7", "template": "idle", "cold": True, "wait_ready": True}
    assert api.instances == {}
    assert sample.phases_ms["shell"] == 40.0
    assert sample.phases_ms[HTTP_PHASE] >= 0.0
    assert sample.total_ms >= 41.3
    assert sample.meta["path"] == "cold"


def test_wait_pool_quiet_times_out_on_an_empty_pool() -> None:
    api = FakeApi()
    api.pool_ready = 0
    clock = iter(range(100))
    assert not wait_pool_quiet(
        api, "idle", need_ready=True, timeout_s=3, sleep=lambda s: None, clock=lambda: next(clock)
    )
    assert wait_pool_quiet(api, "other", need_ready=False, timeout_s=0)


def test_instantiate_and_density_outputs(tmp_path: Path) -> None:
    api = FakeApi()
    code = benches.run_instantiate(
        api, template="idle", runs=4, cold=True, runs_dir=tmp_path, progress=False,
        console=_console(),
    )  # fmt: skip
    assert code == 0
    (inst,) = [p for k, p in rundir.run_dirs(tmp_path) if k == "instantiate"]
    assert len(rundir.read_csv(inst / "runs.csv")) == 8
    results = json.loads((inst / "results.json").read_text())
    assert results["paths_taken"] == {"pool": {"warm": 4}, "cold": {"cold": 4}}
    assert plots.png_size(inst / "breakdown.png")[0] == round(plots.BREAKDOWN_WIDTH_IN * plots.DPI)

    memory = iter(float(i) for i in range(1000))
    ticks = iter(range(1000))  # every creation takes 2 ms on this clock: a flat curve
    outcome = density.run_density(
        api, template="idle", max_instances=9, step=3, name_prefix="d",
        memory_used=lambda: next(memory), instance_memory=lambda pid: 1024 * 1024,
        progress=False, clock=lambda: next(ticks) * 0.002,
    )  # fmt: skip
    assert api.instances == {}
    assert [c.running_before for c in outcome.creations] == list(range(9))
    pts = density.points(outcome.creations, 3)
    assert [p.running for p in pts] == [0, 3, 6]
    assert [p.instances_memory_mib for p in pts] == [0.0, 3.0, 6.0]
    assert outcome.instances_memory_end_mib == 9.0
    assert [p.latency_ms_median for p in pts] == pytest.approx([2.0, 2.0, 2.0])
    assert density.flatness(pts) == pytest.approx(1.0)

    with pytest.raises(MeasureInputError, match="unknown template"):
        benches.run_instantiate(api, template="nosuch", runs=1, runs_dir=tmp_path,
                                progress=False, console=_console())  # fmt: skip
    api.parts = ["tof"]
    with pytest.raises(MeasureInputError, match=r"\[instances\]"):
        benches.run_instantiate(api, template="idle", runs=1, runs_dir=tmp_path,
                                progress=False, console=_console())  # fmt: skip


class FakeDataplane:
    """Kernel forwards 100 kpps, pass-through 80 kpps, offloaded 50 kpps; latency grows."""

    capacity: ClassVar[dict[str, float]] = {
        "kernel": 100_000.0,
        "passthrough": 80_000.0,
        "offloaded": 50_000.0,
    }

    def offer(self, scenario: str, size: str, rate: float, duration: float) -> OfferResult:
        cap = self.capacity[scenario] * (64 / max(64, int(size) if size.isdigit() else 353))
        sent = int(rate * duration)
        received = min(sent, int(cap * duration))
        latency = tuple(10.0 * (1 + list(self.capacity).index(scenario)) for _ in range(5))
        return OfferResult(sent, received, duration, latency)


def test_dataplane_matrix_ratios_and_report(tmp_path: Path) -> None:
    code = benches.run_dataplane_bench(
        FakeDataplane(),
        backend="fake",
        sizes=["64", "iMIX"],
        scenarios=list(dataplane.SCENARIOS),
        search=SearchConfig(max_rate_pps=200_000, resolution=0.01, max_trials=30),
        runs_dir=tmp_path,
        console=_console(),
    )
    assert code == 0
    (run,) = [p for k, p in rundir.run_dirs(tmp_path) if k == "dataplane"]
    results = json.loads((run / "results.json").read_text())
    rows = {(r["scenario"], r["size"]): r for r in results["table"]}
    assert rows[("kernel", "64")]["ratio_to_baseline"] == pytest.approx(1.0)
    assert rows[("passthrough", "64")]["ratio_to_baseline"] == pytest.approx(0.8, abs=0.02)
    assert rows[("offloaded", "iMIX")]["ratio_to_baseline"] == pytest.approx(0.5, abs=0.02)
    assert rows[("offloaded", "64")]["latency_avg_us"] == 30.0
    assert results["figures"] == ["throughput.png", "latency.png"]
    assert len(rundir.read_csv(run / "dataplane.csv")) == 6
    for figure in results["figures"]:
        assert plots.png_size(run / figure)[1] > 100

    page = report.build_report(tmp_path / "out", rundir.latest_runs(tmp_path)).read_text()
    assert page.count("data:image/png;base64,") == 2
    assert (tmp_path / "out" / "data" / run.name / "throughput.png").is_file()
    assert "passthrough" in page


def test_dataplane_needs_sizes_and_valid_sizes(tmp_path: Path) -> None:
    config = SearchConfig(max_rate_pps=1000)
    with pytest.raises(MeasureInputError):
        dataplane.run_dataplane(FakeDataplane(), sizes=[], scenarios=["kernel"], config=config)
    with pytest.raises(MeasureInputError):
        benches.run_dataplane_bench(FakeDataplane(), backend="x", sizes=["12"],
                                    scenarios=["kernel"], search=config, runs_dir=tmp_path,
                                    console=_console())  # fmt: skip


def test_runs_csv_reads_back_into_the_same_summaries(tmp_path: Path) -> None:
    from fluidedge.measure import outputs
    from fluidedge.measure.replicate import summarize_samples

    api = FakeApi()
    benches.run_instantiate(api, template="idle", runs=3, cold=True, runs_dir=tmp_path,
                            progress=False, console=_console())  # fmt: skip
    (run,) = [p for _, p in rundir.run_dirs(tmp_path)]
    samples = outputs.samples_from_csv(run / "runs.csv")
    results = json.loads((run / "results.json").read_text())
    again = [s.as_dict() for s in summarize_samples(samples)]
    for before, after in zip(results["variants"], again, strict=True):
        assert after["total"]["mean"] == pytest.approx(before["total"]["mean"], abs=1e-5)
        assert list(after["phases"]) == list(before["phases"])
    assert "breakdown-zoom.png" in results["figures"]  # cold is > 5x the pool here
