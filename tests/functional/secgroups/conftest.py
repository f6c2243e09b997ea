"""Fixtures of the security-group functional tests on Open vSwitch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .ovs_lab import OvsLab


@pytest.fixture
def ovs_lab(tmp_path: Path) -> Iterator[OvsLab]:
    lab = OvsLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
