"""Fail-open on the emulated lab, both backends: kill -9 under traffic (see failopen.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.tof.conftest import TofEnvFactory
from tests.e2e.tof.failopen import kill9_under_traffic

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_kill9_under_traffic_fails_open(tof_env: TofEnvFactory, tmp_path: Path) -> None:
    kill9_under_traffic(tof_env(), tmp_path, ping_ue="ue2", service_ue="ue1")
