"""The security-group functional tests' fixtures: ``sg_lab`` (both renderers, see
tests/fixtures/secgroups_net.py) and ``ovs_lab`` (Open vSwitch specifics, ovs_lab.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.secgroups_net import sg_lab

from .ovs_lab import OvsLab

__all__ = ["ovs_lab", "sg_lab"]


@pytest.fixture
def ovs_lab(tmp_path: Path) -> Iterator[OvsLab]:
    lab = OvsLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
