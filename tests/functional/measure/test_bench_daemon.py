"""bench/instances_common.py's ``BenchDaemon``: a real daemon with pooled shells and an
instance, closed, leaves no work directory (/tmp/fe-bench-*) behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

ROOT = Path(__file__).parents[3]

SCRIPT = """
import sys
from instances_common import BenchDaemon

daemon = BenchDaemon({"pool_scale": 0.5, "prepare_workers": 1})
print(daemon.workdir, flush=True)
try:
    daemon.wait_pools(timeout=120)
    made = daemon.http.post("/v1/instances", json={"name": "benchclose", "template": "idle"})
    assert made.status_code in (200, 201), made.text
    # The shells' state (overlay upper and work directories) is in the work directory; their
    # roots are mounted in their containers' namespaces only, not in this one.
    assert any(daemon.workdir.rglob("upper")), "no shell state in the work directory"
finally:
    daemon.close()
print("closed", flush=True)
"""


def test_close_removes_the_work_directory() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT / "bench",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.split()
    workdir = Path(lines[0])
    assert workdir.name.startswith("fe-bench-")
    assert lines[-1] == "closed"
    assert not workdir.exists(), result.stderr
    assert "kept" not in result.stderr
