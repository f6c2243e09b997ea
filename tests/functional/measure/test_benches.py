"""bench instantiate / density / report against a real daemon at small scale."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from fluidedge.measure import benches, plots, report, rundir
from fluidedge.measure.instantiate import HTTP_PHASE
from tests.fixtures.daemon import TOKEN, DaemonHandle, _free_port, write_toml
from tests.functional.measure.conftest import INSTANCES_SECTION, purge_state

pytestmark = pytest.mark.root


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def _our_instances(handle: DaemonHandle) -> list[str]:
    client = handle.client()
    try:
        return [i["name"] for i in client.get("/v1/instances") if i["name"].startswith("bench")]
    finally:
        client.close()


def test_instantiate_density_and_report(instances_daemon: DaemonHandle, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    client = instances_daemon.client()
    try:
        code = benches.run_instantiate(
            client,
            template="idle",
            runs=5,
            cold=True,
            compare_runc=True,
            runs_dir=runs_dir,
            progress=False,
            console=_quiet(),
        )
        assert code == 0
        code = benches.run_density_bench(
            client,
            template="idle",
            max_instances=20,
            step=5,
            runs_dir=runs_dir,
            progress=False,
            console=_quiet(),
        )
        assert code == 0
    finally:
        client.close()
    assert _our_instances(instances_daemon) == []  # every instance was deleted

    latest = rundir.latest_runs(runs_dir)
    assert set(latest) == {"instantiate", "density"}

    # instantiate: one CSV row per run, summaries consistent with the CSV
    inst = latest["instantiate"]
    rows = rundir.read_csv(inst / "runs.csv")
    assert len(rows) == 15
    assert [r["variant"] for r in rows] == ["pool"] * 5 + ["cold"] * 5 + ["runc run"] * 5
    assert {r["path"] for r in rows if r["variant"] == "pool"} == {"warm"}
    assert {r["path"] for r in rows if r["variant"] == "cold"} == {"cold"}
    results = json.loads((inst / "results.json").read_text())
    assert not results["interrupted"]
    assert results["failures"] == []
    by_variant = {v["variant"]: v for v in results["variants"]}
    assert [by_variant[v]["n"] for v in ("pool", "cold", "runc run")] == [5, 5, 5]
    pool_totals = [float(r["total_ms"]) for r in rows if r["variant"] == "pool"]
    assert by_variant["pool"]["total"]["mean"] == pytest.approx(sum(pool_totals) / 5, rel=1e-5)
    for variant in ("pool", "cold"):
        phases = by_variant[variant]["phases"]
        assert {"accept", "shell", "start", HTTP_PHASE} <= set(phases)
        # the phases add up to the client-side total (http = client round trip - daemon total)
        assert sum(p["mean"] for p in phases.values()) == pytest.approx(
            by_variant[variant]["total"]["mean"], rel=0.02
        )
    phase_names = {p for v in results["variants"] for p in v["phases"]}
    assert plots.png_size(inst / "breakdown.png") == plots.breakdown_size_px(3, len(phase_names))

    # density: one CSV row per instance, one point per step, a PNG of the expected size
    dens = latest["density"]
    assert len(rundir.read_csv(dens / "creations.csv")) == 20
    dres = json.loads((dens / "results.json").read_text())
    assert [p["running"] for p in dres["points"]] == [0, 5, 10, 15]
    assert dres["instances_created"] == 20
    assert dres["memory_per_instance_kib"] > 0
    assert plots.png_size(dens / "density.png") == (
        round(plots.DENSITY_SIZE_IN[0] * plots.DPI),
        round(plots.DENSITY_SIZE_IN[1] * plots.DPI),
    )

    # report: embeds and links every figure, links raw data that exists next to it
    out = tmp_path / "report"
    page = report.build_report(out, latest).read_text()
    images = re.findall(
        r'<a href="([^"]+\.png)"><img alt="[^"]+" src="data:image/png;base64,', page
    )
    expected = [*results["figures"], *dres["figures"]]
    assert "breakdown.png" in expected
    assert "density.png" in expected
    assert sorted(Path(i).name for i in images) == sorted(expected)
    for href in re.findall(r'href="(data/[^"]+)"', page):
        assert (out / href).is_file(), href
    assert "runs.csv" in page
    assert "creations.csv" in page
    assert "CPU" in page


def test_cli_instantiate_and_report(instances_daemon: DaemonHandle, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    base = [sys.executable, "-m", "fluidedge"]
    daemon = ["--url", instances_daemon.url, "--token", instances_daemon.token]
    result = subprocess.run(
        [*base, "bench", "instantiate", "-n", "2", "--runs-dir", str(runs_dir), "--no-progress",
         *daemon],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "TOTAL" in result.stdout
    result = subprocess.run(
        [*base, "bench", "report", "--out", str(tmp_path / "r"), "--runs-dir", str(runs_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report.html").is_file()
    result = subprocess.run(
        [*base, "bench", "instantiate", "-t", "nosuch", "--runs-dir", str(runs_dir), *daemon],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown template" in result.stderr


def test_cli_serve_starts_and_stops_its_own_daemon(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    port = _free_port()
    config = tmp_path / "fluidedge.toml"
    config.write_text(
        write_toml(
            {
                "state_dir": str(state_dir),
                "api": {"listen": "127.0.0.1", "port": port, "token": TOKEN},
                "instances": dict(INSTANCES_SECTION),
            }
        )
    )
    runs_dir = tmp_path / "runs"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "fluidedge", "bench", "density", "--max", "3", "--step", "1",
             "--serve", str(config), "--runs-dir", str(runs_dir), "--no-progress"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        purge_state(state_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = [p for kind, p in rundir.run_dirs(runs_dir) if kind == "density"]
    assert len(rundir.read_csv(run / "creations.csv")) == 3
    with pytest.raises(httpx.HTTPError):  # the daemon is gone
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
