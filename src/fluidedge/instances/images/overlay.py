"""Per-shell overlay roots: the image's unpacked root as the read-only lower layer, a private
upper. Why overlayfs: one copy of each image on disk and in the page cache however many shells
run it, and a shell costs one mount (~tens of µs) instead of a copy.

The upper and work directories live in the shell's private directory (0700, root): overlayfs
reaches them and the lower layer with the credentials of whoever mounted it (us, host root), so
the store stays 0700. The *merged* mount point is what runc opens as the container's root, and
with a user namespace runc opens it as container root, an unprivileged host uid: it lives under
:data:`ROOTS` (``/run``), on a path whose directories are 0711 (traverse, not list) down to a
per-shell directory 0710 owned by root and the shell's own gid, as Docker does for userns-remap.
The merged root directory takes the upper's owner and mode (container root, 0755).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import shutil
from pathlib import Path

ROOTS = Path("/run/fluidedge-roots")
MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_BAD = (",", ":", "\\", "\0")


class OverlayError(OSError):
    """A mount or unmount failed (errno and text say why)."""


def roots_dir(state_dir: Path) -> Path:
    """The per-daemon directory of merged roots (a state dir's own, so daemons never mix)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return ROOTS / digest


def _traversable(path: Path) -> None:
    path.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(path, 0o711)  # noqa: S103 (traverse only, see docstring)


def mount(lower: Path, shell_dir: Path, merged_parent: Path, owner: tuple[int, int]) -> Path:
    """Mount ``lower`` + a fresh upper in ``shell_dir`` at ``merged_parent/rootfs``."""
    upper, work = shell_dir / "upper", shell_dir / "work"
    for path in (lower, upper, work):
        if any(ch in str(path) for ch in _BAD):
            raise OverlayError(0, f"overlay: unusable path {path!s}")
    upper.mkdir(mode=0o755)
    os.chown(upper, *owner)
    os.chmod(upper, 0o755)  # noqa: S103 (the instance's own /)
    work.mkdir(mode=0o700)
    _traversable(merged_parent.parent.parent)
    _traversable(merged_parent.parent)
    merged_parent.mkdir(mode=0o710)
    os.chown(merged_parent, 0, owner[1])
    os.chmod(merged_parent, 0o710)  # noqa: S103 (its gid only)
    merged = merged_parent / "rootfs"
    merged.mkdir(mode=0o755)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if _libc.mount(b"overlay", bytes(merged), b"overlay", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OverlayError(err, f"overlay mount at {merged}: {os.strerror(err)}")
    return merged


def unmount(merged_parent: Path) -> None:
    """Detach the shell's merged root (if mounted) and remove its directory."""
    merged = merged_parent / "rootfs"
    if os.path.ismount(merged) and _libc.umount2(bytes(merged), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OverlayError(err, f"overlay unmount {merged}: {os.strerror(err)}")
    shutil.rmtree(merged_parent, ignore_errors=True)
    with contextlib.suppress(OSError):
        merged_parent.parent.rmdir()  # the daemon's roots directory, once it is empty
