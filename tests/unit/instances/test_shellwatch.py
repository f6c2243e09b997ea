"""The pooled launchers' watch (``fluidedge.instances.shellwatch``) on real pidfds: an exit is
reported once; a shell a request takes leaves the watch with the answer whether its launcher
still runs (one poll of its pidfd), and a shell that was not watched says so."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest

from fluidedge.instances.shellwatch import ShellWatch


@pytest.fixture
def sleeper() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start a long ``sleep`` (a launcher's stand-in); every one is killed and reaped after."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(["sleep", "60"]))
        return started[-1]

    yield start
    for child in started:
        child.kill()
        child.wait()


def test_an_exit_is_reported_and_a_taken_shell_is_not(
    sleeper: Callable[[], subprocess.Popen[bytes]],
) -> None:
    exited: list[str] = []
    done = threading.Event()

    def on_exit(shell_id: str) -> None:
        exited.append(shell_id)
        done.set()

    watch = ShellWatch(on_exit)
    watch.start()
    taken, dying = sleeper(), sleeper()
    try:
        watch.watch("taken", os.pidfd_open(taken.pid))
        watch.watch("dying", os.pidfd_open(dying.pid))
        assert watch.take("taken") is True
        taken.kill()
        dying.kill()
        assert done.wait(10)
        assert exited == ["dying"]
        assert watch.watched() == set()
    finally:
        watch.stop()


def test_take_polls_the_launcher_it_stops_watching(
    sleeper: Callable[[], subprocess.Popen[bytes]],
) -> None:
    """A launcher that died after the watch last looked (here the watch's thread never runs)
    is seen by the take's own poll; an exited, not yet reaped process counts as gone."""
    watch = ShellWatch(lambda shell_id: None)  # not started: nothing but the take looks
    alive, gone = sleeper(), sleeper()
    try:
        watch.watch("alive", os.pidfd_open(alive.pid))
        watch.watch("gone", os.pidfd_open(gone.pid))
        gone.kill()
        os.waitid(os.P_PID, gone.pid, os.WEXITED | os.WNOWAIT)  # a zombie now, not reaped
        assert watch.take("gone") is False
        assert watch.take("alive") is True
        assert watch.take("alive") is None  # taken already: no longer watched
        assert watch.take("never") is None
        assert watch.watched() == set()
    finally:
        watch.stop()
