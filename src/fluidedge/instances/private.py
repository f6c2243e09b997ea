"""Private state on disk: directories 0700, files 0600, whatever the umask.

Instances are hostile tenants of each other, and an assignment holds the workload's whole
environment (tokens, keys a tenant passes in ``env``): the state directory, every shell's
directory and every file the manager writes there are readable by root only. Inside the
container the workload's own root (uid 0 without capabilities, the owner) still reads its
``/.fe``.
"""

from __future__ import annotations

import os
from pathlib import Path

from fluidedge.instances.errors import RuntimeFailure


def private_dir(path: Path, *, parents: bool = False) -> Path:
    """Create ``path`` (mode 0700) or tighten an existing one to 0700."""
    path.mkdir(mode=0o700, parents=parents, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def empty_dir(path: Path) -> Path:
    """Create ``path`` as an empty, read-only directory (0555), or check an existing one is
    still empty: what it masks inside an instance must show nothing."""
    path.mkdir(mode=0o555, exist_ok=True)
    os.chmod(path, 0o555)  # noqa: S103 (empty: nothing to read, nothing to write)
    if any(path.iterdir()):
        raise RuntimeFailure(f"{path} must be empty: it is bound over masked directories")
    return path


def write_private(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """Write ``data`` to ``path`` as a 0600 file (created so, never world-readable in between),
    owned by ``owner`` (uid, gid) when given."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
