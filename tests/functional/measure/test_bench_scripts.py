"""The instance manager's benchmark scripts (``bench/``) run end to end at a tiny size.

CI does not run the benchmarks at their size (they take minutes to hours), and ``mypy`` in
``scripts/check`` only catches a call whose signature changed. These runs catch the rest: a
bench that fails against today's daemon (its ``runc run`` baseline stopped at the first row
for two stops once, when the shells' scratch directories became an argument of the OCI
builder). Each asserts the rows the closing notes quote, with the sample counts asked for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).parents[3]


def _bench(script: str, *args: str, timeout: float = 280) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{script}: rc {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stdout


def _has_rows(out: str, rows: tuple[str, ...]) -> None:
    for row in rows:
        assert re.search(row, out), f"no {row!r} in:\n{out}"


def test_instances_latency_bench_runs_every_row() -> None:
    out = _bench("instances_latency.py", "--runs", "3")
    rows = (
        r"warm pool  idle  \(API\) .* n=3",
        r"warm pool  idle  \(API, unix\) .* n=3",
        r"cold path  idle  \(API\) .* n=3",
        r"runc run   idle .* n=3",
        r"runc run   httpd .* n=3",
        r"imgidle  imported docker-archive, userns .* n=[0-9]+",
        r"pause_api .* n=3",
        r"bare ASGI app .* n=3",
        r"warm idle p50 / floor p50 = +[0-9.]+x",
    )
    _has_rows(out, rows)


def test_store_durability_bench_runs_every_row() -> None:
    out = _bench("store_durability.py", "--creates", "3", "--services", "3", "--commits", "6")
    rows = (
        r"store commit +[0-9.]+ .* n=6",
        r"TOF service POST +[0-9.]+ .* n=3",
        r"warm instance create +[0-9.]+ .* n=3",
        r"started / not: p50 [0-9.]+x, p99 [0-9.]+x  n=6",
    )
    _has_rows(out, rows)


def test_instances_density_bench_runs_to_its_figures() -> None:
    out = _bench("instances_density.py", "--count", "12", "--pool", "2")
    assert re.search(r"created 12 instances in [0-9.]+ s; 12 running at the end", out), out
    assert "paths: warm 12, cold 0" in out, out
    assert re.search(r"MemAvailable drop: .* per idle instance", out), out
    assert re.search(r"ratio at N=[0-9]+ / at N: pause\+resume [0-9.]+x \(N=1\)", out), out
