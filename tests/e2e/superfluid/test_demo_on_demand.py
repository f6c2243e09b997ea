"""``fluidedge demo --on-demand``: the demo's service runs on demand, one instance per UE
created on its first request, and everything is torn down."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.e2e.test_demo import _assert_nothing_left

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_demo_on_demand() -> None:
    prefix = f"sfd{os.getpid() % 100000}"
    result = subprocess.run(
        [sys.executable, "-m", "fluidedge", "demo", "--prefix", prefix, "--on-demand",
         "--duration", "6"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Registered service 198.18.50.1 on demand" in out
    answered = re.search(r"by on-demand instances: (\d+)\)", out)
    assert answered is not None, out
    assert int(answered.group(1)) > 0
    # per-ue: the UEs were answered by different instances, all created by the service
    names = set(re.findall(r"fluidedge instance (demo-edge-[0-9a-f]{8})", out))
    assert len(names) >= 2, out
    _assert_nothing_left(prefix, out)
