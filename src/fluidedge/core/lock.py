"""One owner per state directory: an exclusive ``flock`` on ``<state_dir>/fluidedge.lock``.

Two daemons on one state directory would both re-adopt the same shells and create containers
for the same names. The daemon takes the lock before it opens the store and holds it for its
lifetime; the kernel releases it when the process dies (kill -9 included), so a stale lock file
never blocks a restart. The file holds the owner's pid and role, for the refusal message.
Offline commands that change the state (``fluidedge state restore``, ``fluidedge pool purge
--config``) take the same lock, so they refuse to run under a live daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path

from fluidedge.core.errors import CoreError
from fluidedge.errors import ConflictError

LOCK_NAME = "fluidedge.lock"


class StateDirLocked(CoreError, ConflictError):
    """Another process owns the state directory."""


class StateLock:
    """The exclusive lock of a state directory (a context manager, or acquire/release)."""

    def __init__(self, state_dir: Path, role: str = "serve") -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self.role = role
        self._fd: int | None = None

    def owner(self) -> str:
        """Who holds the lock, as the lock file says (best effort)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "pid unknown"
        return f"pid {info.get('pid', '?')}, {info.get('role', '?')} since {info.get('since', '?')}"

    def acquire(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirLocked(
                f"state_dir {self.state_dir} is in use by another fluidedge process "
                f"({self.owner()}); stop it first (lock file {self.path})"
            ) from None
        except OSError:
            os.close(fd)
            raise
        info = {
            "pid": os.getpid(),
            "role": self.role,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
