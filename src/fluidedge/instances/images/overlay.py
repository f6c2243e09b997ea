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

**Scratch** (a shell's ``/tmp`` and ``/dev/shm``): directories of the shell in *one* tmpfs per
daemon (``<roots>/.scratch``, mounted on first use, unmounted when its last shell goes), bound
into the container, instead of a tmpfs per directory per shell. Every superblock costs every
memory cgroup on the host a slot in its shrinker map, so a filesystem per instance costs
kernel memory in the square of the count (docs/instances.md, "Density: what 10,000 costs the
kernel"); a bind has no superblock. What a tenant writes there is charged to its own memory
cgroup (tmpfs pages and inodes go to the writer's), so ``memory.max`` bounds it as the
per-instance tmpfs sizes did; the tmpfs itself has no size or inode limit a tenant could
exhaust for the others (``size=0``, ``nr_inodes=0``: the memory cgroups are the limit).

**``/dev``**: one read-only skeleton per daemon in a small tmpfs of its own (``<roots>/.dev``:
the device nodes a container gets, made here by host root, the runtimes' symlinks, and the
mount points of ``/dev/pts``, ``/dev/shm`` and ``/dev/mqueue``), bound read-only into every
container, instead of a ``/dev`` tmpfs per instance that the runtime fills. A ``/dev`` bind
tells runc and crun the container's ``/dev`` is provided (they create no nodes in it). One
superblock fewer per instance; the nodes are the daemon's own, not the host's ``/dev`` inodes
(a tenant without a user namespace could otherwise chmod the host's ``/dev/null``), and a
read-only mount stops any change to them. Its own tmpfs because the skeleton cannot be
``nodev`` and the scratch must be: a bind inherits its source mount's ``nodev`` whatever the
runtime does with the bind's options (under crun the bind's own ``nodev`` did not take), so
a node a tenant makes in ``/tmp`` never opens.

**The daemon's namespace holds no instance's root.** Every ``runc create`` / ``crun create``
starts its container in a new mount namespace, which the kernel makes as a copy of the
daemon's, every mount in it (``copy_mnt_ns``); the runtime then pivots into the rootfs and
drops the copied tree. With each instance's overlay left mounted in the daemon's namespace,
the N-th creation copied and dropped N mounts: the refill's CPU per shell grew with the
count, and faster than linearly (``bench/mountns_copy.py``: 4.4 ms for a namespace of 23
mounts, 40.6 ms for one of 10,023, on this host). Once the shell's container runs (its
launcher started), :func:`release` detaches the merged root from the daemon's namespace: the
container's ``/`` is its own mount of the same overlay (the runtime's bind), which keeps the
superblock alive until the container's namespace goes. The daemon's namespace then holds the
scratch and ``/dev`` tmpfs and the roots of the shells being built, whatever the count.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import NamedTuple

from fluidedge.linux import libc

ROOTS = Path("/run/fluidedge-roots")
SCRATCH = ".scratch"  # the daemon's scratch tmpfs, in its roots directory
DEV = ".dev"  # the /dev skeleton's tmpfs, in the roots directory (no shell id starts with a dot)
# The nodes every container gets (the OCI runtime spec's default devices), char major/minor.
DEV_NODES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)
DEV_MOUNT_POINTS = ("pts", "shm", "mqueue")
MS_NOSUID, MS_NODEV = 2, 4
_scratch_lock = threading.Lock()  # a shell's scratch is never made in a tmpfs being unmounted
_BAD = (",", ":", "\\", "\0")


class OverlayError(OSError):
    """A mount or unmount failed (errno and text say why)."""


class Scratch(NamedTuple):
    """What a shell binds from the scratch tmpfs: its own ``/tmp`` and ``/dev/shm``, and the
    daemon's shared read-only ``/dev`` skeleton."""

    tmp: Path
    shm: Path
    dev: Path


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
    try:
        libc.mount(b"overlay", bytes(merged), b"overlay", 0, options.encode())
    except OSError as exc:
        raise OverlayError(exc.errno, f"overlay mount at {merged}: {exc.strerror}") from exc
    return merged


def _mount_tmpfs(path: Path, source: bytes, flags: int, options: bytes) -> None:
    """Mount a tmpfs (root only: mode 0700) at ``path``, made if missing."""
    path.mkdir(mode=0o700, exist_ok=True)
    try:
        libc.mount(source, bytes(path), b"tmpfs", flags, b"mode=0700," + options)
    except OSError as exc:
        what = f"tmpfs {source.decode()} at {path}"
        raise OverlayError(exc.errno, f"{what}: {exc.strerror}") from exc


def _detach_tmpfs(path: Path) -> None:
    """Lazily unmount the tmpfs at ``path`` and remove its mount point (a failure leaves it)."""
    with contextlib.suppress(OSError):  # still mounted: the directory stays too
        libc.umount2(bytes(path), libc.MNT_DETACH)
        path.rmdir()


def dev_skeleton(dev: Path) -> None:
    """Make the shared ``/dev`` (see the module docstring): nodes 0666 root's, the symlinks
    the runtimes would make, empty mount points; built under a temporary name and renamed, so
    a half-made skeleton is never bound."""
    partial = dev.with_name(dev.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o755)
    os.chmod(partial, 0o755)  # noqa: S103 (every container's /dev, read-only)
    for name, major, minor in DEV_NODES:
        os.mknod(partial / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(partial / name, 0o666)  # noqa: S103 (what /dev/null and its kin are)
    for name, target in DEV_LINKS:
        os.symlink(target, partial / name)
    for name in DEV_MOUNT_POINTS:
        (partial / name).mkdir(mode=0o755)
    os.rename(partial, dev)


def scratch(merged_parent: Path, owner: tuple[int, int]) -> Scratch:
    """The shell's ``/tmp`` and ``/dev/shm`` (its root's, mode 1777) in the daemon's scratch
    tmpfs, mounted here (with the ``/dev`` skeleton) if it is not (see the module
    docstring)."""
    roots = merged_parent.parent
    shared = roots / SCRATCH
    with _scratch_lock:
        if not os.path.ismount(shared):
            _traversable(roots.parent)
            _traversable(roots)
            _mount_tmpfs(shared, b"fe-scratch", MS_NOSUID | MS_NODEV, b"size=0,nr_inodes=0")
        devfs = roots / DEV
        if not os.path.ismount(devfs):
            _mount_tmpfs(devfs, b"fe-dev", MS_NOSUID, b"size=64k,nr_inodes=64")
        dev = devfs / "dev"
        if not dev.is_dir():
            dev_skeleton(dev)
        own = shared / merged_parent.name
        own.mkdir(mode=0o700)
        tmp, shm = own / "tmp", own / "shm"
        for path in (tmp, shm):
            path.mkdir()
            os.chown(path, *owner)
            os.chmod(path, 0o1777)  # noqa: S103 (the instance's own /tmp and /dev/shm)
    return Scratch(tmp, shm, dev)


def _drop_scratch(roots: Path, shell_id: str) -> None:
    """Remove the shell's scratch; unmount the scratch tmpfs once no shell has any."""
    shared = roots / SCRATCH
    with _scratch_lock:
        shutil.rmtree(shared / shell_id, ignore_errors=True)
        if not os.path.ismount(shared):
            return
        with os.scandir(shared) as entries:
            if next(entries, None) is not None:
                return
        # A failure leaves the tmpfs mounted and empty: the next shell reuses it.
        _detach_tmpfs(shared)
        devfs = roots / DEV  # the skeleton goes with the scratch
        if os.path.ismount(devfs):
            _detach_tmpfs(devfs)


def release(merged_parent: Path) -> None:
    """Detach the shell's merged root from the daemon's mount namespace once its container
    holds it (see the module docstring, "The daemon's namespace"): the overlay stays mounted
    as the container's ``/`` and goes with the container's namespace; the directories stay
    for :func:`unmount`."""
    merged = merged_parent / "rootfs"
    try:
        libc.umount2(bytes(merged), libc.MNT_DETACH)
    except OSError as exc:
        raise OverlayError(exc.errno, f"overlay release {merged}: {exc.strerror}") from exc


def unmount(merged_parent: Path) -> None:
    """Detach the shell's merged root (if mounted), remove its directory and its scratch."""
    if os.path.ismount(merged_parent / "rootfs"):  # a failed build, an older daemon's shell
        release(merged_parent)
    shutil.rmtree(merged_parent, ignore_errors=True)
    _drop_scratch(merged_parent.parent, merged_parent.name)
    with contextlib.suppress(OSError):
        merged_parent.parent.rmdir()  # the daemon's roots directory, once it is empty
