"""When an instance is ready: the template's readiness check, polled against a deadline.

Kinds: ``none`` (released is ready), ``started`` (the workload has replaced the launcher),
``tcp`` (a socket listens on the port in the instance's namespace), ``file`` (a path exists in
its root).
"""

from __future__ import annotations

import os
import time

from fluidedge.instances import runc
from fluidedge.instances.errors import ReadinessTimeout, WorkloadFailed
from fluidedge.instances.launcher import launcher_waiting
from fluidedge.instances.models import Readiness


def listening(pid: int, port: int) -> bool:
    """Whether a TCP socket listens on ``port`` in ``pid``'s network namespace."""
    want = f":{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A" and fields[1].endswith(want):
                        return True
        except OSError:
            continue
    return False


def still_starting(exe: str) -> bool:
    """True while ``runc init`` (a cloned binary, seen as ``/`` or ``memfd:...``), crun's init or
    the launcher still holds the process: the fifo's EOF comes just *before* runc init's exec."""
    return exe in ("", "/") or "runc" in exe or "crun" in exe or exe.endswith("fe-launcher")


def probe(kind: str, pid: int, port: int | None, path: str | None) -> bool:
    if kind == "tcp" and port is not None:
        return listening(pid, port)
    if kind == "file" and path:
        return os.path.exists(f"/proc/{pid}/root{path}")
    return False


def wait_ready(check: Readiness, pid: int, name: str, launcher_kind: str) -> None:
    """Return once ``check`` holds for the instance's process ``pid``.

    :class:`WorkloadFailed` if the workload exits first, :class:`ReadinessTimeout` after
    ``check.timeout_s``.
    """
    if check.kind == "none":
        return
    begin = time.monotonic()
    deadline = begin + check.timeout_s
    # Poll every 50-250 µs for the first 20 ms (an exec or a listen normally lands there,
    # and a coarse step would add up to a whole step to the measured latency), then back
    # off to 1 ms so a slow workload does not keep a core busy.
    delay = 0.00005
    while True:
        if check.kind == "started":
            exe = runc.exe_of(pid)
            if exe is None:
                raise WorkloadFailed(f"instance {name}: workload exited at start (see logs)")
            if not still_starting(exe) and (launcher_kind == "c" or not launcher_waiting(pid)):
                return
        elif not runc.pid_alive(pid) or runc.exe_of(pid) is None:
            raise WorkloadFailed(f"instance {name}: workload exited before it was ready")
        elif probe(check.kind, pid, check.port, check.path):
            return
        if time.monotonic() > deadline:
            raise ReadinessTimeout(
                f"instance {name}: not ready ({check.kind}) within {check.timeout_s} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.00025 if time.monotonic() - begin < 0.02 else 0.001)
