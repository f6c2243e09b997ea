"""Fixtures of the instance manager's e2e tests: a real daemon with the instances part."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonHandle, purge_instances_state

BRIDGE = f"fe2e{os.getpid() % 100000}"[:15]


def purge_daemon(handle: DaemonHandle) -> None:
    purge_instances_state(Path(handle.config["state_dir"]))


@pytest.fixture
def inst_daemon(daemon_factory: Callable[..., DaemonHandle]) -> Iterator[DaemonHandle]:
    handle = daemon_factory(
        parts={
            "instances": {
                "pool_scale": 0.5,
                "memory_mb": 2048,
                "networks": {"apps": {"bridge": BRIDGE, "subnet": "198.18.30.0/24"}},
            }
        }
    )
    try:
        yield handle
    finally:
        handle.stop()
        purge_daemon(handle)
