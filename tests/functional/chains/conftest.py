"""The chain functional tests' fixture: ``chain_lab`` (chain_lab.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .chain_lab import ChainLab


@pytest.fixture
def chain_lab(tmp_path: Path) -> Iterator[ChainLab]:
    lab = ChainLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
