"""A fake resctrl tree per test (``tests.fixtures.resctrl``) and managers on it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.fixtures.resctrl import SHAPES, FakeResctrl, Shape
from tests.fixtures.wait import wait_for

from fluidedge.cat.manager import CatConfig, CatManager
from fluidedge.core.store import Store

MakeManager = Callable[..., CatManager]


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest) -> Shape:
    return SHAPES[request.param]


@pytest.fixture
def make_manager(tmp_path: Path) -> Iterator[MakeManager]:
    made: list[CatManager] = []

    def make(fs: FakeResctrl, store: Store | None = None, **kw: object) -> CatManager:
        manager = CatManager(
            CatConfig(mount=fs.root, sync_interval_s=60),
            store or Store(tmp_path / "db.sqlite"),
            fs,
            **kw,  # type: ignore[arg-type]
        )
        manager.start()
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.stop()


@pytest.fixture
def workload() -> Iterator[subprocess.Popen[bytes]]:
    """A real process with a real child (so task ids exist for the kernel-like checks)."""
    # Both sleep as the workload (killed below), not to synchronise anything.
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nelse:\n    time.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code])

    def children() -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, check=False)
        return [int(pid) for pid in found.stdout.split()]

    try:
        # Tests look for the child: it exists before they start (a loaded machine forks late).
        wait_for(children, 30, "the workload's child")
        yield proc
    finally:
        for pid in children():  # not left sleeping for a minute after the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
