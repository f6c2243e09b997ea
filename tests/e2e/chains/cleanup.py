"""Teardown of a chain daemon's state, also when the daemon never came up in time."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from fluidedge.ovs import bridges as ovs_bridges
from tests.fixtures.daemon import purge_instances_state


def purge_daemon_state(state: Path, switch_ns: str) -> None:
    """Remove what the daemon's instances part left under ``state``, then stop what is left
    of the ``ovs`` network's switch it started in ``switch_ns``. WHY the second step: a
    daemon that did not answer within the fixture's deadline may have started the switch
    before its network was stored, and the purge, which stops the switches of stored
    networks, removes the pidfiles but leaves those daemons running (seen on a loaded
    machine). Their pids are read before the purge; both are processes this test started."""
    if not state.exists():
        return
    pids: list[int] = []
    with contextlib.suppress(Exception):
        ovs_bridges.configure(state / "instances")
        pids = [pid for pid in ovs_bridges.switch(switch_ns).pids() if pid is not None]
    try:
        purge_instances_state(state)
    finally:
        _stop(pids)


def _stop(pids: list[int], timeout: float = 5.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
