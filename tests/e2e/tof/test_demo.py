"""The README's main job: ``fluidedge demo`` runs, offloads UE traffic, and cleans up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fluidedge.linux import netns

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_demo_offloads_and_leaves_nothing_behind() -> None:
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
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "edge-app app1 198.19.0.10 client 198.18.100." in result.stdout
    assert "Demo torn down" in result.stdout
    assert not [n for n in netns.list_names() if n.startswith(f"{prefix}-")]
