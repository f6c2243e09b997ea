"""The instance manager: pools of prepared shells, the execute phase, pause/resume, re-adoption.

Split toolstack (seed §5.4.3). The *prepare* phase runs in background worker threads and keeps,
per template, ``pool.size`` shells: bundle written, ``runc create`` done (namespaces, cgroups,
mounts, seccomp), veths created and plugged into their bridges with the peer in the shell's
namespace and up, a netlink socket opened inside that namespace, and the container started: its
launcher blocks on the go FIFO ``/.fe/go``, so ``runc init``'s exec is not in the request path.
The *execute* phase of a
request (:meth:`Manager.create_instance`) only does what is specific to the instance: placement,
taking a shell, writing the assignment and per-request limits, adding addresses, signalling the
launcher, waiting for readiness, each phase timed (seed §3). An empty pool falls back to the
*cold* path (the same prepare work inline), reported as ``path = "cold"``.

Consistency: a shell's row is stored before ``runc create``; taking a shell turns its row into
the instance's row in one transaction before the process is released. On start the manager
re-adopts what the store and ``runc list`` agree on, and cleans up what the store names but
never ran a workload (a shell that cannot be re-used, an instance claimed but never released).
It never destroys what the store does not know, nor a shell row's container that runs a
workload (a store restored from an older backup): those are orphans
(:mod:`fluidedge.instances.orphans`), logged and kept until an operator purges them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from fluidedge.core.store import Store
from fluidedge.instances import cgroups, network, runc
from fluidedge.instances.builtin import builtin_templates
from fluidedge.instances.bundle import (
    LAUNCHER_IN_ROOT,
    encode_assignment,
    oci_config,
    workload_env,
)
from fluidedge.instances.errors import (
    AddressInUse,
    InstanceNotFound,
    InterfaceNotFound,
    InUse,
    InvalidRequest,
    NameInUse,
    NetworkNotFound,
    ReadinessTimeout,
    RuntimeFailure,
    TemplateNotFound,
    WorkloadFailed,
    WrongState,
)
from fluidedge.instances.launcher import (
    GO_FIFO,
    build_launcher,
    launcher_waiting,
    make_go_fifo,
    signal_go,
)
from fluidedge.instances.models import (
    InstanceRequest,
    InstanceView,
    InterfaceState,
    NetworkSpec,
    OrphanView,
    PoolStatus,
    Resources,
    TemplateSpec,
    Timing,
    check_assignment,
)
from fluidedge.instances.nl import NetlinkSocket
from fluidedge.instances.orphans import find_orphans
from fluidedge.instances.persist import Tables
from fluidedge.instances.placement import (
    Capacity,
    Placed,
    Request,
    Usage,
    cpuset_text,
    parse_cpuset,
    place_with,
)
from fluidedge.instances.private import private_dir, write_private
from fluidedge.instances.timing import PHASES, Histograms, PhaseTimer

log = logging.getLogger("fluidedge.instances")


class CosBinder(Protocol):
    """What the CAT part offers instances (set as ``Manager.cos_binder`` when enabled)."""

    def check(self, cos: str) -> tuple[int, ...] | None:
        """Raise unless class ``cos`` exists; the CPUs it is bound to, if any."""

    def bind(self, instance: str, cos: str, pid: int) -> None:
        """Put the instance's tasks (at least ``pid``) into ``cos``."""

    def unbind(self, instance: str) -> None: ...


class InstancesConfig(BaseModel):
    """The ``[instances]`` table of the daemon config."""

    model_config = ConfigDict(extra="forbid")

    state_dir: Path | None = None
    runtime: Literal["runc", "crun"] = Field(
        default="runc", description="OCI runtime (crun needs pure v1 or v2, not hybrid)"
    )
    runtime_path: str | None = Field(default=None, description="its binary (default: on PATH)")
    launcher: Literal["auto", "c", "sh"] = Field(
        default="auto", description="shell launcher: static C (needs gcc) or busybox sh"
    )
    cgroup_mode: Literal["auto", "v1", "v2"] = Field(
        default="auto", description="cgroup hierarchy: auto-detected, or forced"
    )
    cgroup_parent: str | None = Field(
        default=None,
        pattern=r"^(/[A-Za-z0-9_.@:-]+)+$",
        description="cgroup path instances go under (v2: a delegated subtree); "
        "default /fluidedge, or <daemon's cgroup>/instances under systemd on v2",
    )
    cpus: str | None = Field(default=None, description="cpuset for instances, default: online")
    cpu_overcommit: float = Field(default=4.0, gt=0)
    memory_mb: int | None = Field(default=None, ge=16, description="default: 80% of MemTotal")
    memory_overcommit: float = Field(default=1.0, gt=0)
    placement: Literal["spread", "pack"] = "spread"
    prepare_workers: int = Field(default=2, ge=1, le=16)
    builtin_templates: bool = True
    pool_scale: float = Field(default=1.0, ge=0, le=100, description="scales template pool sizes")
    networks: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass
class ShellIface:
    name: str
    network: str
    host_ifname: str
    netns: str | None
    ifindex: int = 0


@dataclass
class Shell:
    id: str
    template: str
    pid: int
    directory: Path
    ifaces: list[ShellIface]
    state: str = "preparing"
    nl: NetlinkSocket | None = None

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "template": self.template,
            "state": self.state,
            "pid": self.pid,
            "directory": str(self.directory),
            "ifaces": [vars(i) for i in self.ifaces],
        }


@dataclass
class Instance:
    name: str
    id: str
    template: str
    state: str
    pid: int | None
    path: Literal["warm", "cold"]
    cpus: tuple[int, ...]
    resources: Resources
    interfaces: list[InterfaceState]
    labels: dict[str, str]
    timing: dict[str, float]
    created_at: float
    directory: Path
    shell_ifaces: list[ShellIface] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cos: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "template": self.template,
            "state": self.state,
            "pid": self.pid,
            "path": self.path,
            "cpus": list(self.cpus),
            "resources": self.resources.model_dump(),
            "interfaces": [i.model_dump() for i in self.interfaces],
            "labels": self.labels,
            "timing": self.timing,
            "created_at": self.created_at,
            "directory": str(self.directory),
            "shell_ifaces": [vars(i) for i in self.shell_ifaces],
            "cos": self.cos,
        }

    def view(self) -> InstanceView:
        state = self.state
        if state in ("running", "paused") and (
            self.pid is None or not runc.process_running(self.pid)
        ):
            state = "exited"  # the workload ended on its own; DELETE still cleans up
        return InstanceView(
            name=self.name,
            id=self.id,
            template=self.template,
            state=state,
            pid=self.pid,
            path=self.path,
            cpus=list(self.cpus),
            resources=self.resources,
            interfaces=self.interfaces,
            labels=self.labels,
            timing=Timing(**self.timing),
            created_at=self.created_at,
            cos=self.cos,
        )


@dataclass
class Pool:
    ready: deque[Shell] = field(default_factory=deque)
    preparing: int = 0
    consumed: int = 0
    failures: int = 0
    last_error: str | None = None
    backoff_until: float = 0.0
    last_consumed: float = 0.0
    filling: bool = False


def _online_cpus() -> tuple[int, ...]:
    try:
        return parse_cpuset(Path("/sys/devices/system/cpu/online").read_text())
    except OSError:
        return tuple(range(os.cpu_count() or 1))


def _mem_total_mb() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def _listening(pid: int, port: int) -> bool:
    want = f":{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A" and fields[1].endswith(want):
                        return True
        except OSError:
            continue
    return False


def _still_starting(exe: str) -> bool:
    """True while ``runc init`` (a cloned binary, seen as ``/`` or ``memfd:...``), crun's init or
    the launcher still holds the process: the fifo's EOF comes just *before* runc init's exec."""
    return exe in ("", "/") or "runc" in exe or "crun" in exe or exe.endswith("fe-launcher")


def _probe(kind: str, pid: int, port: int | None, path: str | None) -> bool:
    if kind == "tcp" and port is not None:
        return _listening(pid, port)
    if kind == "file" and path:
        return os.path.exists(f"/proc/{pid}/root{path}")
    return False


class Manager:
    """Pools, instances, networks and templates of one daemon."""

    def __init__(self, config: InstancesConfig, store: Store, state_dir: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.tables = Tables(store)
        self.cgroups = cgroups.detect(config.cgroup_mode, config.cgroup_parent)
        binary = config.runtime_path or config.runtime
        runc.check_runtime(config.runtime, binary, self.cgroups.kind)
        self.runc = runc.Runc(state_dir / config.runtime, binary, self.cgroups, config.runtime)
        self.rootfs = state_dir / "rootfs"
        self.shell_root = state_dir / "shells"
        self.capacity = Capacity(
            cpus=parse_cpuset(config.cpus) if config.cpus else _online_cpus(),
            memory_mb=config.memory_mb or int(_mem_total_mb() * 0.8),
            cpu_overcommit=config.cpu_overcommit,
            memory_overcommit=config.memory_overcommit,
        )
        self.templates: dict[str, TemplateSpec] = {}
        self.builtin: set[str] = set()
        self.networks: dict[str, NetworkSpec] = {}
        self.managed_networks: set[str] = set()
        self.instances: dict[str, Instance] = {}
        self.pools: dict[str, Pool] = {}
        self.addresses: dict[tuple[str, str], str] = {}
        self.placed: dict[str, Placed] = {}
        self.usage = Usage.of([], self.capacity.cpus)
        self.reserved_names: set[str] = set()
        self.orphans: dict[str, OrphanView] = {}
        self.histograms = Histograms()
        self.histograms.declare(
            "fluidedge_instance_phase_seconds", "instance creation time per phase (seed §3)"
        )
        self.histograms.declare(
            "fluidedge_instance_create_seconds", "instance creation time, request to ready"
        )
        self.histograms.declare("fluidedge_instance_pause_seconds", "pause/resume latency")
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._workers: list[threading.Thread] = []
        self._stopping = False
        self.bind_dirs: list[str] = []
        self.launcher_kind = "c"
        self.cos_binder: CosBinder | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.cgroups.prepare()
        private_dir(self.state_dir, parents=True)
        private_dir(self.shell_root)
        self._build_rootfs()
        for spec_data, managed in self.tables.networks():
            spec = NetworkSpec.model_validate(spec_data)
            self.networks[spec.name] = spec
            if managed:
                self.managed_networks.add(spec.name)
        for name, raw in self.config.networks.items():
            spec = NetworkSpec.model_validate({"name": name, **raw})
            if spec.name not in self.networks:
                self.create_network(spec)
            else:
                self.networks[spec.name] = spec
        for spec in self.networks.values():
            with contextlib.suppress(RuntimeFailure):
                if network.ensure_bridge(spec):
                    self.managed_networks.add(spec.name)
        for spec_data, is_builtin in self.tables.templates():
            template = TemplateSpec.model_validate(spec_data)
            self.templates[template.name] = template
            if is_builtin:
                self.builtin.add(template.name)
        if self.config.builtin_templates:
            for template in builtin_templates():
                if template.name not in self.templates:
                    self.templates[template.name] = template
                    self.builtin.add(template.name)
                    self.tables.put_template(template.name, template.model_dump(), True)
        for name in self.templates:
            self.pools.setdefault(name, Pool())
        self._restore()
        self._stopping = False
        for index in range(self.config.prepare_workers):
            worker = threading.Thread(
                target=self._prepare_loop, name=f"fe-prepare-{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        """Stop the prepare workers; shells and instances stay (re-adopted on next start)."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        for worker in self._workers:
            worker.join(timeout=120)
        self._workers.clear()
        with self._lock:
            for pool in self.pools.values():
                for shell in pool.ready:
                    if shell.nl is not None:
                        shell.nl.close()
                        shell.nl = None
        network.close_handles()

    def purge(self) -> None:
        """Stop, then destroy every instance, shell and managed bridge (tests, uninstall)."""
        self.stop()
        for name in list(self.instances):
            with contextlib.suppress(Exception):
                self.delete_instance(name)
        with self._lock:
            shells = [s for pool in self.pools.values() for s in pool.ready]
            for pool in self.pools.values():
                pool.ready.clear()
        for shell in shells:
            with contextlib.suppress(Exception):
                self._destroy_shell(shell)
        with contextlib.suppress(Exception):
            self.purge_orphans()
        for name in list(self.managed_networks):
            with contextlib.suppress(Exception):
                network.delete_bridge(self.networks[name])
        network.close_handles()

    def _build_rootfs(self) -> None:
        """The shared read-only root: mount points, host-dir symlinks, the launcher."""
        launcher, self.launcher_kind = build_launcher(
            self.state_dir / "launcher", self.config.launcher
        )
        root = self.rootfs
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("proc", "dev", "sys", "tmp", ".fe", "usr", "etc", "run", "var"):
            (root / sub).mkdir(exist_ok=True)
        binds = ["/usr", "/etc"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            target = root / top
            if host.is_symlink():
                if not target.is_symlink():
                    if target.exists():
                        target.rmdir()
                    target.symlink_to(os.readlink(host))
            elif host.is_dir():
                target.mkdir(exist_ok=True)
                binds.append(str(host))
        self.bind_dirs = binds
        dest = root / LAUNCHER_IN_ROOT.lstrip("/")
        if not dest.exists() or dest.read_bytes() != launcher.read_bytes():
            tmp = root / ".fe-launcher.tmp"
            shutil.copyfile(launcher, tmp)
            tmp.chmod(0o755)
            os.replace(tmp, dest)

    # ------------------------------------------------------------------ re-adoption
    def _restore(self) -> None:
        containers = {c["id"]: c for c in self.runc.list()}
        known: set[str] = set()
        for record in self.tables.instances():
            known.add(record["id"])
            inst = Instance(
                name=record["name"],
                id=record["id"],
                template=record["template"],
                state=record["state"],
                pid=record.get("pid"),
                path=record.get("path", "warm"),
                cpus=tuple(record.get("cpus", [])),
                resources=Resources.model_validate(record["resources"]),
                interfaces=[InterfaceState.model_validate(i) for i in record["interfaces"]],
                labels=record.get("labels", {}),
                timing=record.get("timing", {}),
                created_at=record.get("created_at", time.time()),
                directory=Path(record["directory"]),
                shell_ifaces=[ShellIface(**i) for i in record.get("shell_ifaces", [])],
                cos=record.get("cos"),
            )
            found = containers.get(inst.id)
            status = found.get("status") if found else None
            if status == "running" and found and launcher_waiting(int(found["pid"])):
                status = "created"  # claimed, never released: same as a crash before release
            if status in ("running", "paused"):
                inst.pid = int(found["pid"]) if found else inst.pid
                with contextlib.suppress(RuntimeFailure):
                    inst.state = "paused" if self.cgroups.frozen(inst.id) else "running"
            else:
                # Crashed before release, or the workload died while we were away.
                if status == "created":
                    with contextlib.suppress(RuntimeFailure):
                        self.runc.delete(inst.id)
                inst.state = "exited"
                inst.pid = None
            self.instances[inst.name] = inst
            self._reserve(inst)
            self.tables.put_instance(inst.record())
        for info in self.tables.shells():
            known.add(info["id"])
            shell = Shell(
                id=info["id"],
                template=info["template"],
                pid=int(info.get("pid") or 0),
                directory=Path(info["directory"]),
                ifaces=[ShellIface(**i) for i in info.get("ifaces", [])],
                state=info["state"],
            )
            found = containers.get(shell.id)
            # A pooled shell is a running container whose launcher waits on its go FIFO.
            usable = (
                shell.state == "ready"
                and found is not None
                and found.get("status") == "running"
                and int(found.get("pid") or 0) == shell.pid
                and launcher_waiting(shell.pid)
                and (shell.directory / "assign" / GO_FIFO).exists()
                and shell.template in self.templates
            )
            if usable:
                try:
                    shell.nl = NetlinkSocket.open_in(f"/proc/{shell.pid}/ns/net")
                except OSError:
                    usable = False
            if usable:
                self.pools.setdefault(shell.template, Pool()).ready.append(shell)
            elif (
                found is not None
                and found.get("status") in ("running", "paused")
                and not launcher_waiting(int(found.get("pid") or 0))
            ):
                # A shell row, but its container runs a workload: the store is older than the
                # claim (restored from a backup). Never destroy it: forget the row, report it.
                self.tables.delete_shell(shell.id)
                known.discard(shell.id)
            else:
                self._destroy_shell(shell)
        self._find_orphans(containers, known)
        log.info(
            "re-adopted %d instance(s) and %d pooled shell(s); %d orphan(s) kept",
            len(self.instances),
            sum(len(p.ready) for p in self.pools.values()),
            len(self.orphans),
            extra={"part": "instances", "event": "readopted", "ids": ",".join(self.instances)},
        )

    def _find_orphans(self, containers: dict[str, dict[str, Any]], known: set[str]) -> None:
        """Record (and log) what is ours but unknown to the store; destroy none of it."""
        known_veths = {i.host_ifname for x in self.instances.values() for i in x.interfaces}
        known_veths |= {
            i.host_ifname for p in self.pools.values() for x in p.ready for i in x.ifaces
        }
        ports: dict[str, list[str]] = {}
        for spec in self.networks.values():
            with contextlib.suppress(RuntimeFailure):
                ports[spec.name] = network.bridge_ports(spec)
        dirs = list(self.shell_root.iterdir()) if self.shell_root.is_dir() else []
        self.orphans = find_orphans(containers, known, dirs, ports, known_veths)
        for orphan in self.orphans.values():
            log.warning(
                "orphan kept: kind=%s id=%s status=%s pid=%s veths=%s reason=%s",
                orphan.kind,
                orphan.id,
                orphan.status,
                orphan.pid,
                ",".join(orphan.veths) or "-",
                orphan.reason,
                extra={"part": "instances", "event": "orphan_found", "ids": orphan.id},
            )

    def list_orphans(self) -> list[OrphanView]:
        with self._lock:
            return sorted(self.orphans.values(), key=lambda o: o.id)

    def purge_orphans(self, ids: list[str] | None = None) -> list[str]:
        """Destroy orphans (all, or those named): their container, veths, cgroups, directory."""
        with self._lock:
            if ids is None:
                chosen = list(self.orphans.values())
            else:
                missing = [i for i in ids if i not in self.orphans]
                if missing:
                    raise InstanceNotFound(f"no orphan named {', '.join(missing)}")
                chosen = [self.orphans[i] for i in ids]
        purged = []
        for orphan in chosen:
            netns_of = {spec.name: spec.netns for spec in self.networks.values()}
            veths = [*orphan.veths, *([orphan.id] if orphan.kind == "veth" else [])]
            if orphan.kind == "container":
                with contextlib.suppress(RuntimeFailure):
                    self.cgroups.thaw(orphan.id, timeout=0.5)
                self.runc.delete(orphan.id)
            for veth in veths:
                for netns in set(netns_of.values()):
                    network.unplug(netns, veth)
            if orphan.kind != "veth":
                self.cgroups.remove(orphan.id)
            if orphan.directory:
                shutil.rmtree(orphan.directory, ignore_errors=True)
            with self._lock:
                self.orphans.pop(orphan.id, None)
            log.warning(
                "orphan purged: kind=%s id=%s",
                orphan.kind,
                orphan.id,
                extra={"part": "instances", "event": "orphan_purged", "ids": orphan.id},
            )
            purged.append(orphan.id)
        return purged

    def _reserve(self, inst: Instance) -> None:
        for iface in inst.interfaces:
            for address in iface.addresses:
                ip = str(ipaddress.ip_interface(address).ip)
                self.addresses[(iface.network, ip)] = inst.name
        if inst.state != "exited":
            self._hold(
                Placed(
                    inst.name, inst.cpus, inst.resources.cpus, inst.resources.memory_mb, inst.labels
                )
            )

    def _hold(self, item: Placed) -> None:
        self.placed[item.name] = item
        self.usage.add(item)

    def _release(self, name: str) -> None:
        for key in [k for k, owner in self.addresses.items() if owner == name]:
            del self.addresses[key]
        item = self.placed.pop(name, None)
        if item is not None:
            self.usage.remove(item)
        self.reserved_names.discard(name)

    # ------------------------------------------------------------------ prepare phase
    def _target(self, template: TemplateSpec) -> int:
        return round(template.pool.size * self.config.pool_scale)

    def _next_job(self) -> TemplateSpec | None:
        """The template whose pool needs a shell, if any (hysteresis: low-water -> target)."""
        now = time.monotonic()
        for name, template in self.templates.items():
            pool = self.pools.setdefault(name, Pool())
            target = self._target(template)
            low = (
                target if template.pool.low_water is None else min(template.pool.low_water, target)
            )
            have = len(pool.ready) + pool.preparing
            if have >= target:
                pool.filling = False
                continue
            if pool.backoff_until > now:
                continue
            recent = now - pool.last_consumed < template.pool.refill_delay_ms / 1000
            if recent and len(pool.ready) >= max(1, target // 2):
                continue  # not urgent: let the request just served finish first
            if have < low and (template.pool.refill or pool.consumed == 0):
                pool.filling = True
            if pool.filling:
                return template
        return None

    def _prepare_loop(self) -> None:
        while True:
            with self._lock:
                template = None
                while not self._stopping:
                    template = self._next_job()
                    if template is not None:
                        self.pools[template.name].preparing += 1
                        break
                    self._wake.wait(timeout=0.02)
                if self._stopping or template is None:
                    return
            shell: Shell | None = None
            error: str | None = None
            try:
                shell = self._prepare_shell(template)
            except Exception as exc:  # a failed prepare must never kill the worker
                error = str(exc)
            self._shell_prepared(template, shell, error)

    def _shell_prepared(
        self, template: TemplateSpec, shell: Shell | None, error: str | None
    ) -> None:
        with self._lock:
            pool = self.pools.setdefault(template.name, Pool())
            pool.preparing -= 1
            wanted = template.name in self.templates
            if shell is None:
                pool.failures += 1
                pool.last_error = error
                pool.backoff_until = time.monotonic() + 1.0
            elif wanted:
                pool.ready.append(shell)
            self._wake.notify_all()
        if shell is not None and not wanted:  # template deleted meanwhile
            self._destroy_shell(shell)

    def _prepare_shell(self, template: TemplateSpec, *, state: str = "ready") -> Shell:
        """Everything common to every instance of ``template``: a running container whose
        launcher waits for its go signal, plugged."""
        shell_id = "fe" + secrets.token_hex(5)
        directory = self.shell_root / shell_id
        ifaces = []
        for index, spec in enumerate(template.interfaces):
            net = self.networks.get(spec.network)
            if net is None:
                raise NetworkNotFound(f"template {template.name}: network {spec.network!r} is gone")
            ifaces.append(ShellIface(spec.name, spec.network, f"{shell_id}i{index}", net.netns))
        shell = Shell(shell_id, template.name, 0, directory, ifaces)
        self.tables.put_shell(shell.info())
        try:
            bundle = directory / "bundle"
            assign = directory / "assign"
            private_dir(directory)
            private_dir(bundle)
            private_dir(assign)
            make_go_fifo(assign)
            config = oci_config(
                template,
                container_id=shell_id,
                rootfs=self.rootfs,
                assign_dir=assign,
                bind_dirs=self.bind_dirs,
                cgroups_path=self.cgroups.runc_path(shell_id),
            )
            write_private(bundle / "config.json", json.dumps(config).encode())
            shell.pid = self.runc.create(shell_id, bundle, directory / "log")
            for iface in ifaces:
                network.plug(self.networks[iface.network], iface.host_ifname, iface.name, shell.pid)
            shell.nl = NetlinkSocket.open_in(f"/proc/{shell.pid}/ns/net")
            shell.nl.link_up(1)
            for iface in ifaces:
                iface.ifindex = shell.nl.link_index(iface.name)
                shell.nl.link_up(iface.ifindex)
            # Release runc init now: it execs the launcher, which blocks on /.fe/go.
            self.runc.start_fast(shell_id, shell.pid)
            shell.state = state
            self.tables.put_shell(shell.info())
        except Exception as exc:
            self._destroy_shell(shell)
            if isinstance(exc, RuntimeFailure | NetworkNotFound):
                raise
            raise RuntimeFailure(f"prepare {template.name}: {exc}") from exc
        return shell

    def _destroy_shell(self, shell: Shell) -> None:
        if shell.nl is not None:
            shell.nl.close()
            shell.nl = None
        self._destroy_container(shell.id, shell.ifaces, shell.directory)
        self.tables.delete_shell(shell.id)

    def _destroy_container(
        self, container_id: str, ifaces: list[ShellIface], directory: Path
    ) -> None:
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
        shutil.rmtree(directory, ignore_errors=True)
        if errors:
            raise RuntimeFailure("; ".join(errors))

    def warm_up(self) -> None:
        """Run the execute phase's pure steps once on dummy data, touching nothing.

        The first request otherwise pays their one-off costs (lazy imports, first calls of
        validators and serialisers) inside its measured window; the daemon calls this at start.
        """
        timer = PhaseTimer()
        request = InstanceRequest.model_validate({"name": "warm-up", "template": "warm-up"})
        encode_assignment(["/bin/true"], {"FLUIDEDGE_INSTANCE": request.name})
        with contextlib.suppress(Exception):
            place_with(
                Request(cpu_request=0.1, memory_mb=16, policy=self.config.placement),
                self.usage,
                self.capacity,
            )
        exe = runc.exe_of(os.getpid())
        _still_starting(exe or "")
        runc.process_running(os.getpid())
        timer.mark("accept")
        inst = Instance(
            name=request.name,
            id="warm-up",
            template=request.template,
            state="running",
            pid=None,
            path="warm",
            cpus=(),
            resources=Resources(),
            interfaces=[],
            labels={},
            timing=timer.milliseconds(),
            created_at=time.time(),
            directory=self.shell_root,
        )
        json.dumps(inst.record())
        inst.view().model_dump_json()

    # ------------------------------------------------------------------ execute phase
    def is_quick(self, request: InstanceRequest) -> bool:
        """Whether ``request`` will take a warm shell and wait at most for the exec."""
        template = self.templates.get(request.template)
        pool = self.pools.get(request.template)
        return (
            template is not None
            and pool is not None
            and bool(pool.ready)
            and not request.cold
            and (not request.wait_ready or template.readiness.kind in ("none", "started"))
        )

    def create_instance(
        self, request: InstanceRequest, started: float | None = None
    ) -> InstanceView:
        timer = PhaseTimer(started)
        with self._lock:
            template = self.templates.get(request.template)
            if template is None:
                raise TemplateNotFound(f"template {request.template!r} does not exist")
            if request.name in self.instances or request.name in self.reserved_names:
                raise NameInUse(f"instance {request.name!r} already exists")
            wanted = {iface.name: iface for iface in template.interfaces}
            for ifname in request.interfaces:
                if ifname not in wanted:
                    raise InterfaceNotFound(
                        f"interfaces.{ifname}: template {template.name} has no interface "
                        f"{ifname!r} (has: {', '.join(wanted) or 'none'})"
                    )
            claims: list[tuple[str, str]] = []
            for ifname, assignment in request.interfaces.items():
                net = self.networks.get(wanted[ifname].network)
                if net is None:
                    raise NetworkNotFound(f"network {wanted[ifname].network!r} is gone")
                for address in assignment.addresses:
                    iface_addr = ipaddress.ip_interface(address)
                    if net.subnet is not None and iface_addr.ip not in ipaddress.ip_network(
                        net.subnet
                    ):
                        raise InvalidRequest(
                            f"interfaces.{ifname}: {address} is outside network {net.name}'s "
                            f"subnet {net.subnet}"
                        )
                    key = (net.name, str(iface_addr.ip))
                    owner = self.addresses.get(key)
                    if owner is not None or key in claims:
                        raise AddressInUse(
                            f"address {iface_addr.ip} is already used on network {net.name}"
                            + (f" by instance {owner}" if owner else "")
                        )
                    claims.append(key)
            try:  # the request alone was checked at the boundary; with the template's env too
                check_assignment(
                    request.command or template.command,
                    workload_env(template.env, request.env, request.name),
                )
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from exc
            resources = template.resources.model_copy(
                update={k: v for k, v in request.resources.model_dump().items() if v is not None}
            )
            cos_cpus = self._cos_cpus(request.cos or template.cos)
            timer.mark("accept")
            cpus = place_with(
                Request(
                    cpu_request=resources.cpus,
                    memory_mb=resources.memory_mb,
                    policy=request.placement or self.config.placement,
                    affinity=request.affinity,
                    anti_affinity=request.anti_affinity,
                    cpus_allowed=cos_cpus,
                ),
                self.usage,
                self.capacity,
            )
            self.reserved_names.add(request.name)
            for key in claims:
                self.addresses[key] = request.name
            self._hold(
                Placed(request.name, cpus, resources.cpus, resources.memory_mb, request.labels)
            )
            timer.mark("placement")
            pool = self.pools.setdefault(template.name, Pool())
            shell = None if request.cold or not pool.ready else pool.ready.popleft()
            if shell is not None:
                pool.consumed += 1
                pool.last_consumed = time.monotonic()
        try:
            path: Literal["warm", "cold"] = "warm"
            if shell is None:
                path = "cold"
                shell = self._prepare_shell(template, state="assigned")
            timer.mark("shell")
            return self._execute(request, template, shell, cpus, resources, path, timer)
        except BaseException:
            if self.cos_binder is not None and (request.cos or template.cos):
                with contextlib.suppress(Exception):
                    self.cos_binder.unbind(request.name)
            with self._lock:
                self._release(request.name)
                self.instances.pop(request.name, None)
            if shell is not None:
                with contextlib.suppress(Exception):
                    self._destroy_shell(shell)
                with contextlib.suppress(Exception):
                    self.tables.delete_instance(request.name)
            raise

    def _cos_cpus(self, cos: str | None) -> frozenset[int] | None:
        """Validate a requested class of service; the CPUs placement must stay within."""
        if cos is None:
            return None
        if self.cos_binder is None:
            raise InvalidRequest(f"cos: {cos!r} needs the [cat] part enabled in the daemon")
        cpus = self.cos_binder.check(cos)
        return None if cpus is None else frozenset(cpus)

    def _execute(  # noqa: PLR0917 (one private call site)
        self,
        request: InstanceRequest,
        template: TemplateSpec,
        shell: Shell,
        cpus: tuple[int, ...],
        resources: Resources,
        path: Literal["warm", "cold"],
        timer: PhaseTimer,
    ) -> InstanceView:
        assign = shell.directory / "assign"
        for rel, content in template.files.items():
            target = assign / rel
            for parent in reversed(target.relative_to(assign).parents[:-1]):
                private_dir(assign / parent)
            write_private(target, content.replace("{name}", request.name).encode())
        env = workload_env(template.env, request.env, request.name)
        argv = request.command or template.command
        write_private(assign / "assign", encode_assignment(argv, env))
        self._apply_limits(shell.id, template.resources, resources, cpus)
        interfaces = []
        for iface in shell.ifaces:
            assignment = request.interfaces.get(iface.name)
            interfaces.append(
                InterfaceState(
                    name=iface.name,
                    network=iface.network,
                    host_ifname=iface.host_ifname,
                    addresses=assignment.addresses if assignment else [],
                    gateway=assignment.gateway if assignment else None,
                )
            )
        inst = Instance(
            name=request.name,
            id=shell.id,
            template=template.name,
            state="running",
            pid=shell.pid,
            path=path,
            cpus=cpus,
            resources=resources,
            interfaces=interfaces,
            labels=request.labels,
            timing={},
            created_at=time.time(),
            directory=shell.directory,
            shell_ifaces=shell.ifaces,
            cos=request.cos or template.cos,
        )
        self.tables.claim_shell(shell.id, inst.record())
        if inst.cos is not None and self.cos_binder is not None:
            # The launcher joins the class before it execs the workload (same pid), so the
            # workload and all it forks run in the class from their first instruction.
            self.cos_binder.bind(inst.name, inst.cos, shell.pid)
        timer.mark("config")
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
            raise RuntimeFailure(f"network of {request.name}: {exc}") from exc
        finally:
            if nl is not None:
                nl.close()
                shell.nl = None
        timer.mark("network")
        signal_go(shell.directory / "assign" / GO_FIFO, shell.pid)
        timer.mark("start")
        if request.wait_ready:
            self._wait_ready(template, shell.pid, request.name)
        timer.mark("ready")
        inst.timing = timer.milliseconds()
        with self._lock:
            self.instances[inst.name] = inst
            self.reserved_names.discard(inst.name)
        self.tables.put_instance(inst.record())
        for phase in PHASES:
            self.histograms.observe(
                "fluidedge_instance_phase_seconds",
                inst.timing[phase] / 1000,
                phase=phase,
                path=path,
                template=template.name,
            )
        self.histograms.observe(
            "fluidedge_instance_create_seconds",
            inst.timing["total"] / 1000,
            path=path,
            template=template.name,
        )
        log.info(
            "instance %s created (%s, %.2f ms)",
            inst.name,
            path,
            inst.timing["total"],
            extra={
                "part": "instances",
                "event": "instance_created",
                "ids": f"{inst.name},{inst.id}",
            },
        )
        return inst.view()

    def _apply_limits(
        self, container_id: str, base: Resources, wanted: Resources, cpus: tuple[int, ...]
    ) -> None:
        cg = self.cgroups
        cg.set_cpus(container_id, cpuset_text(cpus))
        if wanted.cpus != base.cpus:
            cg.set_cpu_weight(container_id, wanted.cpus)
        if wanted.cpu_limit != base.cpu_limit:
            cg.set_cpu_limit(container_id, wanted.cpu_limit)
        if wanted.memory_mb != base.memory_mb:
            cg.set_memory(
                container_id, wanted.memory_mb, lowering=wanted.memory_mb < base.memory_mb
            )
        if wanted.pids != base.pids:
            cg.set_pids(container_id, wanted.pids)

    def _wait_ready(self, template: TemplateSpec, pid: int, name: str) -> None:
        check = template.readiness
        if check.kind == "none":
            return
        begin = time.monotonic()
        deadline = begin + check.timeout_s
        # Poll every 50-250 µs for the first 20 ms (an exec or a listen normally lands there,
        # and a coarse step would add up to a whole step to the measured latency), then back
        # off to 1 ms so a slow workload does not keep a core busy.
        delay = 0.00005
        while True:
            if check.kind == "started":
                exe = runc.exe_of(pid)
                if exe is None:
                    raise WorkloadFailed(
                        f"instance {name}: workload exited at start ({self.logs_tail(pid)})"
                    )
                if not _still_starting(exe) and (
                    self.launcher_kind == "c" or not launcher_waiting(pid)
                ):
                    return
            elif not runc.pid_alive(pid) or runc.exe_of(pid) is None:
                raise WorkloadFailed(f"instance {name}: workload exited before it was ready")
            elif _probe(check.kind, pid, check.port, check.path):
                return
            if time.monotonic() > deadline:
                raise ReadinessTimeout(
                    f"instance {name}: not ready ({check.kind}) within {check.timeout_s} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.00025 if time.monotonic() - begin < 0.02 else 0.001)

    def logs_tail(self, pid: int) -> str:
        del pid
        return "see logs"

    # ------------------------------------------------------------------ instance operations
    def get_instance(self, name: str) -> Instance:
        inst = self.instances.get(name)
        if inst is None:
            raise InstanceNotFound(f"instance {name!r} does not exist")
        return inst

    def list_instances(self) -> list[InstanceView]:
        with self._lock:
            items = list(self.instances.values())
        return [inst.view() for inst in sorted(items, key=lambda i: i.name)]

    def pause(self, name: str, *, timeout: float = runc.FREEZER_TIMEOUT) -> InstanceView:
        """Freeze the instance; :class:`FreezerBusy` if the cgroup is not frozen in ``timeout``
        (the instance stays "running" and the call may be repeated)."""
        return self._freezer_transition(name, frozen=True, timeout=timeout)

    def resume(self, name: str, *, timeout: float = runc.FREEZER_TIMEOUT) -> InstanceView:
        """Thaw the instance; :class:`FreezerBusy` as for :meth:`pause`."""
        return self._freezer_transition(name, frozen=False, timeout=timeout)

    def _freezer_transition(self, name: str, *, frozen: bool, timeout: float) -> InstanceView:
        before, after, op = (
            ("running", "paused", "pause") if frozen else ("paused", "running", "resume")
        )
        inst = self.get_instance(name)
        with inst.lock:
            if inst.state != before:
                raise WrongState(f"instance {name} is {inst.state}, not {before}")
            begin = time.perf_counter()
            (self.cgroups.freeze if frozen else self.cgroups.thaw)(inst.id, timeout=timeout)
            took = time.perf_counter() - begin
            self.histograms.observe("fluidedge_instance_pause_seconds", took, op=op)
            inst.state = after
            self.tables.put_instance(inst.record())
        return inst.view().model_copy(update={"op_ms": round(took * 1000, 4)})

    def delete_instance(self, name: str) -> None:
        inst = self.get_instance(name)
        self.tables.store.ensure_writable()  # never destroy what the store would still name
        with inst.lock:
            with contextlib.suppress(RuntimeFailure):
                self.cgroups.thaw(inst.id, timeout=0.5)
            self._destroy_container(inst.id, inst.shell_ifaces, inst.directory)
            if inst.cos is not None and self.cos_binder is not None:
                with contextlib.suppress(Exception):
                    self.cos_binder.unbind(name)
            with self._lock:
                self.instances.pop(name, None)
                self._release(name)
            self.tables.delete_instance(name)
        log.info(
            "instance %s deleted",
            name,
            extra={"part": "instances", "event": "instance_deleted", "ids": f"{name},{inst.id}"},
        )

    def logs(self, name: str, limit: int = 65536) -> str:
        inst = self.get_instance(name)
        try:
            with open(inst.directory / "log", "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - limit))
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ templates
    def create_template(self, spec: TemplateSpec) -> TemplateSpec:
        with self._lock:
            if spec.name in self.templates:
                raise NameInUse(f"template {spec.name!r} already exists")
            for iface in spec.interfaces:
                if iface.network not in self.networks:
                    raise NetworkNotFound(
                        f"interfaces.{iface.name}: network {iface.network!r} does not exist"
                    )
            duplicates = spec.duplicate_interfaces()
            if duplicates:
                raise InvalidRequest(
                    f"interfaces: names must be unique ({', '.join(duplicates)} repeated)"
                )
            self.tables.put_template(spec.name, spec.model_dump(), False)
            self.templates[spec.name] = spec
            self.pools.setdefault(spec.name, Pool())
            self._wake.notify_all()
        return spec

    def get_template(self, name: str) -> TemplateSpec:
        template = self.templates.get(name)
        if template is None:
            raise TemplateNotFound(f"template {name!r} does not exist")
        return template

    def delete_template(self, name: str) -> None:
        with self._lock:
            self.get_template(name)
            users = sorted(i.name for i in self.instances.values() if i.template == name)
            users += sorted(n for n in self.reserved_names if n not in users)
            if users:
                raise InUse(f"template {name} is used by instance(s): {', '.join(users[:10])}")
            del self.templates[name]
            self.builtin.discard(name)
            pool = self.pools.pop(name, Pool())
            shells = list(pool.ready)
            self.tables.delete_template(name)
        for shell in shells:
            with contextlib.suppress(RuntimeFailure):
                self._destroy_shell(shell)

    def pool_status(self) -> list[PoolStatus]:
        with self._lock:
            return [
                PoolStatus(
                    template=name,
                    target=self._target(self.templates[name]),
                    ready=len(pool.ready),
                    preparing=pool.preparing,
                    consumed=pool.consumed,
                    failures=pool.failures,
                    last_error=pool.last_error,
                )
                for name, pool in sorted(self.pools.items())
                if name in self.templates
            ]

    def wait_pools(self, timeout: float = 60.0) -> bool:
        """Block until every pool is at its target (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while time.monotonic() < deadline:
                if all(
                    len(self.pools[n].ready) >= self._target(t) for n, t in self.templates.items()
                ):
                    return True
                self._wake.wait(timeout=0.1)
        return False

    # ------------------------------------------------------------------ networks
    def create_network(self, spec: NetworkSpec) -> NetworkSpec:
        with self._lock:
            if spec.name in self.networks:
                raise NameInUse(f"network {spec.name!r} already exists")
            for other in self.networks.values():
                if other.bridge == spec.bridge and other.netns == spec.netns:
                    raise NameInUse(f"bridge {spec.bridge} is already network {other.name}")
            managed = network.ensure_bridge(spec)
            self.networks[spec.name] = spec
            if managed:
                self.managed_networks.add(spec.name)
            self.tables.put_network(spec.name, spec.model_dump(), managed)
        return spec

    def get_network(self, name: str) -> NetworkSpec:
        spec = self.networks.get(name)
        if spec is None:
            raise NetworkNotFound(f"network {name!r} does not exist")
        return spec

    def delete_network(self, name: str) -> None:
        with self._lock:
            spec = self.get_network(name)
            users = sorted(
                t.name
                for t in self.templates.values()
                if any(i.network == name for i in t.interfaces)
            )
            if users:
                raise InUse(f"network {name} is used by template(s): {', '.join(users)}")
            if name in self.managed_networks:
                network.delete_bridge(spec)
                self.managed_networks.discard(name)
            del self.networks[name]
            self.tables.delete_network(name)

    def stats(self) -> dict[str, Any]:
        """What ``GET /v1/stats`` says: the host modes the manager runs in, and counts."""
        with self._lock:
            states: dict[str, int] = {}
            for inst in self.instances.values():
                states[inst.state] = states.get(inst.state, 0) + 1
            shells = sum(len(p.ready) for p in self.pools.values())
        return {
            "cgroup": self.cgroups.describe(),
            "runtime": {
                "name": self.config.runtime,
                "binary": self.runc.binary,
                "root": str(self.runc.root),
            },
            "launcher": self.launcher_kind,
            "instances": states,
            "pooled_shells": shells,
        }

    def metrics(self) -> str:
        lines = []
        with self._lock:
            states: dict[str, int] = {}
            for inst in self.instances.values():
                states[inst.state] = states.get(inst.state, 0) + 1
            pools = [(n, len(p.ready), p.preparing, p.consumed) for n, p in self.pools.items()]
        lines.append("# TYPE fluidedge_instances gauge")
        for state, count in sorted(states.items()):
            lines.append(f'fluidedge_instances{{state="{state}"}} {count}')
        lines.append("# HELP fluidedge_orphans resources of ours the store does not know (kept)")
        lines.append("# TYPE fluidedge_orphans gauge")
        lines.append(f"fluidedge_orphans {len(self.orphans)}")
        lines.append("# TYPE fluidedge_pool_ready gauge")
        for name, ready, _, _ in pools:
            lines.append(f'fluidedge_pool_ready{{template="{name}"}} {ready}')
        lines.append("# TYPE fluidedge_pool_consumed_total counter")
        for name, _, _, consumed in pools:
            lines.append(f'fluidedge_pool_consumed_total{{template="{name}"}} {consumed}')
        return "\n".join(lines) + "\n" + self.histograms.render()
