"""The README's main job: ``fluidedge demo`` runs, offloads UE traffic, and cleans up.

Like its sibling (tests/e2e/test_demo.py, the instance-backed demo), "nothing left behind" is
checked independently of the demo's own report: no lab namespace, process or state, no daemon
process, no daemon state directory (the demo's temporary directory is created under this
test's own ``TMPDIR``, so it can be looked for without racing other tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_demo import _assert_nothing_left
from tests.fixtures.lab import lab_leftovers, processes_mentioning

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_demo_offloads_and_leaves_nothing_behind(tmp_path: Path) -> None:
    prefix = f"demo{os.getpid() % 100000}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fluidedge",
            "demo",
            "--duration",
            "4",
            "--prefix",
            prefix,
            "--static-app",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "edge-app app1 198.19.0.10 client 198.18.100." in result.stdout
    assert "Demo torn down" in result.stdout
    _assert_nothing_left(prefix, out)  # the demo's report; namespaces
    assert lab_leftovers(prefix) == []  # namespaces, lab processes, lab state
    assert not list(tmp_path.glob("fluidedge-tof-*")), "the daemon's state directory was left"
    assert processes_mentioning(str(tmp_path)) == []  # the daemon (its config is in there)
