"""The state directory: created 0700, checked writable at start, its files kept 0600.

Everything the daemon writes there may carry request data (the store holds templates with
their env and files, the token authorises mutations, the audit log names objects), so the
directory is private to the daemon's user and so are its files. A state directory that cannot
be written (a read-only mount, a wrong owner) stops the start with one clear sentence naming
the directory and the cause, before anything else is opened.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from fluidedge.core.config import DaemonConfig
from fluidedge.daemon.errors import StateDirError

# sockaddr_un.sun_path is 108 bytes, NUL included.
MAX_SOCKET_PATH = 107


def prepare(config: DaemonConfig) -> None:
    """Create ``state_dir`` (0700) and check that it and the store's directory are writable."""
    directories = [config.state_dir]
    if config.store_path.parent != config.state_dir:
        directories.append(config.store_path.parent)
    for directory in directories:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            raise StateDirError(
                f"state directory {directory} is not usable: {exc.strerror} "
                f"(the daemon keeps its store, token, socket and audit log there: make it "
                f"writable by this user, or set state_dir to another directory)"
            ) from exc
    os.chmod(config.state_dir, 0o700)
    socket_path = config.socket_path
    if socket_path is not None and len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        raise StateDirError(
            f"api.socket: {socket_path} is longer than {MAX_SOCKET_PATH} bytes, the limit of "
            "a Unix socket path: give an absolute shorter api.socket, or '' for none"
        )


def private_files(config: DaemonConfig) -> None:
    """Make the daemon's files 0600: every file directly under state_dir (store, its WAL and
    shm, which later inherit its mode, token, lock, audit log...), and the store and token
    wherever they are configured. Sub-directories belong to their parts."""
    store = config.store_path
    paths: list[Path] = [store, Path(f"{store}-wal"), Path(f"{store}-shm")]
    if config.api.token_file is not None:
        paths.append(config.api.token_file)
    with os.scandir(config.state_dir) as entries:
        paths += [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)
