"""``fluidedge bench noisy --quick``: the whole experiment on real instances, end to end.

Asserts what the run must produce (every scenario measured for each round, probes back, the
neighbour really running only when its scenario says so, outputs written, nothing left behind),
never the figures themselves (those belong in docs/cat.md).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fluidedge.cat.layout import MODELS
from fluidedge.cat.manager import CatConfig, CatManager
from fluidedge.core.store import Store
from fluidedge.linux import netns
from fluidedge.measure.noisyrig import NoisyRig
from tests.fixtures.resctrl import FakeResctrl, Shape

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_quick_run_measures_every_scenario_and_cleans_up(tmp_path: Path) -> None:
    with subprocess.Popen(
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
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as bench:
        try:
            stdout, stderr = bench.communicate(timeout=600)
        finally:
            if bench.poll() is None:
                bench.kill()
    assert bench.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert "CAT: " in stdout
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
    # The bench's namespaces (nn<its pid>-gen/-sink/-br) are gone; another suite's bench
    # running at the same time has its own (a name from another pid is not ours).
    ours = f"nn{bench.pid % 100000}-"
    assert [n for n in netns.list_names() if n.startswith(ours)] == []


def test_cat_scenarios_lay_each_model_on_an_emulated_resctrl(tmp_path: Path) -> None:
    """This host has no RDT, so the bench's CoS scenarios are driven here on the emulation:
    each model is laid (the previous one replaced), the pinned neighbour's real tasks join the
    noisy class, the target's CPU its class, and the scenarios without CAT get the whole cache."""
    rig = NoisyRig(workdir=tmp_path / "rig", rules=10, routes=16, neighbour_mb=16, log=print)
    fs = FakeResctrl(tmp_path / "resctrl", Shape(ways=12, num_closids=16, cpus=os.cpu_count() or 2))
    try:
        rig.up()
        rig.cat = CatManager(
            CatConfig(mount=fs.root, sync_interval_s=60),
            Store(tmp_path / "cat.sqlite"),
            fs,
            instance_pid=rig._pid_of,
        )
        rig.cat.start()
        pinned = rig.manager.instances[f"{rig.p}-noisy-pinned"]
        for model in MODELS:
            rig.scenario(f"cat-{model}")
            assert pinned.pid is not None
            assert str(pinned.pid) in fs.read("fe-noisy/tasks").split()
            roles = [role for role, _ in MODELS[model]]
            expected = {"fe-noisy"} | ({"fe-target"} if "target" in roles else set())
            expected |= {"target2"} if "target2" in roles else set()
            assert set(fs.groups) - {""} == expected
            if "target" in roles:
                assert fs.read("fe-target/cpus_list").strip() == str(rig.target_cpu)
        rig.scenario("baseline")
        assert set(fs.groups) == {""}
        assert fs.read("schemata").strip() == "L3:0=fff"
    finally:
        rig.down()
    assert set(fs.groups) == {""}
