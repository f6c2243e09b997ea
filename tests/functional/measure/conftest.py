"""A real daemon with the instance manager, purged of every shell and instance at teardown."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.store import Store
from fluidedge.instances.manager import InstancesConfig, Manager
from tests.fixtures.daemon import DaemonHandle

INSTANCES_SECTION: dict[str, Any] = {"pool_scale": 0.5}


def purge_instances(handle: DaemonHandle) -> None:
    """After the daemon stopped: destroy the shells and instances it left for re-adoption."""
    purge_state(Path(handle.config["state_dir"]))


def purge_state(state_dir: Path) -> None:
    """Destroy every shell and instance recorded under a stopped daemon's ``state_dir``."""
    manager = Manager(
        InstancesConfig.model_validate({**INSTANCES_SECTION, "pool_scale": 0}),
        Store(state_dir / "fluidedge.sqlite"),
        state_dir / "instances",
    )
    with contextlib.suppress(Exception):
        manager.start()
    manager.purge()
    runc_root = state_dir / "instances" / "runc"
    if runc_root.exists():
        listed = subprocess.run(
            ["runc", "--root", str(runc_root), "list", "-q"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        leftovers = listed.stdout.split()
        assert leftovers == [], f"containers left behind: {leftovers}"


@pytest.fixture
def instances_daemon(
    daemon_factory: Callable[..., DaemonHandle],
) -> Iterator[DaemonHandle]:
    handle = daemon_factory(parts={"instances": dict(INSTANCES_SECTION)})
    try:
        yield handle
    finally:
        handle.stop()
        purge_instances(handle)
