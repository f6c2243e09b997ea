"""The manager's store writer: claims at once and in order, follow-ups after the answer."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tests.fixtures.wait import scaled

from fluidedge.instances.writer import Writer


def test_submit_runs_in_order_after_what_was_deferred_before_it() -> None:
    writer = Writer(delay=3600)  # a follow-up would wait an hour for its kick
    done: list[str] = []
    writer.defer(done.append, "follow-up 1")
    writer.defer(done.append, "follow-up 2")
    assert writer.submit(lambda: done.append("claim") or "ok").result(scaled(5)) == "ok"
    assert done == ["follow-up 1", "follow-up 2", "claim"]
    writer.close()


def test_a_follow_up_waits_for_the_kick() -> None:
    writer = Writer(delay=3600)
    ran = threading.Event()
    writer.defer(ran.set)
    assert not ran.wait(0.1)  # held back: the answer it follows is not out yet
    writer.kick()
    assert ran.wait(scaled(5))
    writer.close()


def test_a_follow_up_nobody_kicks_runs_after_the_delay() -> None:
    writer = Writer(delay=0.05)
    ran = threading.Event()
    writer.defer(ran.set)
    assert ran.wait(scaled(5))
    writer.close()


def test_submit_reraises_and_a_failed_follow_up_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = Writer(delay=3600)

    def broken() -> None:
        raise ValueError("disk on fire")

    with caplog.at_level(logging.WARNING, logger="fluidedge.instances"):
        writer.defer(broken)
        with pytest.raises(ValueError, match="disk on fire"):
            writer.submit(broken).result(scaled(5))  # the follow-up ran (and failed) first
        assert [r.message for r in caplog.records] == ["deferred store write failed: disk on fire"]
    assert writer.submit(lambda: 7).result(scaled(5)) == 7  # the thread lives on


def test_close_writes_what_is_queued_and_refuses_more() -> None:
    writer = Writer(delay=3600)
    done: list[int] = []
    for index in range(3):
        writer.defer(done.append, index)
    writer.close()
    assert done == [0, 1, 2]
    with pytest.raises(RuntimeError, match="closed"):
        writer.defer(done.append, 3)
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(done.append, 3)


def test_what_is_queued_is_written_at_the_interpreter_exit(tmp_path: Path) -> None:
    """The writer's thread is a daemon thread; a follow-up still held back when the process
    exits normally is written all the same (as the thread pool it replaced did)."""
    done = tmp_path / "done"
    code = (
        "from pathlib import Path\n"
        "from fluidedge.instances.writer import Writer\n"
        "writer = Writer(delay=3600)\n"
        f"writer.defer(Path({str(done)!r}).write_text, 'written')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=scaled(30))
    assert done.read_text() == "written"
