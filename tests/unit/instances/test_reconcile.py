"""Re-adoption's decisions: what an instance row and a shell row become at start, given what
the runtime lists (the functional tests restart managers over real containers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fluidedge.instances.launcher import is_waiting_launcher
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


BINARY = (64769, 1234)  # (st_dev, st_ino) of this state directory's C launcher
TOKEN = "ab" * 16


@pytest.mark.parametrize(
    ("argv", "exe", "token", "waiting"),
    [
        # the C launcher started with its token, running the launcher binary
        ([b"/.fe-launcher", TOKEN.encode()], BINARY, TOKEN, True),
        # the busybox script, through its #! line: the token alone identifies it
        ([b"/bin/busybox", b"sh", b"/.fe-launcher", TOKEN.encode()], (1, 2), TOKEN, True),
        # a workload exec'ing the launcher binary itself, bare or with a guessed token
        ([b"/.fe-launcher"], BINARY, TOKEN, False),
        ([b"/.fe-launcher", b"0" * 32], BINARY, TOKEN, False),
        ([b"/bin/busybox", b"sh", b"/.fe-launcher"], (1, 2), TOKEN, False),
        # the right argv from another executable (a copy, a renamed program)
        ([b"/.fe-launcher", TOKEN.encode()], (64769, 99), TOKEN, False),
        ([b"/.fe-launcher", TOKEN.encode()], None, TOKEN, False),
        # an ordinary workload
        ([b"/bin/sleep", b"1000"], (1, 2), TOKEN, False),
        # rows from before tokens: the bare argv, and the binary for the C launcher
        ([b"/.fe-launcher"], BINARY, None, True),
        ([b"/.fe-launcher"], (1, 2), None, False),
        ([b"/bin/busybox", b"sh", b"/.fe-launcher"], (1, 2), None, True),
    ],
)
def test_waiting_launcher_identity(
    argv: list[bytes], exe: tuple[int, int] | None, token: str | None, waiting: bool
) -> None:
    assert is_waiting_launcher(argv, exe, token=token, binary=BINARY) is waiting


def test_records_keep_the_token() -> None:
    shell = Shell("fe0000000001", "idle", 7, Path("/x"), [], token=TOKEN)
    assert Shell.from_info(shell.info()).token == TOKEN
    info = shell.info()
    del info["token"]  # a row written before tokens
    assert Shell.from_info(info).token is None


def test_a_process_in_its_exec_is_given_time_to_show_its_argv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool shell caught inside its exec (empty command line, or still ``runc init``) is
    read again until it shows the launcher's argv, instead of being judged a stranger."""
    from fluidedge.instances import launcher

    token = "a" * 32
    own = [arg.encode() for arg in launcher.launcher_argv(token)]
    seen = iter([[b""], [b"runc", b"init"], [b"/bin/busybox", b"sh", *own]])
    monkeypatch.setattr(launcher, "_argv", lambda pid: next(seen))
    assert launcher.launcher_waiting(1, token, None)
    # a process that never settles is not a launcher, and the wait is bounded
    monkeypatch.setattr(launcher, "EXEC_SETTLE_S", 0.05)
    monkeypatch.setattr(launcher, "_argv", lambda pid: [b""])
    assert not launcher.launcher_waiting(1, token, None)
    monkeypatch.setattr(launcher, "_argv", lambda pid: None)
    assert not launcher.launcher_waiting(1, token, None)
