"""Fail-open against the real GTP stack, both backends: kill -9 under traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.tof.failopen import kill9_under_traffic
from tests.e2e.tof_osmo.conftest import OsmoEnvFactory

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_kill9_under_traffic_fails_open(osmo_env: OsmoEnvFactory, tmp_path: Path) -> None:
    kill9_under_traffic(osmo_env(), tmp_path, ping_ue="ue2", service_ue="ue1")
