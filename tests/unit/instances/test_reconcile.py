"""Re-adoption's decisions: what an instance row and a shell row become at start, given what
the runtime lists (the functional tests restart managers over real containers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fluidedge.instances.reconcile import instance_status, shell_fate
from fluidedge.instances.records import Shell


def _found(status: str, pid: int = 7) -> dict[str, Any]:
    return {"id": "fe0000000001", "status": status, "pid": pid}


def test_instance_status() -> None:
    assert instance_status(None, waiting=False) is None
    assert instance_status(_found("running"), waiting=False) == "running"
    assert instance_status(_found("paused"), waiting=False) == "paused"
    # claimed but never released: its launcher still waits
    assert instance_status(_found("running"), waiting=True) == "created"
    assert instance_status(_found("stopped"), waiting=False) == "stopped"


def _shell(state: str = "ready", pid: int = 7) -> Shell:
    return Shell("fe0000000001", "idle", pid, Path("/nonexistent"), [], state=state)


@pytest.mark.parametrize(
    ("shell", "found", "waiting", "fifo", "known", "fate"),
    [
        (_shell(), _found("running"), True, True, True, "pool"),
        (_shell(state="preparing"), _found("running"), True, True, True, "destroy"),
        (_shell(), _found("running", pid=8), True, True, True, "destroy"),
        (_shell(), _found("running"), True, False, True, "destroy"),
        (_shell(), _found("running"), True, True, False, "destroy"),
        (_shell(), _found("created"), False, True, True, "destroy"),
        (_shell(), None, False, True, True, "destroy"),
        # a shell row whose container runs a workload: never destroyed, the row is forgotten
        (_shell(), _found("running"), False, True, True, "forget"),
        (_shell(state="preparing"), _found("paused"), False, True, True, "forget"),
    ],
)
def test_shell_fate(  # noqa: PLR0917 (parametrized)
    shell: Shell,
    found: dict[str, Any] | None,
    waiting: bool,
    fifo: bool,
    known: bool,
    fate: str,
) -> None:
    assert shell_fate(shell, found, waiting=waiting, fifo=fifo, template_known=known) == fate
