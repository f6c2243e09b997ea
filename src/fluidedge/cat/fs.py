"""The seam between the CAT manager and the kernel's resctrl filesystem.

resctrl is a pseudo-filesystem whose *behaviour* lives in the kernel: writing ``schemata``
validates and may fail with ``EINVAL`` (the reason then sits in ``info/last_cmd_status``),
``mkdir`` allocates a CLOSID and fails with ``ENOSPC`` when none is left, writing a pid to
``tasks`` moves that task. The manager needs only five operations, named by :class:`ResctrlFS`;
:class:`RealResctrlFS` does them as plain file I/O under a mount point (the configured
``mount``, ``/sys/fs/resctrl`` by default). The tests put a kernel emulation behind the same
protocol (it subclasses :class:`RealResctrlFS`, so its reads are this class's file I/O), and a
test runs this class against the host's real mount when there is one.

:func:`probe` says whether the host can do CAT at all, listing what it checked, so the API's
"not supported" answer can say why.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fluidedge.cat.errors import CatConflict, CatInputError, CatUnprocessable, KernelFailure
from fluidedge.cat.layout import (
    CACHE_RESOURCES,
    CacheInfo,
    HostInfo,
    MbaInfo,
    MonInfo,
    parse_schemata,
)

DEFAULT_MOUNT = Path("/sys/fs/resctrl")
LAST_CMD_STATUS = "info/last_cmd_status"


class ResctrlFS(Protocol):
    """What the manager needs from resctrl; paths are relative to the mount point."""

    root: Path

    def read(self, rel: str) -> str: ...

    def write(self, rel: str, text: str) -> None:
        """One ``write(2)`` of ``text``; raises :class:`OSError` with the kernel's errno."""

    def mkdir(self, rel: str) -> None: ...

    def rmdir(self, rel: str) -> None: ...

    def listdir(self, rel: str) -> list[str]: ...

    def exists(self, rel: str) -> bool: ...


class RealResctrlFS:
    """resctrl through plain file I/O under ``root``."""

    def __init__(self, root: Path = DEFAULT_MOUNT) -> None:
        self.root = Path(root)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        return self._path(rel).read_text()

    def write(self, rel: str, text: str) -> None:
        # One write(2) of the whole text: the kernel parses each write as a unit.
        fd = os.open(self._path(rel), os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def mkdir(self, rel: str) -> None:
        os.mkdir(self._path(rel))

    def rmdir(self, rel: str) -> None:
        os.rmdir(self._path(rel))

    def listdir(self, rel: str) -> list[str]:
        return sorted(os.listdir(self._path(rel)))

    def exists(self, rel: str) -> bool:
        return self._path(rel).exists()


def kernel_error(fs: ResctrlFS, what: str, exc: OSError) -> Exception:
    """Map a failed resctrl call to a fluidedge error carrying ``last_cmd_status``.

    EINVAL (and ERANGE, a CPU beyond the kernel's) is the kernel refusing a value our checks
    let through, ESRCH a task that does not exist (any more): requests well-formed but not for
    this host as it is now, 422. ENOSPC running out of CLOSIDs or RMIDs and EBUSY/EEXIST a
    clash with existing state (409); anything else a failure underneath (500).
    """
    try:
        status = fs.read(LAST_CMD_STATUS).strip()
    except OSError:
        status = "?"
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    message = f"{what}: {name} ({exc.strerror}); last_cmd_status: {status}"
    if exc.errno in (errno.EINVAL, errno.ERANGE, errno.ESRCH):
        return CatUnprocessable(message)
    if exc.errno in (errno.ENOSPC, errno.EBUSY, errno.EEXIST, errno.ENOTEMPTY):
        return CatConflict(message)
    return KernelFailure(message)


def _int(fs: ResctrlFS, rel: str, default: int = 0, base: int = 10) -> int:
    try:
        return int(fs.read(rel).strip() or "0", base)
    except (OSError, ValueError):
        return default


def _domains(fs: ResctrlFS, resource: str) -> tuple[int, ...]:
    try:
        schemata = parse_schemata(fs.read("schemata"))
    except (OSError, CatInputError):
        return ()
    return tuple(sorted(schemata.get(resource, {})))


def read_host(fs: ResctrlFS) -> HostInfo:
    """The host's capabilities from ``info/`` (and cache ids from the root ``schemata``)."""
    caches = {}
    for resource in CACHE_RESOURCES:
        base = f"info/{resource}"
        if not fs.exists(f"{base}/cbm_mask"):
            continue
        caches[resource] = CacheInfo(
            resource=resource,
            cbm_mask=_int(fs, f"{base}/cbm_mask", base=16),
            min_cbm_bits=_int(fs, f"{base}/min_cbm_bits", 1),
            num_closids=_int(fs, f"{base}/num_closids", 1),
            shareable_bits=_int(fs, f"{base}/shareable_bits", base=16),
            domains=_domains(fs, resource),
            sparse_masks=_int(fs, f"{base}/sparse_masks") == 1,
        )
    mba = None
    if fs.exists("info/MB/min_bandwidth"):
        mba = MbaInfo(
            min_bandwidth=_int(fs, "info/MB/min_bandwidth", 10),
            bandwidth_gran=max(1, _int(fs, "info/MB/bandwidth_gran", 10)),
            num_closids=_int(fs, "info/MB/num_closids", 1),
            domains=_domains(fs, "MB"),
        )
    mon = None
    if fs.exists("info/L3_MON/mon_features"):
        features = tuple(fs.read("info/L3_MON/mon_features").split())
        mon = MonInfo(features=features, num_rmids=_int(fs, "info/L3_MON/num_rmids", 0))
    return HostInfo(caches=caches, mba=mba, mon=mon)


@dataclass(frozen=True)
class Support:
    """Whether CAT is usable here, and the checks behind the answer."""

    supported: bool
    checks: tuple[str, ...]

    @property
    def reason(self) -> str:
        verdict = "supported" if self.supported else "not supported on this host: no RDT"
        return f"{verdict} (checked: {'; '.join(self.checks)})"


def probe(fs: ResctrlFS, proc: Path = Path("/proc")) -> Support:
    """Check the mount, then (for the message) what the kernel and the CPU say."""
    checks = []
    mounted = fs.exists("info") and fs.exists("schemata")
    checks.append(f"{fs.root}/info and {fs.root}/schemata: {'present' if mounted else 'absent'}")
    try:
        filesystems = (proc / "filesystems").read_text()
        has_fs = any(line.split()[-1] == "resctrl" for line in filesystems.splitlines() if line)
        checks.append(f"{proc}/filesystems lists resctrl: {'yes' if has_fs else 'no'}")
    except OSError as exc:
        checks.append(f"{proc}/filesystems: unreadable ({exc.strerror})")
    try:
        flags: set[str] = set()
        for line in (proc / "cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
                break
        wanted = ("rdt_a", "cat_l3", "cat_l2", "cqm_llc", "mba")
        present = [f for f in wanted if f in flags]
        checks.append(
            f"{proc}/cpuinfo RDT flags ({', '.join(wanted)}): {', '.join(present) or 'none'}"
        )
    except OSError as exc:
        checks.append(f"{proc}/cpuinfo: unreadable ({exc.strerror})")
    if mounted:
        host = read_host(fs)
        if not host.caches and host.mba is None:
            checks.append("info/ has no L3, L2 or MB resource (monitoring only)")
            return Support(False, tuple(checks))
    return Support(mounted, tuple(checks))
