"""The cgroup adapter: one interface, a cgroup-v1 (and hybrid) and a cgroup-v2 implementation.

Why an adapter: the execute phase writes per-request limits, pause/resume freeze the
instance, delete kills it and removes its cgroups, and re-adoption reads the freezer; those are
file operations on the cgroup filesystem (cheaper than the runc binary), and they differ by
hierarchy:

========================  ===================================  ==================================
operation                 v1 / hybrid (one dir per controller)  v2 (unified, one dir)
========================  ===================================  ==================================
CPUs                      ``cpuset/…/cpuset.cpus``              ``cpuset.cpus``
CPU weight                ``cpu/…/cpu.shares``                  ``cpu.weight`` (runc's conversion)
CPU cap                   ``cpu.cfs_quota_us`` + ``_period_us``  ``cpu.max`` ("quota period")
memory                    ``memory.limit_in_bytes`` (+memsw)    ``memory.max`` (swap.max stays 0)
pids                      ``pids/…/pids.max``                   ``pids.max``
pause / resume            ``freezer.state`` FROZEN/THAWED       ``cgroup.freeze`` 1/0, confirmed
                                                                by ``frozen 1/0`` in
                                                                ``cgroup.events``
kill everything           SIGKILL each pid of ``cgroup.procs``  ``cgroup.kill``
idle class (start)        ``cpu/…/cpu.idle`` 1/0                ``cpu.idle`` 1/0
========================  ===================================  ==================================

The mode is detected from the mount at ``/sys/fs/cgroup`` (cgroup2 there = unified v2; a tmpfs
of v1 hierarchies = v1, "hybrid" when a cgroup2 mount without controllers sits beside them) and
can be forced in the config. Instances live under one *parent* path, the same in every
hierarchy: ``/fluidedge`` by default, created at the root, with or without systemd (or in a
container with its own cgroup namespace). Not below the daemon's unit: systemd puts every
process of a (re)start of the unit, ``ExecStartPre`` included, into the unit's own cgroup,
and cgroup v2 refuses a process in a cgroup whose children use controllers (no internal
processes). With the instances below the unit, ``systemctl restart fluidedge`` failed
(``status=219/CGROUP``) while any instance ran, found in the VM tier's systemd payload;
systemd 254's ``DelegateSubgroup=`` would lift that, Debian 12 has 252. So under systemd the
daemon stays in its unit's cgroup, which holds no child cgroups, and leaves the instances'
parent alone (a ``cgroup_parent`` below the unit may still be configured: the daemon then
moves itself into ``<parent>/daemon``, and restarts of its unit need ``DelegateSubgroup=``).
runc is given the same path as ``cgroupsPath`` (cgroupfs driver).

*Idle start.* The daemon also moves itself into ``<parent>/daemon`` (on v1, in the ``cpu``
hierarchy; on v2 only when it runs outside a systemd unit), beside the instances' cgroups, so
that a pooled shell's cgroup can be put in the idle class (``cpu.idle``, Linux 5.15+) until the
API has answered for it. Why: the launcher's ``execve`` wakes the daemon thread waiting for it
with a *sync* wake-up, which the scheduler places on the launcher's own CPU; the workload's
start-up (≈0.9 ms of busybox here) then ran before the daemon could answer (``perf sched
timehist``: 0.88 ms of scheduling delay in a 0.95 ms ``ready`` phase). An idle-class entity is
preempted at once by a normal one *of the same parent*, hence the sibling leaf; a few
microseconds after the answer is out the cgroup leaves the idle class
(:meth:`Cgroups.set_cpu_idle`). Without ``cpu.idle`` or when the move is refused, instances
simply start in the normal class (``idle_start`` false in ``/stats``). The daemon's leaf has
the highest CPU weight (:data:`DAEMON_WEIGHT`): beside N instances it would otherwise get
1/(N+1) of their parent's CPU when they saturate the host.

*v1 cpusets out of the scheduler's domain rebuilds.* On v1 a cpuset with
``cpuset.sched_load_balance`` 1 (every new one) makes the kernel rebuild the scheduling
domains whenever its CPUs change and when it is removed; a rebuild walks *every* cpuset on the
host (``update_domain_attr_tree``, ``dl_rebuild_rd_accounting``), so with N instances each
``runc create`` of the refill, each claim placed on other CPUs than its shell's and each
delete cost O(N) in the kernel: a ``cpuset.cpus`` write took 0.78 ms beside 2,360 instances
against 0.07 ms without the flag, and creations slowed from 1.9 to 12 ms of server time
between the first and the last thousand of 10,000 (bench/cpuset_rebuild.py, docs/instances.md,
"Density"). When the root cpuset balances load (the default), the scheduler has one domain for
all CPUs and the flag of any other cpuset does not matter to it (the kernel's cpusets
documentation, 1.7): :meth:`CgroupsV1.before_create` then makes the container's cpuset with
the flag 0, before the runtime writes its CPUs, so that none of those writes, nor its removal,
rebuilds anything. v2 rebuilds the domains for partition roots only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, Literal, Protocol

from fluidedge.instances.bundle import CFS_PERIOD_US, cpu_quota_us, cpu_shares
from fluidedge.instances.errors import FreezerBusy, RuntimeFailure
from fluidedge.linux import heldcalls

CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_PARENT = "/fluidedge"
# How long a freeze or thaw waits for the kernel to settle before giving up.
FREEZER_TIMEOUT = 2.0
# v1: an empty cgroup kept frozen under the parent (see CgroupsV1._anchor_freezer).
FREEZER_ANCHOR = "fluidedge-freezer-anchor"
# The daemon's own leaf under the parent, beside the instances (see "Idle start" above).
DAEMON_LEAF = "daemon"
# Controllers instances need on v2 (io, hugetlb... are used when present, not required).
V2_REQUIRED = ("cpuset", "cpu", "memory", "pids")

Mode = Literal["v1", "v2"]


class Cgroups(Protocol):
    """What the manager does to an instance's cgroups (v1 and v2 implement it)."""

    mode: Mode
    kind: str  # "v1", "hybrid" or "v2": what was found, for /stats and the logs
    parent: str
    # Set by prepare(): the kernel has cpu.idle; the daemon sits beside the instances too.
    has_cpu_idle: bool
    idle_start: bool
    idle_start_why: str

    def runc_path(self, container_id: str) -> str:
        """The OCI ``linux.cgroupsPath`` (cgroupfs driver) of a container."""

    def prepare(self) -> None:
        """Make the parent usable (v2: delegation checks, controllers enabled)."""

    def before_create(self, container_id: str) -> None:
        """What the container's cgroup needs before the runtime creates it (v1: its cpuset out
        of the domain rebuilds, see the module docstring). Best effort: never fails."""

    def set_cpus(self, container_id: str, cpuset: str) -> None: ...

    def set_cpu_weight(self, container_id: str, cpus: float) -> None: ...

    def set_cpu_limit(self, container_id: str, cpu_limit: float | None) -> None: ...

    def set_memory(self, container_id: str, memory_mb: int, *, lowering: bool) -> None: ...

    def set_pids(self, container_id: str, pids: int) -> None: ...

    def set_cpu_idle(self, container_id: str, idle: bool) -> None:
        """Put the container's cgroup in (or take it out of) the idle scheduling class."""

    def cpu_idle(self, container_id: str) -> bool: ...

    def freeze(self, container_id: str, *, timeout: float = FREEZER_TIMEOUT) -> None: ...

    def thaw(self, container_id: str, *, timeout: float = FREEZER_TIMEOUT) -> None: ...

    def frozen(self, container_id: str) -> bool: ...

    def thawer(self, container_id: str) -> Thawer:
        """A thaw prepared in advance, for a packet path (see :class:`Thawer`)."""

    def kill(self, container_id: str) -> None:
        """SIGKILL every task of the container's cgroup (last-resort cleanup)."""

    def leftover(self, container_id: str) -> list[Path]:
        """The container's cgroup directories that still exist."""

    def remove(self, container_id: str, *, timeout: float = 2.0) -> None:
        """Remove the container's cgroup directories, retrying while the kernel says EBUSY."""

    # Readings (tests, benchmarks, re-adoption): one name per fact, whatever the hierarchy.
    def cpus(self, container_id: str) -> str: ...

    def memory_limit(self, container_id: str) -> int: ...

    def memory_usage(self, container_id: str) -> int: ...

    def pids_current(self, container_id: str) -> int: ...

    def procs(self, container_id: str) -> list[int]:
        """The pids in the container's cgroup (empty when it is gone)."""

    def pids_limit_hits(self, container_id: str) -> int: ...

    def oom_kills(self, container_id: str) -> int: ...

    def describe(self) -> dict[str, Any]:
        """Mode, parent, controllers: what ``/v1/stats`` and the start-up log say."""


class Thawer:
    """Thaw one frozen cgroup with one write on a descriptor opened in advance (at the pause),
    and one read that confirms it: no path to resolve, no file to open or close on the packet
    path that resumes an instance (docs/superfluid.md).

    The write is synchronous in the kernel: v1's freezer thaws every task before the write
    returns; v2's unfreeze wakes them and reports ``frozen 0`` in ``cgroup.events`` at once.
    The read only catches what the write cannot undo (a v1 parent cgroup frozen by someone
    else): then :meth:`thaw` says False and the caller takes its slow path. Not thread-safe:
    one user, who closes it.
    """

    def __init__(self, control: Path, value: bytes, status: Path, thawed: bytes) -> None:
        self._value = value
        self._thawed = thawed
        self._control = os.open(control, os.O_RDWR if control == status else os.O_WRONLY)
        try:
            self._status = self._control if control == status else os.open(status, os.O_RDONLY)
        except OSError:
            os.close(self._control)
            raise

    def thaw(self) -> bool:
        """Thaw now; True once the kernel says thawed (False, or OSError: not thawed).

        Both calls keep the GIL (:mod:`fluidedge.linux.heldcalls`): they take microseconds and
        run on the packet path, where releasing the GIL would let another daemon thread
        delay the packet by up to the interpreter's switch interval."""
        heldcalls.pwrite(self._control, self._value, 0)
        return self._thawed in heldcalls.pread(self._status, 256, 0)

    def close(self) -> None:
        if self._status != self._control:
            os.close(self._status)
        os.close(self._control)


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise RuntimeFailure(f"cgroup write {path}={value!r}: {exc.strerror}") from exc


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise RuntimeFailure(f"cgroup read {path}: {exc.strerror}") from exc


def _keyed(text: str) -> dict[str, str]:
    """``key value`` lines (``*.events``, ``memory.oom_control``, ``cgroup.events``)."""
    return dict(line.split(None, 1) for line in text.splitlines() if " " in line)


def _pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _rmdir_retry(paths: list[Path], timeout: float) -> None:
    """rmdir, retrying on EBUSY: a killed task keeps its cgroup busy until it is reaped."""
    deadline = time.monotonic() + timeout
    while True:
        for path in paths:
            with contextlib.suppress(OSError):
                path.rmdir()
        paths = [p for p in paths if p.exists()]
        if not paths or time.monotonic() > deadline:
            return
        time.sleep(0.01)


# The daemon's leaf weighs as much as a cgroup may (v1 ``cpu.shares``, v2 ``cpu.weight``): it
# carries the node's control plane and the TOF's userspace data plane, and beside the instances
# it must not get only its 1/(N+1) part of their CPU when tenants saturate the host.
DAEMON_WEIGHT = {"cpu.shares": "262144", "cpu.weight": "10000"}


def settle_beside(parent_dir: Path, weight_knob: str) -> tuple[bool, bool, str]:
    """Move this process into ``<parent_dir>/daemon``, beside the instances' cgroups, for the
    idle start (see the module docstring), its weight the highest first (``weight_knob``:
    ``cpu.shares`` or ``cpu.weight``): (whether the kernel has ``cpu.idle``, whether instances
    may start idle, why not)."""
    if not (parent_dir / "cpu.idle").exists():
        return False, False, "this kernel has no cpu.idle (Linux 5.15+)"
    leaf = parent_dir / DAEMON_LEAF
    try:
        leaf.mkdir(exist_ok=True)
        _write(leaf / weight_knob, DAEMON_WEIGHT[weight_knob])
        _write(leaf / "cgroup.procs", str(os.getpid()))
    except (OSError, RuntimeFailure) as exc:
        return True, False, f"cannot move the daemon into {leaf}: {exc}"
    return True, True, ""


def cpu_weight(cpus: float) -> int:
    """cgroup v2 ``cpu.weight`` for a CPU request: runc's conversion of v1 shares (2..262144
    onto 1..10000), so a template means the same on both hierarchies."""
    shares = cpu_shares(cpus)
    return 1 + ((shares - 2) * 9999) // 262142


class CgroupsV1:
    """cgroup v1 (and hybrid): one directory per controller, ``<parent>/<id>`` in each."""

    mode: Mode = "v1"
    CONTROLLERS = (
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        "systemd",
        "unified",  # runc also makes a cgroup in the hybrid host's (controller-less) cgroup2
    )

    def __init__(self, parent: str = DEFAULT_PARENT, root: Path = CGROUP_ROOT, kind: str = "v1"):
        self.parent = "/" + parent.strip("/")
        self.root = root
        self.kind = kind
        self.has_cpu_idle = False
        self.idle_start = False
        self.idle_start_why = "not prepared"
        # prepare(): the root cpuset balances load, so an instance's cpuset need not.
        self.quiet_cpusets = False

    def runc_path(self, container_id: str) -> str:
        return f"{self.parent}/{container_id}"

    def dir(self, controller: str, container_id: str) -> Path:
        return self.root / controller / self.parent.lstrip("/") / container_id

    def prepare(self) -> None:
        missing = [c for c in ("cpuset", "cpu", "memory", "pids", "freezer") if not self._has(c)]
        if missing:
            raise RuntimeFailure(f"cgroup v1: controller(s) not mounted: {', '.join(missing)}")
        self._anchor_freezer()
        cpu_parent = self.root / "cpu" / self.parent.lstrip("/")
        try:
            cpu_parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"cgroup v1: cannot create {cpu_parent}: {exc.strerror}") from exc
        self.has_cpu_idle, self.idle_start, self.idle_start_why = settle_beside(
            cpu_parent, "cpu.shares"
        )
        root_flag = self.root / "cpuset" / "cpuset.sched_load_balance"
        try:
            self.quiet_cpusets = root_flag.read_text().strip() == "1"
            (self.root / "cpuset" / self.parent.lstrip("/")).mkdir(parents=True, exist_ok=True)
        except OSError:
            self.quiet_cpusets = False

    def before_create(self, container_id: str) -> None:
        """Make the container's cpuset with ``cpuset.sched_load_balance`` 0 while it has no
        CPU yet (so that the write itself rebuilds nothing), when the root cpuset balances
        load: see the module docstring. The runtime then finds it and fills it in."""
        if not self.quiet_cpusets:
            return
        cpuset = self.dir("cpuset", container_id)
        try:
            cpuset.mkdir(exist_ok=True)
            _write(cpuset / "cpuset.sched_load_balance", "0")
        except (OSError, RuntimeFailure):
            pass  # only the domain rebuilds back: never a reason to fail a shell

    def _anchor_freezer(self) -> None:
        """Keep one empty cgroup frozen for good (``<parent>/fluidedge-freezer-anchor``).

        WHY: the v1 freezer turns a kernel static key on when the host's first cgroup starts
        freezing and off when its last one thaws (``freezer_active``), and flipping a static
        key patches the kernel's text: IPIs to every CPU, under the CPU hotplug lock. On a VM
        whose other vCPU is busy that costs 0.1 ms typically and several ms at the tail, inside
        the write of ``THAWED`` that resumes an instance (bench/superfluid_trace.py: a thaw
        write took p50 132 us, p99 4 ms with no other frozen cgroup; 13 us, p99 89 us with this
        anchor). With one cgroup that never thaws, the key stays on and a freeze or thaw only
        walks the instance's own tasks. The anchor holds no task and costs nothing; it is
        shared by every daemon using the same parent, and left in place (like the parent).
        """
        anchor = self.root / "freezer" / self.parent.lstrip("/") / FREEZER_ANCHOR
        try:
            anchor.mkdir(parents=True, exist_ok=True)
            _write(anchor / "freezer.state", "FROZEN")
        except (OSError, RuntimeFailure):
            pass  # only slower resumes: never a reason to refuse to start

    def _has(self, controller: str) -> bool:
        return (self.root / controller / "cgroup.procs").exists()

    def set_cpus(self, container_id: str, cpuset: str) -> None:
        _write(self.dir("cpuset", container_id) / "cpuset.cpus", cpuset)

    def set_cpu_weight(self, container_id: str, cpus: float) -> None:
        _write(self.dir("cpu", container_id) / "cpu.shares", str(cpu_shares(cpus)))

    def set_cpu_limit(self, container_id: str, cpu_limit: float | None) -> None:
        quota = -1 if cpu_limit is None else cpu_quota_us(cpu_limit)
        _write(self.dir("cpu", container_id) / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        _write(self.dir("cpu", container_id) / "cpu.cfs_quota_us", str(quota))

    def set_memory(self, container_id: str, memory_mb: int, *, lowering: bool) -> None:
        # memsw (memory+swap) must stay >= memory: raise it first, lower it last.
        limit = str(memory_mb * 1024 * 1024)
        base = self.dir("memory", container_id)
        order = ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        if lowering:
            order.reverse()
        for knob in order:
            if knob.startswith("memory.memsw") and not (base / knob).exists():
                continue
            _write(base / knob, limit)

    def set_pids(self, container_id: str, pids: int) -> None:
        _write(self.dir("pids", container_id) / "pids.max", str(pids))

    def set_cpu_idle(self, container_id: str, idle: bool) -> None:
        _write(self.dir("cpu", container_id) / "cpu.idle", "1" if idle else "0")

    def cpu_idle(self, container_id: str) -> bool:
        return _read(self.dir("cpu", container_id) / "cpu.idle") == "1"

    def freeze(self, container_id: str, *, timeout: float = FREEZER_TIMEOUT) -> None:
        self._freezer_set(container_id, "FROZEN", timeout)

    def thaw(self, container_id: str, *, timeout: float = FREEZER_TIMEOUT) -> None:
        self._freezer_set(container_id, "THAWED", timeout)

    def frozen(self, container_id: str) -> bool:
        return _read(self.dir("freezer", container_id) / "freezer.state") == "FROZEN"

    def thawer(self, container_id: str) -> Thawer:
        path = self.dir("freezer", container_id) / "freezer.state"
        return Thawer(path, b"THAWED", path, b"THAWED")

    def _freezer_set(self, container_id: str, state: str, timeout: float) -> None:
        path = self.dir("freezer", container_id) / "freezer.state"
        deadline = time.monotonic() + timeout
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise RuntimeFailure(f"freezer {path}: {exc.strerror}") from exc
        try:
            while True:
                os.write(fd, state.encode())
                current = os.pread(fd, 64, 0).decode().strip()
                if current == state:
                    return
                if time.monotonic() > deadline:
                    raise FreezerBusy(
                        f"freezer {container_id}: stuck in {current} (wanted {state})"
                    )
                time.sleep(0.0002)
        except OSError as exc:
            raise RuntimeFailure(f"freezer {path}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def kill(self, container_id: str) -> None:
        if not self.dir("freezer", container_id).exists():
            return
        with contextlib.suppress(RuntimeFailure):
            self.thaw(container_id, timeout=0.5)  # a frozen task only dies once thawed
        _kill_all(self.procs(container_id))

    def procs(self, container_id: str) -> list[int]:
        return _pids(self.dir("pids", container_id) / "cgroup.procs")

    def leftover(self, container_id: str) -> list[Path]:
        return [
            self.dir(c, container_id)
            for c in self.CONTROLLERS
            if self.dir(c, container_id).exists()
        ]

    def remove(self, container_id: str, *, timeout: float = 2.0) -> None:
        _rmdir_retry(self.leftover(container_id), timeout)

    def cpus(self, container_id: str) -> str:
        return _read(self.dir("cpuset", container_id) / "cpuset.cpus")

    def memory_limit(self, container_id: str) -> int:
        return int(_read(self.dir("memory", container_id) / "memory.limit_in_bytes"))

    def memory_usage(self, container_id: str) -> int:
        return int(_read(self.dir("memory", container_id) / "memory.usage_in_bytes"))

    def pids_current(self, container_id: str) -> int:
        return int(_read(self.dir("pids", container_id) / "pids.current"))

    def pids_limit_hits(self, container_id: str) -> int:
        return int(_keyed(_read(self.dir("pids", container_id) / "pids.events")).get("max", 0))

    def oom_kills(self, container_id: str) -> int:
        text = _read(self.dir("memory", container_id) / "memory.oom_control")
        return int(_keyed(text).get("oom_kill", 0))

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.kind,
            "parent": self.parent,
            "controllers": [c for c in self.CONTROLLERS if self._has(c)],
            "freezer": "freezer.state",
            "quiet_cpusets": self.quiet_cpusets,
            "idle_start": self.idle_start,
            **({"idle_start_why": self.idle_start_why} if not self.idle_start else {}),
        }


class CgroupsV2:
    """cgroup v2 (unified): one directory ``<root><parent>/<id>`` with every controller."""

    mode: Mode = "v2"
    kind = "v2"

    def __init__(self, parent: str = DEFAULT_PARENT, root: Path = CGROUP_ROOT) -> None:
        self.parent = "/" + parent.strip("/")
        self.root = root
        self.moved_to: str | None = None  # where the daemon moved itself
        self.has_cpu_idle = False
        self.idle_start = False
        self.idle_start_why = "not prepared"

    def runc_path(self, container_id: str) -> str:
        return f"{self.parent}/{container_id}"

    def dir(self, container_id: str) -> Path:
        return self.root / self.parent.lstrip("/") / container_id

    @property
    def parent_dir(self) -> Path:
        return self.root / self.parent.lstrip("/")

    def prepare(self) -> None:
        """Create the parent and enable the controllers along the path from the root.

        Every ancestor must offer the controllers in ``cgroup.controllers`` (delegated to us)
        and may not hold processes itself once it enables them (no internal processes): when
        the daemon sits in an ancestor (a ``cgroup_parent`` configured below its unit) it
        first moves itself into the leaf ``<that>/daemon``, and at the end into
        ``<parent>/daemon``, beside the instances (the idle start). A daemon in a cgroup of
        its own beside the parent (a systemd unit's, the default there) stays in it.
        """
        own = own_cgroup_v2()
        parts = [p for p in self.parent.strip("/").split("/") if p]
        current = self.root
        for depth, name in enumerate(parts):
            rel = "/" + "/".join(parts[:depth])
            if rel.rstrip("/") == own.rstrip("/") and rel != "/":
                self._leave(current)
            available = _read(current / "cgroup.controllers").split()
            missing = [c for c in V2_REQUIRED if c not in available]
            if missing:
                raise RuntimeFailure(
                    f"cgroup v2: {current} does not offer {', '.join(missing)} (not delegated? "
                    "under systemd give the daemon's unit Delegate=yes, or set "
                    "[instances] cgroup_parent to a delegated subtree)"
                )
            self._enable(current, available)
            current = current / name
            try:
                current.mkdir(exist_ok=True)
            except OSError as exc:
                raise RuntimeFailure(f"cgroup v2: cannot create {current}: {exc.strerror}") from exc
        self._enable(current, _read(current / "cgroup.controllers").split())
        if in_own_unit(own, self.parent):
            self.has_cpu_idle = (current / "cpu.idle").exists()
            self.idle_start = False
            self.idle_start_why = (
                f"the daemon stays in its own cgroup {own} (a systemd unit's: systemd "
                "(re)starts the unit there)"
            )
            return
        self.has_cpu_idle, self.idle_start, self.idle_start_why = settle_beside(
            current, "cpu.weight"
        )
        if self.idle_start:
            self.moved_to = f"{self.parent.rstrip('/')}/{DAEMON_LEAF}"

    def before_create(self, container_id: str) -> None:
        """Nothing: v2 rebuilds scheduling domains for partition roots only."""

    def _enable(self, directory: Path, available: list[str]) -> None:
        enabled = _read(directory / "cgroup.subtree_control").split()
        wanted = [c for c in (*V2_REQUIRED, "io", "hugetlb") if c in available and c not in enabled]
        if wanted:
            _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))

    def _leave(self, directory: Path) -> None:
        """Move this process into ``<directory>/daemon`` (it must not stay in an inner node)."""
        leaf = directory / "daemon"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", str(os.getpid()))
        self.moved_to = "/" + str(leaf.relative_to(self.root))

    def set_cpus(self, container_id: str, cpuset: str) -> None:
        _write(self.dir(container_id) / "cpuset.cpus", cpuset)

    def set_cpu_weight(self, container_id: str, cpus: float) -> None:
        _write(self.dir(container_id) / "cpu.weight", str(cpu_weight(cpus)))

    def set_cpu_limit(self, container_id: str, cpu_limit: float | None) -> None:
        quota = "max" if cpu_limit is None else str(cpu_quota_us(cpu_limit))
        _write(self.dir(container_id) / "cpu.max", f"{quota} {CFS_PERIOD_US}")

    def set_memory(self, container_id: str, memory_mb: int, *, lowering: bool) -> None:
        del lowering  # memory.swap.max is separate on v2 (runc set it to 0): no ordering
        _write(self.dir(container_id) / "memory.max", str(memory_mb * 1024 * 1024))

    def set_pids(self, container_id: str, pids: int) -> None:
        _write(self.dir(container_id) / "pids.max", str(pids))

    def set_cpu_idle(self, container_id: str, idle: bool) -> None:
        _write(self.dir(container_id) / "cpu.idle", "1" if idle else "0")

    def cpu_idle(self, container_id: str) -> bool:
        return _read(self.dir(container_id) / "cpu.idle") == "1"

    def freeze(self, container_id: str, *, timeout: float = FREEZER_TIMEOUT) -> None:
        self._freeze_set(container_id, True, timeout)

    def thaw(self, container_id: str, *, timeout: float = FREEZER_TIMEOUT) -> None:
        self._freeze_set(container_id, False, timeout)

    def frozen(self, container_id: str) -> bool:
        return _keyed(_read(self.dir(container_id) / "cgroup.events")).get("frozen") == "1"

    def thawer(self, container_id: str) -> Thawer:
        base = self.dir(container_id)
        return Thawer(base / "cgroup.freeze", b"0", base / "cgroup.events", b"frozen 0")

    def _freeze_set(self, container_id: str, frozen: bool, timeout: float) -> None:
        """Write ``cgroup.freeze``, then read ``cgroup.events`` until ``frozen`` agrees (the
        write only asks: a freeze completes once every task has trapped, on its own CPU).
        Plain descriptors, no file objects (a third of the thaw's time under emulation); a
        poll on ``cgroup.events`` for its change notification was measured slower than these
        short sleeps (the kernel delivers it from a work queue)."""
        base = self.dir(container_id)
        want = b"frozen 1" if frozen else b"frozen 0"
        deadline = time.monotonic() + timeout
        try:
            control = os.open(base / "cgroup.freeze", os.O_WRONLY)
            try:
                os.write(control, want[-1:])
            finally:
                os.close(control)
            events = os.open(base / "cgroup.events", os.O_RDONLY)
        except OSError as exc:
            raise RuntimeFailure(f"freeze {base}: {exc.strerror}") from exc
        try:
            while want not in os.pread(events, 256, 0):
                if time.monotonic() > deadline:
                    state = "frozen" if frozen else "thawed"
                    raise FreezerBusy(f"freeze {container_id}: not {state} in {timeout} s")
                time.sleep(0.0002)
        except OSError as exc:
            raise RuntimeFailure(f"freeze {base}: {exc.strerror}") from exc
        finally:
            os.close(events)

    def kill(self, container_id: str) -> None:
        base = self.dir(container_id)
        if not base.exists():
            return
        if (base / "cgroup.kill").exists():  # Linux >= 5.14: atomic, frozen tasks included
            with contextlib.suppress(RuntimeFailure):
                _write(base / "cgroup.kill", "1")
            return
        with contextlib.suppress(RuntimeFailure):
            self.thaw(container_id, timeout=0.5)
        _kill_all(self.procs(container_id))

    def procs(self, container_id: str) -> list[int]:
        return _pids(self.dir(container_id) / "cgroup.procs")

    def leftover(self, container_id: str) -> list[Path]:
        return [self.dir(container_id)] if self.dir(container_id).exists() else []

    def remove(self, container_id: str, *, timeout: float = 2.0) -> None:
        _rmdir_retry(self.leftover(container_id), timeout)

    def cpus(self, container_id: str) -> str:
        return _read(self.dir(container_id) / "cpuset.cpus")

    def memory_limit(self, container_id: str) -> int:
        value = _read(self.dir(container_id) / "memory.max")
        return -1 if value == "max" else int(value)

    def memory_usage(self, container_id: str) -> int:
        return int(_read(self.dir(container_id) / "memory.current"))

    def pids_current(self, container_id: str) -> int:
        return int(_read(self.dir(container_id) / "pids.current"))

    def pids_limit_hits(self, container_id: str) -> int:
        return int(_keyed(_read(self.dir(container_id) / "pids.events")).get("max", 0))

    def oom_kills(self, container_id: str) -> int:
        return int(_keyed(_read(self.dir(container_id) / "memory.events")).get("oom_kill", 0))

    def describe(self) -> dict[str, Any]:
        controllers = []
        with contextlib.suppress(RuntimeFailure):
            controllers = _read(self.parent_dir / "cgroup.subtree_control").split()
        return {
            "mode": "v2",
            "parent": self.parent,
            "controllers": controllers,
            "freezer": "cgroup.freeze",
            "daemon_cgroup": self.moved_to or own_cgroup_v2(),
            "idle_start": self.idle_start,
            **({"idle_start_why": self.idle_start_why} if not self.idle_start else {}),
        }


def mount_kind(mountinfo: str) -> str:
    """``v2``, ``hybrid`` or ``v1`` from ``/proc/self/mountinfo`` (pure, unit-tested).

    v2: a cgroup2 file system mounted at ``/sys/fs/cgroup`` itself. Hybrid: v1 hierarchies
    with a cgroup2 mount beside them (``/sys/fs/cgroup/unified``). v1: v1 hierarchies only.
    """
    v1 = v2_beside = False
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, fstype = left.split(), right.split()[:1]
        if len(fields) < 5 or not fstype:
            continue
        point = fields[4]
        if fstype[0] == "cgroup2":
            if point == str(CGROUP_ROOT):
                return "v2"
            if point.startswith(str(CGROUP_ROOT) + "/"):
                v2_beside = True
        elif fstype[0] == "cgroup" and point.startswith(str(CGROUP_ROOT) + "/"):
            v1 = True
    if v1:
        return "hybrid" if v2_beside else "v1"
    raise RuntimeFailure(f"no cgroup file system mounted under {CGROUP_ROOT}")


def own_cgroup_v2(text: str | None = None) -> str:
    """This process's cgroup in the unified hierarchy (the ``0::`` line of /proc/self/cgroup)."""
    if text is None:
        try:
            text = Path("/proc/self/cgroup").read_text()
        except OSError:
            return "/"
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return "/"


def default_parent_v2(own: str) -> str:
    """Where instances go on v2 when the config does not say: ``/fluidedge`` at the root,
    whatever cgroup the daemon runs in (a systemd unit's cannot hold them: see the module
    docstring), unless the daemon already sits in the leaf beside a parent (``<p>/daemon``)."""
    own = own.rstrip("/")
    if own.endswith(f"/instances/{DAEMON_LEAF}"):  # the daemon's leaf beside the instances
        return own.removesuffix(f"/{DAEMON_LEAF}")
    return DEFAULT_PARENT


def in_own_unit(own: str, parent: str) -> bool:
    """Whether a daemon in cgroup ``own`` stays there: a systemd unit's (or any cgroup but
    the root) beside, not above or inside, ``parent``. It must not leave its unit's cgroup.
    A parent below ``own`` (configured under the unit) makes it move anyway (no internal
    processes), and inside ``parent`` it already is beside its instances."""
    own, parent = own.rstrip("/") or "/", parent.rstrip("/")
    related = own == parent or own.startswith(parent + "/") or parent.startswith(own + "/")
    return own != "/" and not related


def detect(mode: str = "auto", parent: str | None = None) -> CgroupsV1 | CgroupsV2:
    """The adapter for this host (``mode`` ``auto``, ``v1`` or ``v2``; ``parent`` defaulted)."""
    kind = mount_kind(Path("/proc/self/mountinfo").read_text())
    if mode == "auto":
        mode = "v2" if kind == "v2" else "v1"
    if mode == "v2":
        if kind != "v2":
            raise RuntimeFailure(f"cgroup_mode v2 asked for, but this host is {kind}")
        return CgroupsV2(parent or default_parent_v2(own_cgroup_v2()))
    if kind == "v2":
        raise RuntimeFailure("cgroup_mode v1 asked for, but this host is unified cgroup v2")
    return CgroupsV1(parent or DEFAULT_PARENT, kind=kind)
