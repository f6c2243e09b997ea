"""The multi-host tier's lab: one OVN engine per module (a 3-member Raft central and three
chassis in namespaces, tests/fixtures/ovn_lab.py), reset to an empty northbound database and
no instances between tests, removed whole at the end of the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.ovn_lab import OvnLab


@pytest.fixture(scope="module")
def ovn_engine() -> Iterator[OvnLab]:
    lab = OvnLab(chassis_count=3, members=3)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def ovn(ovn_engine: OvnLab) -> Iterator[OvnLab]:
    ovn_engine.central.start()  # a test that stopped members leaves them restarted
    yield ovn_engine
    ovn_engine.reset()
