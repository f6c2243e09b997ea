"""``fluidedge demo --chain``: the demo's service traffic crosses a chain of runc function
instances (TOF -> vFirewall -> counter -> the edge app), and everything is torn down."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.e2e.test_demo import _assert_nothing_left

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_demo_chain() -> None:
    prefix = f"fcd{os.getpid() % 100000}"
    result = subprocess.run(
        [sys.executable, "-m", "fluidedge", "demo", "--prefix", prefix, "--chain",
         "--duration", "6"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Chain demo: TOF" in out, out
    seen = re.search(
        r"Chain: demo-fw was handed (\d+) requests and (\d+) replies and dropped (\d+) "
        r"\(from (ue\d+) [\d.]+\); demo-ctr was handed (\d+) requests and (\d+) replies",
        out,
    )
    assert seen is not None, out
    fw_in, fw_back, dropped, blocked, ctr_in, ctr_back = seen.groups()
    # Each UE's edge traffic crossed both functions each way; the blocked UE's was dropped.
    assert int(ctr_in) > 0
    assert int(ctr_back) > 0
    assert int(fw_back) > 0  # the replies cross the firewall too, after the counter
    assert int(fw_in) > int(dropped)
    assert int(dropped) > 0
    # The blocked UE got no answer from the edge (its last row in the live table), the
    # others did (the exit code says so: the demo's instance answered).
    rows = dict(re.findall(r"│ (ue\d+) [\d.]+ +│ (\d+) +│", out))
    assert rows[blocked] == "0", out
    _assert_nothing_left(prefix, out)
