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


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 30.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``env`` added to ours; :class:`OvnFailure` on a non-zero exit."""
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env},
        )
    except FileNotFoundError as exc:
        raise OvnFailure(f"{argv[0]}: not installed ({exc.filename})") from exc
    except subprocess.TimeoutExpired as exc:
        raise OvnFailure(f"{' '.join(argv[:3])}: timed out after {timeout}s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise OvnFailure(f"{' '.join(argv[:4])} failed ({result.returncode}): {detail}")
    return result


def private(path: Path) -> Path:
    """``path`` as a directory only its owner may enter (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def alive(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


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
