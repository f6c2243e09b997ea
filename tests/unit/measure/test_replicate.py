"""The replicated-runs engine: order, failures, Ctrl-C, summaries; and the run directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fluidedge.errors import SystemFailure
from fluidedge.measure import rundir
from fluidedge.measure.errors import MeasureInputError, NoRunsError
from fluidedge.measure.replicate import (
    MAX_CONSECUTIVE_FAILURES,
    Sample,
    phase_order,
    replicate,
    summarize_samples,
)


def _sample(variant: str, run: int) -> Sample:
    phases = {"accept": 0.1 * (run + 1), "start": 1.0 + run}
    return Sample(variant, run, phases, sum(phases.values()) + 0.05)


def test_runs_every_variant_in_order_and_reports_each_sample() -> None:
    seen: list[tuple[str, int]] = []
    outcome = replicate(
        ["pool", "cold"],
        3,
        _sample,
        on_sample=lambda s: seen.append((s.variant, s.run)),
        progress=False,
    )
    assert seen == [("pool", 0), ("pool", 1), ("pool", 2), ("cold", 0), ("cold", 1), ("cold", 2)]
    assert not outcome.interrupted
    assert len(outcome.samples) == 6
    summaries = summarize_samples(outcome.samples)
    assert [s.variant for s in summaries] == ["pool", "cold"]
    assert summaries[0].phases["start"].mean == pytest.approx(2.0)
    assert summaries[0].total.n == 3
    assert list(summaries[0].as_dict()["phases"]) == ["accept", "start"]


def test_ctrl_c_keeps_what_was_measured() -> None:
    def trial(variant: str, run: int) -> Sample:
        if run == 2:
            raise KeyboardInterrupt
        return _sample(variant, run)

    outcome = replicate(["pool", "cold"], 5, trial, progress=True)
    assert outcome.interrupted
    assert [(s.variant, s.run) for s in outcome.samples] == [("pool", 0), ("pool", 1)]


def test_failures_are_recorded_and_a_broken_variant_is_abandoned() -> None:
    def trial(variant: str, run: int) -> Sample:
        if variant == "cold" or run == 1:
            raise SystemFailure("runc exploded")
        return _sample(variant, run)

    outcome = replicate(["pool", "cold"], 20, trial, progress=False)
    assert [s.run for s in outcome.samples if s.variant == "pool"] == [0, *range(2, 20)]
    cold_failures = [f for f in outcome.failures if f.variant == "cold"]
    assert len(cold_failures) == MAX_CONSECUTIVE_FAILURES
    assert "runc exploded" in cold_failures[0].error


def test_bad_arguments() -> None:
    with pytest.raises(MeasureInputError):
        replicate(["pool"], 0, _sample, progress=False)
    with pytest.raises(MeasureInputError):
        replicate([], 3, _sample, progress=False)


def test_phase_order_is_first_seen() -> None:
    samples = [
        Sample("a", 0, {"x": 1.0, "y": 2.0}, 3.0),
        Sample("b", 0, {"create": 1.0, "x": 1.0}, 2.0),
    ]
    assert phase_order(samples) == ["x", "y", "create"]


def test_run_dirs(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, 20, 0, 0, tzinfo=UTC)
    first = rundir.new_run_dir("instantiate", tmp_path, now)
    second = rundir.new_run_dir("instantiate", tmp_path, now)
    assert first.name == "20261125-200000-instantiate"
    assert second.name == "20261125-200000-1-instantiate"
    with pytest.raises(NoRunsError):
        rundir.latest_runs(tmp_path)
    rundir.write_json(first / "results.json", {"ok": 1})
    rundir.write_json(second / "results.json", {"ok": 2})
    density = rundir.new_run_dir("density", tmp_path, now)
    rundir.write_json(density / "results.json", {})
    latest = rundir.latest_runs(tmp_path)
    assert latest == {"instantiate": second, "density": density}
    assert rundir.read_json(second / "results.json") == {"ok": 2}
    with pytest.raises(MeasureInputError):
        rundir.new_run_dir("nonsense", tmp_path)


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    rundir.write_csv(
        path, ["variant", "run", "total_ms"], [{"variant": "a", "run": 0, "total_ms": 1.5}]
    )
    rows = rundir.read_csv(path)
    assert rows == [{"variant": "a", "run": "0", "total_ms": "1.500000"}]
    assert not list(tmp_path.glob(".runs.csv.*"))
