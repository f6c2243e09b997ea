"""Fixtures for the Open vSwitch functional tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.ovs import bridges
from tests.fixtures.ovs_datapath import DATAPATH


@pytest.fixture
def own_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The switch registry of :mod:`fluidedge.ovs.bridges` as the test's own: empty, its
    switches under ``tmp_path`` (returned), the process's put back at the end."""
    for name in ("_switches", "_kept", "_pending", "_restorers", "_base", "_wanted", "_module"):
        monkeypatch.setattr(bridges, name, getattr(bridges, name))  # the process's, put back
    for name in ("_switches", "_kept"):
        monkeypatch.setattr(bridges, name, {})
    monkeypatch.setattr(bridges, "_pending", set())
    monkeypatch.setattr(bridges, "_restorers", [])
    state = tmp_path / "state"
    bridges.configure(state, DATAPATH)
    return state
