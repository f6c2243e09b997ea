"""``fluidedge bench noisy --quick``: the whole experiment on real instances, end to end.

Asserts what the run must produce (every scenario measured for each round, probes back, the
neighbour really running only when its scenario says so, outputs written, nothing left behind),
never the figures themselves (those belong in docs/cat.md).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fluidedge.linux import netns

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_quick_run_measures_every_scenario_and_cleans_up(tmp_path: Path) -> None:
    before = set(netns.list_names())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fluidedge",
            "bench",
            "noisy",
            "--quick",
            "--targets",
            "vfw",
            "--runs-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "CAT: " in result.stdout
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("-noisy")]
    results = json.loads((run_dir / "results.json").read_text())
    scenarios = results["scenarios"]
    assert scenarios[:3] == ["baseline", "neighbour", "pinned"]
    if "not supported" in results["cat"]:
        assert len(scenarios) == 3  # no CoS scenario on a host without RDT, and it says so
    cells = {(c["scenario"], c["metric"]): c for c in results["cells"]}
    for scenario in scenarios:
        for metric in ("throughput_kpps", "lat_avg_us", "lat_p99_us", "lat_max_us"):
            cell = cells[(scenario, metric)]
            assert cell["n"] == 2
            assert cell["mean"] > 0
            if scenario == "baseline":
                assert cell["change_pct"] == 0
            else:
                assert cell["change_pct"] is not None
    with (run_dir / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 2 * len(scenarios)
    for trial in trials:
        assert int(trial["probes"]) > 0
        assert (
            float(trial["lat_avg_us"]) <= float(trial["lat_p99_us"]) <= float(trial["lat_max_us"])
        )
        busy = float(trial["neighbour_cpu_s"])
        if trial["scenario"] == "baseline":
            assert busy < 0.05  # both neighbours frozen
        else:
            assert busy > 0.1  # the walker ran during the trial
    assert (run_dir / "noisy.png").stat().st_size > 10_000
    assert set(netns.list_names()) - before == set()
