"""Run OVN/OVS tools with a private environment, argv only (no shell ever sees an argument).

OVN's daemons and tools find their run/db/log directories through ``OVN_RUNDIR``,
``OVN_DBDIR``, ``OVN_LOGDIR`` (and ``OVS_*`` for the Open vSwitch half); every call carries the
directories of *our* engine, never the host's ``/var/run/ovn``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fluidedge.ovn.errors import OvnFailure
from fluidedge.ovs import tool as ovs_tool
from fluidedge.ovs.daemons import alive, private
from fluidedge.ovs.errors import OvsFailure

__all__ = ["alive", "private", "run", "stop_daemon", "wait"]


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 30.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``env`` added to ours (the Open vSwitch runner's rules);
    :class:`OvnFailure` on a non-zero exit."""
    try:
        return ovs_tool.run(argv, env, timeout=timeout, check=check)
    except OvsFailure as exc:
        raise OvnFailure(str(exc)) from exc


def stop_daemon(
    ctl: Path | None, pidfile: Path, env: Mapping[str, str], timeout: float = 10.0
) -> None:
    """Ask a daemon to exit on its control socket, SIGKILL it after ``timeout``; absent is fine."""
    pid = alive(pidfile)
    if pid is None:
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        return
    if ctl is not None and ctl.exists():
        run(["ovs-appctl", "-t", str(ctl), "exit"], env, check=False, timeout=timeout)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pidfile) == pid and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pidfile) == pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while alive(pidfile) == pid and time.monotonic() < deadline + 5:
            time.sleep(0.02)
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()


def wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll ``condition()`` until true; :class:`OvnFailure` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise OvnFailure(f"ovn: {what} within {timeout}s")
        time.sleep(0.03)
