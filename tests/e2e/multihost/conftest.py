"""The multi-host tier (tests/fixtures/ovn_nodes.py): several daemons as nodes of one OVN
central, shared per module, reset between tests, removed whole at the end of the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.ovn_nodes import OvnNodes


@pytest.fixture(scope="module")
def nodes_engine(request: pytest.FixtureRequest) -> Iterator[OvnNodes]:
    settings = getattr(request.module, "NODES", {})
    nodes = OvnNodes(**settings)
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def nodes(nodes_engine: OvnNodes) -> Iterator[OvnNodes]:
    yield nodes_engine
    nodes_engine.reset()
