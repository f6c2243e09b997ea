"""The shells' I/O: build a prepared container, configure and release it, destroy it.

This is the seam between the manager's bookkeeping (pools, reservations, store rows, the
rollback of a failed request) and the machine: :class:`ShellIO` says what the manager does to a
container, :class:`RuncShellIO` does it with runc, cgroups, veths and netlink. The unit tests
drive the manager through a recording double of :class:`ShellIO`; the functional tests run the
same code paths on real containers.

Prepare (:meth:`ShellIO.build`): a user-namespace id range taken, the overlay root mounted
(the template's image below, a private upper; :mod:`fluidedge.instances.images.overlay`),
bundle written, ``runc create`` done (namespaces, cgroups,
mounts, seccomp), veths plugged into their bridges with the peer in the shell's namespace and
up, a netlink socket opened inside that namespace, and the container started: its launcher
blocks on the go FIFO ``/.fe/go``, so ``runc init``'s exec is not in the request path.
Execute: :meth:`~ShellIO.configure` (assignment, per-request limits), :meth:`~ShellIO.address`
(addresses, routes), :meth:`~ShellIO.release` (the go signal), :meth:`~ShellIO.wait_ready`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from fluidedge.core.cpus import cpu_list_text
from fluidedge.instances import cgroups, network, runc
from fluidedge.instances.bundle import oci_config
from fluidedge.instances.errors import RuntimeFailure
from fluidedge.instances.images import overlay, userns
from fluidedge.instances.images.builtin import ensure_busybox
from fluidedge.instances.images.store import ImageStore
from fluidedge.instances.images.templates import user_ids
from fluidedge.instances.images.tools import ToolError
from fluidedge.instances.launcher import (
    GO_BYTES,
    GO_FIFO,
    STARTED_FIFO,
    build_launcher,
    go_frame,
    make_go_fifo,
    signal_go,
)
from fluidedge.instances.models import (
    InterfaceState,
    NetworkSpec,
    Readiness,
    Resources,
    TemplateSpec,
)
from fluidedge.instances.nl import NetlinkSocket
from fluidedge.instances.private import empty_dir, private_dir, write_private
from fluidedge.instances.readiness import StartWatch, wait_ready
from fluidedge.instances.records import Shell, ShellIface
from fluidedge.linux import procfs

# The memory limit a shell is created with when its template's is lower. ``runc init`` (a Go
# program of several MiB) runs inside the container's cgroup until it execs the launcher, and
# on cgroup v2 the kernel memory it uses (page tables, slab) counts too: under the built-in
# ``idle`` template's 8 MiB it was OOM-killed on a stock Debian kernel. The template's limit
# is written once the launcher (a few hundred KiB) has replaced it.
INIT_MEMORY_MB = 48
# How long a started shell may take to come under its template's memory limit (what runc init
# left is freed just after its exec): past it, the build fails rather than OOM-kill the shell.
LOWER_MEMORY_TIMEOUT_S = 5.0

# Readiness kinds whose shells wait in the pool in the idle scheduling class and are released
# in it (fluidedge.instances.cgroups, "Idle start"): the daemon's wait ends at the workload's
# execve, and the daemon, not the workload's start-up, must then have the CPU until the answer
# is out (ShellIO.answered). A workload whose readiness the daemon waits for (a TCP port)
# needs the CPU to get there: on a busy host an idle-class one would starve; it starts normal.
IDLE_START = ("none", "started")


class ShellIO(Protocol):
    """What the manager does to containers (the seam its unit tests replace)."""

    launcher_kind: str

    def setup(self) -> None:
        """Make the host ready: cgroup parent, state directories, the shared root."""

    def build(self, shell: Shell, template: TemplateSpec, networks: dict[str, NetworkSpec]) -> None:
        """Turn ``shell`` (id, directory, ifaces chosen) into a running container whose
        launcher waits for its go signal, plugged. Sets ``pid``, ``nl``, the ifindexes."""

    def alive(self, shell: Shell) -> bool:
        """Whether the shell's launcher still runs (a pooled shell can die while it waits:
        killed, or its container torn down under it)."""

    def exit_fd(self, shell: Shell) -> int | None:
        """A descriptor that becomes readable when the shell's launcher exits (the caller owns
        it), None when there is none to give; ProcessLookupError when the launcher is already
        gone (any other OSError: no descriptor, the launcher may well run)."""

    def destroy(self, container_id: str, ifaces: list[ShellIface], directory: Path) -> None:
        """Kill and remove a container, its veths, cgroups and directory (absent is fine)."""

    def configure(  # noqa: PLR0917 (one call site)
        self,
        shell: Shell,
        files: dict[str, str],
        assignment: bytes,
        base: Resources,
        wanted: Resources,
        cpus: tuple[int, ...],
    ) -> None:
        """The config phase: template files, the launcher's assignment, per-request limits."""

    def address(self, shell: Shell, interfaces: list[InterfaceState]) -> None:
        """The network phase: addresses and default routes inside the shell's namespace."""

    def forget_neighbours(self, spec: NetworkSpec, addresses: list[str]) -> None:
        """The network phase, after :meth:`address`: the network's side forgets the neighbour
        entries ``addresses`` had (a previous holder's MAC; see fluidedge.instances.neigh)."""

    def revive_veth(
        self,
        container_id: str,
        pid: int,
        spec: NetworkSpec,
        iface: ShellIface,
        state: InterfaceState | None,
        *,
        isolated: bool,
    ) -> bool:
        """Make the veth ``iface`` of container ``container_id`` (launcher or workload ``pid``)
        again, deleted from outside: plugged as when the shell was made, its instance end up
        with ``state``'s addresses and default route. False (nothing done) when ``pid`` is no
        longer in the container (the instance died, the pid may be another process's)."""

    def release(self, shell: Shell, *, watch: bool) -> StartWatch | None:
        """The start phase: let the launcher exec the workload; with ``watch``, the launcher's
        report of its exec, to wait on."""

    def wait_ready(self, check: Readiness, pid: int, name: str, watch: StartWatch | None) -> None:
        """Return once the instance is ready (WorkloadFailed / ReadinessTimeout otherwise)."""

    def answered(self, container_id: str, cpus: float) -> None:
        """The creation of an instance released in the idle class (see :data:`IDLE_START`)
        has been answered: its cgroup leaves the class and takes the weight of its CPU request
        ``cpus`` (an idle-class cgroup refuses one, and leaving the class resets it)."""

    def freeze(self, container_id: str, *, timeout: float) -> None: ...

    def thaw(self, container_id: str, *, timeout: float) -> None: ...

    def describe(self) -> dict[str, Any]:
        """The host modes, for ``/stats``."""


class RuncShellIO:
    """:class:`ShellIO` with an OCI runtime (runc or crun), cgroups, veths and netlink."""

    def __init__(  # noqa: PLR0917
        self,
        state_dir: Path,
        runtime: runc.Runc,
        cgroup: cgroups.Cgroups,
        launcher: str,
        images: ImageStore,
        userns_base: int = userns.DEFAULT_BASE,
    ) -> None:
        self.state_dir = state_dir
        self.runc = runtime
        self.cgroups = cgroup
        self.launcher = launcher
        self.images = images
        self.userns_base = userns_base
        self.shell_root = state_dir / "shells"
        self.roots = overlay.roots_dir(state_dir)
        self.launcher_path = state_dir / "launcher"
        self.empty_dir = state_dir / "empty"  # bound read-only over masked directories
        self.launcher_kind = "c"
        self._slots: set[int] = set()
        self._slots_lock = threading.Lock()

    def setup(self) -> None:
        self.cgroups.prepare()
        private_dir(self.state_dir, parents=True)
        private_dir(self.shell_root)
        empty_dir(self.empty_dir)
        self.launcher_path, self.launcher_kind = build_launcher(
            self.state_dir / "launcher", self.launcher
        )
        try:
            ensure_busybox(self.images)
        except ToolError as exc:
            raise RuntimeFailure(f"built-in image: {exc}") from exc
        # The id ranges still held: each shell's assignment directory is owned by its root.
        for directory in self.shell_root.iterdir():
            with contextlib.suppress(OSError):
                slot = userns.slot_of(self.userns_base, (directory / "assign").stat().st_uid)
                if slot >= 1:
                    self._slots.add(slot)

    def _owner(self, template: TemplateSpec, shell: Shell) -> tuple[int | None, tuple[int, int]]:
        """(host id of container root or None without a user namespace, the process's ids
        inside); takes a free id range for ``shell``."""
        inside = user_ids(template)
        if template.userns_opt_out is not None:
            return None, inside
        with self._slots_lock:
            slot = userns.allocate(self._slots)
            self._slots.add(slot)
        return userns.slot_base(self.userns_base, slot), inside

    def build(self, shell: Shell, template: TemplateSpec, networks: dict[str, NetworkSpec]) -> None:
        directory = shell.directory
        bundle = directory / "bundle"
        assign = directory / "assign"
        private_dir(directory)
        private_dir(bundle)
        private_dir(assign)
        make_go_fifo(assign)
        base, inside = self._owner(template, shell)
        root = base if base is not None else 0
        owner = (root + inside[0], root + inside[1])
        for path in (assign, assign / GO_FIFO, assign / STARTED_FIFO):
            os.chown(path, *owner)
        lower = self.images.rootfs_of(template.image)
        try:
            rootfs = overlay.mount(lower, directory, self.roots / shell.id, (root, root))
            scratch = overlay.scratch(self.roots / shell.id, (root, root))
        except OSError as exc:
            raise RuntimeFailure(f"root of shell {shell.id}: {exc}") from exc
        config = oci_config(
            template,
            container_id=shell.id,
            rootfs=rootfs,
            assign_dir=assign,
            launcher=self.launcher_path,
            empty_dir=self.empty_dir,
            scratch=scratch,
            cgroups_path=self.cgroups.runc_path(shell.id),
            userns_base=base,
            user=inside,
            token=shell.token,
        )
        if shell.cpus:  # pinned ahead: a request placed on these CPUs skips the cpuset write
            config["linux"]["resources"]["cpu"]["cpus"] = cpu_list_text(shell.cpus)
        limit_mb = template.resources.memory_mb
        if limit_mb < INIT_MEMORY_MB:
            memory = config["linux"]["resources"]["memory"]
            memory["limit"] = memory["swap"] = INIT_MEMORY_MB * 1024 * 1024
        write_private(bundle / "config.json", json.dumps(config).encode())
        self.cgroups.before_create(shell.id)
        shell.pid = self.runc.create(shell.id, bundle, directory / "log")
        # prepare_shell made one shell interface per template interface, in order. An
        # isolated one (a service function's leg) is plugged outside the learning switch
        # before the instance's process can run.
        isolated = {spec.name: spec.isolated for spec in template.interfaces}
        for iface in shell.ifaces:
            iface.ofport = network.plug(
                networks[iface.network],
                iface.host_ifname,
                iface.name,
                shell.pid,
                isolated=isolated.get(iface.name, False),
            )
        shell.nl = NetlinkSocket.open_in(f"/proc/{shell.pid}/ns/net")
        shell.nl.link_up(1)
        for iface in shell.ifaces:
            iface.ifindex = shell.nl.link_index(iface.name)
            shell.nl.link_up(iface.ifindex)
        # Release runc init now: it execs the launcher, which blocks on /.fe/go.
        self.runc.start_fast(shell.id, shell.pid)
        # The container holds its root now: out of the namespace the next create copies.
        try:
            overlay.release(self.roots / shell.id)
        except OSError as exc:
            raise RuntimeFailure(f"root of shell {shell.id}: {exc}") from exc
        if limit_mb < INIT_MEMORY_MB:  # the launcher replaced runc init: the real limit now
            self._lower_memory(shell.id, limit_mb)
        if self.cgroups.idle_start and template.readiness.kind in IDLE_START:
            self.cgroups.set_cpu_idle(shell.id, True)
            shell.idle = True

    def _lower_memory(self, container_id: str, limit_mb: int) -> None:
        """Lower a started shell's memory limit to its template's once its usage fits.

        What runc init leaves charged (its heap, the copy of its binary) is freed just after
        its exec, not always before we get here; lowered below the usage, cgroup v2's
        ``memory.max`` OOM-kills the launcher (v1 answers EBUSY). A shell that does not come
        under the limit in time fails its build (the pool makes another) instead.
        """
        limit = limit_mb * 1024 * 1024
        deadline = time.monotonic() + LOWER_MEMORY_TIMEOUT_S
        while (used := self.cgroups.memory_usage(container_id)) > limit:
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"shell {container_id}: {used / 2**20:.1f} MiB in use after its start, "
                    f"above its template's memory limit ({limit_mb} MiB)"
                )
            time.sleep(0.001)
        self.cgroups.set_memory(container_id, limit_mb, lowering=True)

    def destroy(self, container_id: str, ifaces: list[ShellIface], directory: Path) -> None:
        errors = []
        # Kill through the cgroup first (v2: cgroup.kill, atomic, frozen tasks included; v1:
        # thaw + SIGKILL of each task): runc delete -f then only removes what is left.
        self.cgroups.kill(container_id)
        try:
            self.runc.delete(container_id)
        except RuntimeFailure as exc:
            errors.append(str(exc))
        for iface in ifaces:
            try:
                network.unplug(iface.netns, iface.host_ifname)
            except RuntimeFailure as exc:
                errors.append(str(exc))
        try:
            overlay.unmount(self.roots / container_id)
        except OSError as exc:
            errors.append(str(exc))
        with contextlib.suppress(OSError):
            slot = userns.slot_of(self.userns_base, (directory / "assign").stat().st_uid)
            with self._slots_lock:
                self._slots.discard(slot)
        shutil.rmtree(directory, ignore_errors=True)
        if errors:
            raise RuntimeFailure("; ".join(errors))

    def configure(  # noqa: PLR0917 (one call site)
        self,
        shell: Shell,
        files: dict[str, str],
        assignment: bytes,
        base: Resources,
        wanted: Resources,
        cpus: tuple[int, ...],
    ) -> None:
        assign = shell.directory / "assign"
        if self.launcher_kind == "c":  # the assignment goes with the go signal, not to disk
            shell.go = go_frame(assignment)
        else:  # the busybox launcher reads it from its file
            files = {**files, "assign": assignment.decode()}
            shell.go = GO_BYTES
        if files:
            owner = os.stat(assign)  # its root's (or its user's) host ids, set at build
            ids = (owner.st_uid, owner.st_gid)
            for rel, content in files.items():
                target = assign / rel
                for parent in reversed(target.relative_to(assign).parents[:-1]):
                    os.chown(private_dir(assign / parent), *ids)
                write_private(target, content.encode(), ids)
        self._apply_limits(shell, base, wanted, cpus)

    def _apply_limits(
        self, shell: Shell, base: Resources, wanted: Resources, cpus: tuple[int, ...]
    ) -> None:
        cg = self.cgroups
        container_id = shell.id
        if shell.cpus != cpus:
            cg.set_cpus(container_id, cpu_list_text(cpus))
            shell.cpus = cpus
        if wanted.cpus != base.cpus and not shell.idle:  # idle: set when it leaves the class
            cg.set_cpu_weight(container_id, wanted.cpus)
        if wanted.cpu_limit != base.cpu_limit:
            cg.set_cpu_limit(container_id, wanted.cpu_limit)
        if wanted.memory_mb != base.memory_mb:
            cg.set_memory(
                container_id, wanted.memory_mb, lowering=wanted.memory_mb < base.memory_mb
            )
        if wanted.pids != base.pids:
            cg.set_pids(container_id, wanted.pids)

    def address(self, shell: Shell, interfaces: list[InterfaceState]) -> None:
        nl = shell.nl
        try:
            for iface, state in zip(shell.ifaces, interfaces, strict=True):
                for address in state.addresses:
                    if nl is None:
                        raise RuntimeFailure("shell has no netlink socket")
                    nl.add_address(iface.ifindex, address)
                if state.gateway is not None and nl is not None:
                    nl.add_default_route(iface.ifindex, state.gateway)
        except OSError as exc:
            raise RuntimeFailure(f"network of shell {shell.id}: {exc}") from exc
        finally:
            shell.close()

    def forget_neighbours(self, spec: NetworkSpec, addresses: list[str]) -> None:
        network.forget_neighbours(spec, addresses)

    def revive_veth(
        self,
        container_id: str,
        pid: int,
        spec: NetworkSpec,
        iface: ShellIface,
        state: InterfaceState | None,
        *,
        isolated: bool,
    ) -> bool:
        try:  # held from here on: the namespace stays the one checked below
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            return False
        except OSError as exc:
            raise RuntimeFailure(f"veth {iface.host_ifname}: netns of {pid}: {exc}") from exc
        try:
            if pid not in self.cgroups.procs(container_id):  # the pid is not the instance's
                return False
            path = f"/proc/{os.getpid()}/fd/{fd}"  # opened by nsenter and pyroute2 too
            iface.ofport = network.plug(spec, iface.host_ifname, iface.name, pid,
                                        isolated=isolated, netns_path=path, again=True,
                                        number=iface.ofport or None)  # fmt: skip
            try:
                nl = NetlinkSocket.open_in(path)
                try:
                    index = nl.link_index(iface.name)
                    nl.link_up(index)
                    for address in state.addresses if state is not None else []:
                        nl.add_address(index, address)
                    if state is not None and state.gateway is not None:
                        nl.add_default_route(index, state.gateway)
                finally:
                    nl.close()
            except OSError as exc:
                # not left half made (plugged, not addressed): gone again, it is announced
                # deleted and the next check tries once more
                with contextlib.suppress(RuntimeFailure):
                    network.unplug(spec.netns, iface.host_ifname)
                raise RuntimeFailure(f"veth {iface.host_ifname}: {iface.name}: {exc}") from exc
            iface.ifindex = index
            return True
        finally:
            os.close(fd)

    def release(self, shell: Shell, *, watch: bool) -> StartWatch | None:
        assign = shell.directory / "assign"
        started = StartWatch.open(assign / STARTED_FIFO) if watch else None
        try:
            signal_go(assign / GO_FIFO, shell.pid, shell.go or GO_BYTES)
            shell.go = b""  # sent: the assignment (its secrets) is not kept
        except RuntimeFailure as exc:
            if started is not None:
                started.close()
            # what the launcher (or runc) wrote before it went: the cause, in the answer
            tail = runc.log_tail(shell.directory / "log", 300)
            raise type(exc)(f"{exc}; its log: {tail}") from exc
        except BaseException:
            if started is not None:
                started.close()
            raise
        return started

    def wait_ready(self, check: Readiness, pid: int, name: str, watch: StartWatch | None) -> None:
        wait_ready(check, pid, name, watch)

    def answered(self, container_id: str, cpus: float) -> None:
        with contextlib.suppress(RuntimeFailure):  # gone already: nothing to promote
            self.cgroups.set_cpu_idle(container_id, False)
            self.cgroups.set_cpu_weight(container_id, cpus)

    def alive(self, shell: Shell) -> bool:
        return procfs.process_running(shell.pid)

    def exit_fd(self, shell: Shell) -> int | None:
        fd = os.pidfd_open(shell.pid)
        if not procfs.process_running(shell.pid):  # a zombie has a pidfd, already readable
            os.close(fd)
            raise ProcessLookupError(f"launcher {shell.pid} has exited")
        return fd

    def freeze(self, container_id: str, *, timeout: float) -> None:
        self.cgroups.freeze(container_id, timeout=timeout)

    def thaw(self, container_id: str, *, timeout: float) -> None:
        self.cgroups.thaw(container_id, timeout=timeout)

    def describe(self) -> dict[str, Any]:
        return {
            "cgroup": self.cgroups.describe(),
            "runtime": {
                "name": self.runc.kind,
                "binary": self.runc.binary,
                "root": str(self.runc.root),
            },
            "launcher": self.launcher_kind,
        }
