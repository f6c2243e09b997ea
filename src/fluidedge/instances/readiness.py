"""When an instance is ready: its template's readiness spec, checked explicitly.

Kinds (``TemplateSpec.readiness``):

- ``none``: released is ready; nothing is waited for.
- ``started``: the workload runs: the launcher's ``execve`` succeeded. The launcher reports it
  itself through the shell's *started* FIFO (``/.fe/started``): the manager opens the read end
  before the go signal (:meth:`StartWatch.open`), the launcher opens the write end close-on-exec
  after it, so a successful ``execve`` closes it (EOF), while a failed one writes ``E`` and the
  errno, and a launcher failure before that (a bad assignment) ``L`` and its exit code. No guess
  from ``/proc/<pid>/exe`` about what the process is.
- ``tcp``: started, then a socket listens on ``port`` in the instance's network namespace
  (a sock_diag dump of its listening sockets, see :mod:`fluidedge.instances.sockdiag`;
  ``/proc/<pid>/net/tcp{,6}`` when that is not available; no connectivity needed).
- ``file``: started, then ``path`` exists in the instance's root (``/proc/<pid>/root``), a file
  the workload writes when it is ready.

Every kind fails with :class:`WorkloadFailed` (422) as soon as the process is gone (exited or a
zombie) and with :class:`ReadinessTimeout` (504) after ``timeout_s``. A shell prepared by an
older version has no started FIFO: its start is then recognised by its process no longer
running the launcher (its command line).
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

from fluidedge.instances.errors import ReadinessTimeout, WorkloadFailed
from fluidedge.instances.launcher import START_FAILED, still_untokened_launcher
from fluidedge.instances.models import Readiness
from fluidedge.instances.sockdiag import ListenProbe
from fluidedge.linux import procfs

# How often a blocked wait re-checks that the process still lives (a launcher killed before
# it opened its end of the FIFO never closes it).
_LIVENESS_S = 0.01


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


def probe(check: Readiness, pid: int, diag: ListenProbe | None = None) -> bool:
    """The ``tcp`` or ``file`` condition, once (``tcp`` through ``diag`` when given)."""
    if check.kind == "tcp" and check.port is not None:
        if diag is not None:
            try:
                return diag.listening(check.port)
            except (OSError, ValueError):
                pass  # /proc tells the same, slower
        return listening(pid, check.port)
    if check.kind == "file" and check.path:
        return os.path.exists(f"/proc/{pid}/root{check.path}")
    return False


def start_failure(report: bytes) -> str | None:
    """What a launcher's report on the started FIFO says went wrong (None: nothing)."""
    if len(report) >= 2 and report[:1] == START_FAILED:
        return f"execve failed: {os.strerror(report[1])}"
    if len(report) >= 2 and report[:1] == b"L":
        return f"launcher failed (exit {report[1]}, see the instance's log)"
    if report:
        return f"unexpected launcher report {report[:8]!r}"
    return None


class StartWatch:
    """The read end of a shell's started FIFO, opened before its go signal."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, fifo: Path) -> StartWatch | None:
        """None when the shell has no started FIFO (prepared by an older version)."""
        try:
            return cls(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except FileNotFoundError:
            return None

    def wait(self, pid: int, name: str, deadline: float, kind: str) -> None:
        """Return once the launcher has exec'd the workload."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP)
        report = b""
        while True:
            remaining = deadline - time.monotonic()
            events = poller.poll(max(0, min(remaining, _LIVENESS_S)) * 1000)
            if events:
                try:
                    chunk = os.read(self.fd, 16)
                except BlockingIOError:
                    chunk = None
                if chunk:
                    report += chunk
                elif chunk == b"":  # every writer closed: exec'd, or failed and said why
                    why = start_failure(report)
                    if why is not None:
                        raise WorkloadFailed(f"instance {name}: workload exited at start: {why}")
                    return
            elif not procfs.process_running(pid):
                # It may have written its report and exited after this poll looked: read
                # what the FIFO holds before saying it died without a word.
                why = start_failure(report + self._drain())
                detail = f": {why}" if why is not None else ""
                raise WorkloadFailed(f"instance {name}: workload exited at start{detail}")
            if remaining <= 0:
                raise ReadinessTimeout(f"instance {name}: not ready ({kind}) within deadline")

    def _drain(self) -> bytes:
        """What the FIFO still holds (non-blocking)."""
        try:
            return os.read(self.fd, 16)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def wait_ready(check: Readiness, pid: int, name: str, watch: StartWatch | None) -> None:
    """Return once ``check`` holds for the instance's process ``pid``; ``watch`` is the started
    FIFO's read end opened before the go signal (closed here)."""
    if check.kind == "none":
        if watch is not None:
            watch.close()
        return
    begin = time.monotonic()
    deadline = begin + check.timeout_s
    diag = None
    if check.kind == "tcp":
        # Opened while the launcher execs (it costs a thread that enters the namespace).
        try:
            diag = ListenProbe.open_in(f"/proc/{pid}/ns/net")
        except OSError:
            diag = None  # gone already (reported below), or no sock_diag: /proc
    try:
        _wait_ready(check, pid, name, watch, begin, deadline, diag)
    finally:
        if diag is not None:
            diag.close()


def _wait_ready(  # noqa: PLR0917 (the one caller above)
    check: Readiness,
    pid: int,
    name: str,
    watch: StartWatch | None,
    begin: float,
    deadline: float,
    diag: ListenProbe | None,
) -> None:
    try:
        if watch is not None:
            try:
                watch.wait(pid, name, deadline, check.kind)
            except ReadinessTimeout:
                raise ReadinessTimeout(
                    f"instance {name}: not ready ({check.kind}) within {check.timeout_s} s"
                ) from None
    finally:
        if watch is not None:
            watch.close()
    if check.kind == "started" and watch is not None:
        return
    # Poll every 50-250 µs for the first 20 ms (a listen normally lands there, and a coarse
    # step would add up to a whole step to the measured latency), then back off to 1 ms so a
    # slow workload does not keep a core busy.
    delay = 0.00005
    while True:
        if not procfs.process_running(pid):
            raise WorkloadFailed(f"instance {name}: workload exited before it was ready")
        if check.kind == "started" or watch is None:
            started = not still_untokened_launcher(pid)  # an older shell: no started FIFO
            if started and check.kind == "started":
                return
        else:
            started = True
        if started and probe(check, pid, diag):
            return
        if time.monotonic() > deadline:
            raise ReadinessTimeout(
                f"instance {name}: not ready ({check.kind}) within {check.timeout_s} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.00025 if time.monotonic() - begin < 0.02 else 0.001)
