"""The started FIFO's protocol, with a FIFO in a temporary directory standing for the
launcher's end (the functional tests run it against the real C and busybox launchers)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fluidedge.instances.errors import ReadinessTimeout, WorkloadFailed
from fluidedge.instances.models import Readiness
from fluidedge.instances.readiness import StartWatch, start_failure, wait_ready


def test_start_failure_reports() -> None:
    assert start_failure(b"") is None
    assert start_failure(b"E" + bytes([errno.ENOENT])) == (
        "execve failed: No such file or directory"
    )
    assert start_failure(b"L" + bytes([113])) == (
        "launcher failed (exit 113, see the instance's log)"
    )
    assert start_failure(b"?") == "unexpected launcher report b'?'"


def _watch(tmp_path: Path) -> tuple[StartWatch, Path]:
    fifo = tmp_path / "started"
    os.mkfifo(fifo, 0o600)
    watch = StartWatch.open(fifo)
    assert watch is not None
    return watch, fifo


def _launcher_end(fifo: Path, report: bytes = b"") -> None:
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    if report:
        os.write(fd, report)
    os.close(fd)  # what a successful execve does to the close-on-exec end


def test_eof_without_report_is_started(tmp_path: Path) -> None:
    watch, fifo = _watch(tmp_path)
    _launcher_end(fifo)
    wait_ready(Readiness(kind="started"), os.getpid(), "a", watch)
    assert watch.fd == -1  # closed by wait_ready


def test_a_report_is_a_workload_failure(tmp_path: Path) -> None:
    watch, fifo = _watch(tmp_path)
    _launcher_end(fifo, b"E" + bytes([errno.EACCES]))
    with pytest.raises(WorkloadFailed, match="execve failed: Permission denied"):
        wait_ready(Readiness(kind="started"), os.getpid(), "a", watch)


def test_no_writer_yet_is_not_started(tmp_path: Path) -> None:
    watch, _ = _watch(tmp_path)
    with pytest.raises(ReadinessTimeout, match=r"not ready \(started\) within 0.05 s"):
        wait_ready(Readiness(kind="started", timeout_s=0.05), os.getpid(), "a", watch)


def test_a_process_gone_before_it_reported_fails(tmp_path: Path) -> None:
    watch, _ = _watch(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(WorkloadFailed, match="exited at start"):
        wait_ready(Readiness(kind="started", timeout_s=30), child.pid, "a", watch)


def test_a_process_gone_after_its_report_fails_with_the_report(tmp_path: Path) -> None:
    """The launcher wrote its report, and is found dead before the FIFO's EOF is seen (its
    write end still open elsewhere, or the poll looked just before the write): the failure
    carries the report's reason, not a bare "exited"."""
    watch, fifo = _watch(tmp_path)
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(writer, b"E" + bytes([errno.ENOENT]))
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        with pytest.raises(
            WorkloadFailed, match="exited at start: execve failed: No such file or directory"
        ):
            wait_ready(Readiness(kind="started", timeout_s=30), child.pid, "a", watch)
    finally:
        os.close(writer)


def test_file_kind_waits_for_start_then_for_the_file(tmp_path: Path) -> None:
    watch, fifo = _watch(tmp_path)
    _launcher_end(fifo)
    # /proc/<pid>/root of this process is /: the file is tmp_path/"up"
    check = Readiness(kind="file", path=str(tmp_path / "up"), timeout_s=0.05)
    with pytest.raises(ReadinessTimeout, match=r"not ready \(file\)"):
        wait_ready(check, os.getpid(), "a", watch)
    watch = StartWatch.open(fifo)
    assert watch is not None
    _launcher_end(fifo)
    (tmp_path / "up").write_text("")
    wait_ready(check.model_copy(update={"timeout_s": 30}), os.getpid(), "a", watch)


def test_none_waits_for_nothing(tmp_path: Path) -> None:
    watch, _ = _watch(tmp_path)
    wait_ready(Readiness(kind="none"), 1, "a", watch)  # no writer ever: still returns
    assert watch.fd == -1
