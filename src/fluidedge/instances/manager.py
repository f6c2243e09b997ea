"""The instance manager: composes pools, shells, the catalog and re-adoption into one part.

Split toolstack (seed §5.4.3). The *prepare* phase runs in background worker threads and keeps,
per template, ``pool.size`` shells (:mod:`~fluidedge.instances.shell` builds them, the pure
:mod:`~fluidedge.instances.pool` policy says which pool to fill next). The *execute* phase of a
request (:meth:`Manager.create_instance`) only does what is specific to the instance:
placement, taking a shell, writing the assignment and per-request limits, adding addresses,
signalling the launcher, waiting for readiness, each phase timed (seed §3). An empty pool falls
back to the *cold* path (the same prepare work inline), reported as ``path = "cold"``. A request
that fails at any step is rolled back whole: its reservations (name, addresses, CPUs, memory)
are released, its shell destroyed and its row deleted.

Module map of the manager: :mod:`~fluidedge.instances.config` (the config table),
:mod:`~fluidedge.instances.records` (shells and instances and their rows),
:mod:`~fluidedge.instances.pool` (refill policy), :mod:`~fluidedge.instances.shell` (the
containers' I/O, the seam of the unit tests), :mod:`~fluidedge.instances.readiness`,
:mod:`~fluidedge.instances.catalog` (templates, networks), :mod:`~fluidedge.instances.reconcile`
(re-adoption, orphans).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from fluidedge.core.paging import keyset_page
from fluidedge.core.store import Store
from fluidedge.errors import FluidedgeError
from fluidedge.instances import cgroups, network, pool, reconcile, runc
from fluidedge.instances.bundle import encode_assignment, workload_env
from fluidedge.instances.catalog import Catalog
from fluidedge.instances.cgroups import FREEZER_TIMEOUT
from fluidedge.instances.config import (
    CosBinder,
    InstancesConfig,
    Placer,
    PortHook,
    capacity_of,
)
from fluidedge.instances.errors import (
    AddressInUse,
    InstanceNotFound,
    InterfaceNotFound,
    InvalidRequest,
    LauncherGone,
    NameInUse,
    NetworkNotFound,
    RuntimeFailure,
    TemplateNotFound,
    WrongState,
)
from fluidedge.instances.images import userns
from fluidedge.instances.images.store import ImageStore
from fluidedge.instances.images.templates import apply_image
from fluidedge.instances.models import (
    InstanceRequest,
    InstanceView,
    InterfaceState,
    NetworkSpec,
    OrphanView,
    PoolStatus,
    Resources,
    TemplateSpec,
    check_assignment,
    check_file_tree,
)
from fluidedge.instances.persist import Tables
from fluidedge.instances.placement import Placed, Request, Usage, place_with
from fluidedge.instances.pool import Pool
from fluidedge.instances.readiness import start_failure
from fluidedge.instances.records import Instance, Shell, ShellIface
from fluidedge.instances.restart import Restarter, exit_fd
from fluidedge.instances.shell import RuncShellIO, ShellIO
from fluidedge.instances.shellwatch import ShellWatch
from fluidedge.instances.timing import PHASES, Histograms, PhaseTimer
from fluidedge.instances.veths import VethLooker
from fluidedge.instances.writer import Writer
from fluidedge.linux import procfs
from fluidedge.ovs import bridges as ovs_bridges

__all__ = [
    "CosBinder",
    "Instance",
    "InstancesConfig",
    "Manager",
    "PortHook",
    "Shell",
    "ShellIface",
]

log = logging.getLogger("fluidedge.instances")

# An idle prepare worker sleeps until notified (or until a back-off or refill delay ends,
# pool.next_due); this bound is only a safety net against a missed notification.
IDLE_WAIT_S = 5.0


def _count_dead(chosen: Pool, shell: Shell) -> None:
    """A pooled shell found dead: counted on its pool, which says so (``GET /v1/pools``)."""
    chosen.failures += 1
    chosen.last_error = f"pooled shell {shell.id}: its launcher had exited"


class Manager:
    """Pools, instances, networks and templates of one daemon.

    ``io`` is the containers' adapter; by default runc (or crun) with this host's cgroups.
    """

    def __init__(
        self,
        config: InstancesConfig,
        store: Store,
        state_dir: Path,
        *,
        io: ShellIO | None = None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.tables = Tables(store)
        self.images = ImageStore(store, state_dir / "images", config.userns_base, userns.RANGE)
        if io is None:
            cg = cgroups.detect(config.cgroup_mode, config.cgroup_parent)
            binary = config.runtime_path or config.runtime
            runc.check_runtime(config.runtime, binary, cg.kind)
            runtime = runc.Runc(state_dir / config.runtime, binary, cg, config.runtime)
            io = RuncShellIO(
                state_dir, runtime, cg, config.launcher, self.images, config.userns_base
            )
        self.io = io
        self.shell_root = state_dir / "shells"
        self.capacity = capacity_of(config)
        self.lock = threading.RLock()
        self.catalog = Catalog(self.tables, self.lock)
        # The catalog's dicts, under the names the API, GUI and tests read.
        self.templates = self.catalog.templates
        self.builtin = self.catalog.builtin
        self.networks = self.catalog.networks
        self.managed_networks = self.catalog.managed_networks
        self.instances: dict[str, Instance] = {}
        self.pools: dict[str, Pool] = {}
        self.addresses: dict[tuple[str, str], str] = {}
        # The same, by holder: releasing one instance's addresses must not scan everybody's.
        self._held_addresses: dict[str, list[tuple[str, str]]] = {}
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
        self._wake = threading.Condition(self.lock)
        self._workers: list[threading.Thread] = []
        self._stopping = False
        # Pooled launchers that exit while they wait are reported here (fluidedge.instances.
        # shellwatch): the pool drops and refills them before a request could take one.
        self._shellwatch: ShellWatch | None = None
        self._veths = VethLooker()
        self.cos_binder: CosBinder | None = None
        # The security-group part, when enabled: filters an instance's interfaces before its
        # workload starts and drops the filters when it goes (see fluidedge.secgroups.part).
        self.port_hook: PortHook | None = None
        # The cluster part, when enabled: runs a creation here or forwards it to another node
        # (fluidedge.cluster.part).
        self.placer: Placer | None = None
        # The limits an ordinary request for a template ends up with (admission's default CPU
        # cap, set by fluidedge.instances.scoping): pooled shells are made with them, so that a
        # warm creation writes no cgroup knob it does not change. None: the template's.
        self.shell_limits: Callable[[Resources], Resources] | None = None
        self.writer = Writer()
        # restart = "always": instances made again when their workload is gone (at start,
        # and on the exit their pidfd reports; fluidedge.instances.restart)
        self.restarter = Restarter(self._restart_now)
        self._exitwatch: ShellWatch | None = None

    # ------------------------------------------------------------------ the runc adapter
    def runc_io(self) -> RuncShellIO:
        """The runc adapter (re-adoption, orphans and tests reach runc and cgroups through it)."""
        if not isinstance(self.io, RuncShellIO):
            raise RuntimeFailure("this manager runs on a test double, not on an OCI runtime")
        return self.io

    @property
    def cgroups(self) -> cgroups.Cgroups:
        return self.runc_io().cgroups

    @property
    def runc(self) -> runc.Runc:
        return self.runc_io().runc

    @property
    def launcher_kind(self) -> str:
        return self.io.launcher_kind

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, background: bool = True) -> None:
        """Load and re-adopt what the store declares; ``background``: then run the pools'
        prepare workers, the exit watches and the restarts of ``restart = "always"``
        instances found gone (off for an offline ``pool purge``, which must not make
        anything it is about to destroy)."""
        self.images.load()
        network.use_state_dir(self.state_dir, self.config.ovs_datapath, self.config.ovn)
        self.io.setup()
        self.catalog.load(self.config.networks, self.config.builtin_templates)
        for name in self.templates:
            self.pools.setdefault(name, Pool())
        reconcile.restore(self)
        if self.port_hook is not None:
            self.port_hook.restored()
        if background:
            self._start_workers()

    def _start_workers(self) -> None:
        self._stopping = False
        self._shellwatch = ShellWatch(self._shell_exited)
        self._shellwatch.start()
        with self.lock:
            pooled = [shell for p in self.pools.values() for shell in p.ready]
        for shell in pooled:  # re-adopted at start
            self._watch_exit(shell)
        if self.restarter.closed:  # started again after a stop
            self.restarter = Restarter(self._restart_now)
        self._exitwatch = ShellWatch(self._instance_exited)
        self._exitwatch.start()
        with self.lock:
            kept = [i for i in self.instances.values() if i.request is not None]
        for inst in kept:
            if inst.state == "exited":  # found gone at start (a reboot): made again now
                self.restarter.schedule(inst.name, inst.id, ran_for=None)
            else:
                self._watch_instance(inst)
        for index in range(self.config.prepare_workers):
            worker = threading.Thread(
                target=self._prepare_loop, name=f"fe-prepare-{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        """Stop the prepare workers; shells and instances stay (re-adopted on next start)."""
        with self.lock:
            self._stopping = True
            self._wake.notify_all()
        for worker in self._workers:
            worker.join(timeout=120)
        self._workers.clear()
        if self._shellwatch is not None:
            self._shellwatch.stop()
            self._shellwatch = None
        self.restarter.close()
        if self._exitwatch is not None:
            self._exitwatch.stop()
            self._exitwatch = None
        self.writer.flush()
        with self.lock:
            for shells in self.pools.values():
                for shell in shells.ready:
                    shell.close()
        self._veths.close()
        network.close_handles()

    def purge(self) -> None:
        """Stop, then destroy every instance, shell and managed bridge (tests, uninstall)."""
        self.stop()
        for name in list(self.instances):
            with contextlib.suppress(Exception):
                self.delete_instance(name)
        with self.lock:
            shells = [s for p in self.pools.values() for s in p.ready]
            for p in self.pools.values():
                p.ready.clear()
        for shell in shells:
            with contextlib.suppress(Exception):
                self.destroy_shell(shell)
        with contextlib.suppress(Exception):
            self.purge_orphans()
        self.catalog.delete_managed_bridges()
        network.close_handles()

    # ------------------------------------------------------------------ reservations
    def reserve(self, inst: Instance) -> None:
        """Hold a re-adopted instance's addresses (and CPUs/memory unless it exited)."""
        for iface in inst.interfaces:
            for address in iface.addresses:
                ip = str(ipaddress.ip_interface(address).ip)
                self._hold_address((iface.network, ip), inst.name)
        if inst.state != "exited":
            self._hold(
                Placed(
                    inst.name, inst.cpus, inst.resources.cpus, inst.resources.memory_mb, inst.labels
                )
            )

    def _hold_address(self, key: tuple[str, str], name: str) -> None:
        self.addresses[key] = name
        self._held_addresses.setdefault(name, []).append(key)

    def _hold(self, item: Placed) -> None:
        self.placed[item.name] = item
        self.usage.add(item)

    def _wake_workers(self) -> None:
        with self.lock:
            self._wake.notify_all()

    def _release(self, name: str) -> None:
        for key in self._held_addresses.pop(name, ()):
            if self.addresses.get(key) == name:
                del self.addresses[key]
        item = self.placed.pop(name, None)
        if item is not None:
            self.usage.remove(item)
        self.reserved_names.discard(name)

    # ------------------------------------------------------------------ orphans
    def list_orphans(self) -> list[OrphanView]:
        with self.lock:
            return sorted(self.orphans.values(), key=lambda o: o.id)

    def purge_orphans(self, ids: list[str] | None = None) -> list[str]:
        """Destroy orphans (all, or those named): their container, veths, cgroups, directory."""
        return reconcile.purge_orphans(self, ids)

    # ------------------------------------------------------------------ prepare phase
    def _target(self, template: TemplateSpec) -> int:
        return pool.target(template, self.config.pool_scale)

    def _prepare_loop(self) -> None:
        while True:
            with self.lock:
                template = None
                pin = 0
                while not self._stopping:
                    template = pool.next_job(
                        self.templates, self.pools, self.config.pool_scale, time.monotonic()
                    )
                    if template is not None:
                        pin = pool.pin_for(self.pools[template.name], self.capacity.cpus)
                        pool.start_job(self.pools[template.name], pin)
                        break
                    self._wake.wait(timeout=self._idle_timeout())
                if self._stopping or template is None:
                    return
            shell: Shell | None = None
            error: str | None = None
            try:
                shell = self.prepare_shell(template, cpus=(pin,))
            except Exception as exc:  # a failed prepare must never kill the worker
                error = str(exc)
            self._shell_prepared(template, shell, error, pin)

    def _idle_timeout(self) -> float:
        """How long an idle worker sleeps (lock held): until :func:`pool.next_due` if time alone
        may give it a job, else until notified (a shell taken or prepared, a template added or
        deleted, stop), with :data:`IDLE_WAIT_S` as a safety net only."""
        now = time.monotonic()
        due = pool.next_due(self.templates, self.pools, self.config.pool_scale, now)
        return IDLE_WAIT_S if due is None else min(IDLE_WAIT_S, max(due - now, 0.0))

    def _watch_exit(self, shell: Shell) -> None:
        """Have the watch report the pooled ``shell``'s launcher exit (outside the lock)."""
        if self._shellwatch is None:
            return
        try:
            fd = self.io.exit_fd(shell)
        except ProcessLookupError as exc:  # gone already
            log.info("instances: pooled shell %s: %s", shell.id, exc)
            self._shell_exited(shell.id)
            return
        except OSError as exc:  # e.g. out of descriptors: the take's own look still guards
            log.warning("instances: pooled shell %s not watched: %s", shell.id, exc)
            return
        if fd is None:
            return
        self._shellwatch.watch(shell.id, fd)
        with self.lock:  # a request may have taken it before the watch was set
            pooled = any(s is shell for p in self.pools.values() for s in p.ready)
        if not pooled:
            self._shellwatch.unwatch(shell.id)

    def _shell_exited(self, shell_id: str) -> None:
        """A pooled shell's launcher exited (the watch's report): out of its pool, destroyed;
        the pool refills as after a take. A shell a request took meanwhile is not the pool's."""
        gone: list[Shell] = []
        with self.lock:
            for chosen in self.pools.values():
                for shell in chosen.ready:
                    if shell.id == shell_id:
                        chosen.ready.remove(shell)
                        _count_dead(chosen, shell)
                        gone.append(shell)
                        break
            if gone:
                self._wake.notify_all()
        self._discard_dead(gone)

    def _shell_prepared(
        self, template: TemplateSpec, shell: Shell | None, error: str | None, pin: int
    ) -> None:
        with self.lock:
            kept = pool.finish_job(
                self.pools.setdefault(template.name, Pool()),
                shell,
                error,
                keep=template.name in self.templates,
                now=time.monotonic(),
                pin=pin,
            )
            self._wake.notify_all()
        if shell is not None and not kept:  # template deleted meanwhile
            self.destroy_shell(shell)
        elif shell is not None:
            self._watch_exit(shell)

    def prepare_shell(
        self,
        template: TemplateSpec,
        *,
        state: str = "ready",
        cpus: tuple[int, ...] = (),
        shell_id: str | None = None,
    ) -> Shell:
        """Everything common to every instance of ``template``: a running container whose
        launcher waits for its go signal, plugged, pinned to ``cpus`` if given. Its row is
        stored before anything runs. ``shell_id``: the id of an instance made again (restart),
        whose container is gone; a new one otherwise."""
        shell_id = shell_id or "fe" + secrets.token_hex(5)
        limits = template.resources
        if self.shell_limits is not None:
            limits = self.shell_limits(limits)
        ifaces = []
        for index, spec in enumerate(template.interfaces):
            net = self.networks.get(spec.network)
            if net is None:
                raise NetworkNotFound(f"template {template.name}: network {spec.network!r} is gone")
            ifaces.append(ShellIface(spec.name, spec.network, f"{shell_id}i{index}", net.netns))
        shell = Shell(
            shell_id,
            template.name,
            0,
            self.shell_root / shell_id,
            ifaces,
            cpus=cpus,
            token=secrets.token_hex(16),
            base=None if limits == template.resources else limits,
        )
        self.tables.put_shell(shell.info())
        try:
            built = template
            if shell.base is not None:
                built = template.model_copy(update={"resources": shell.base})
            self.io.build(shell, built, self.networks)
            shell.state = state
            self.tables.put_shell(shell.info())
        except Exception as exc:
            self.destroy_shell(shell)
            if isinstance(exc, RuntimeFailure | NetworkNotFound):
                raise
            raise RuntimeFailure(f"prepare {template.name}: {exc}") from exc
        return shell

    def destroy_shell(self, shell: Shell) -> None:
        shell.close()
        self.io.destroy(shell.id, shell.ifaces, shell.directory)
        self.tables.delete_shell(shell.id)

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
        start_failure(b"")
        procfs.process_running(os.getpid())
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
        shells = self.pools.get(request.template)
        return (
            template is not None
            and shells is not None
            and bool(shells.ready)
            and not request.cold
            and (not request.wait_ready or template.readiness.kind in ("none", "started"))
        )

    def _admit(
        self, request: InstanceRequest, restarting: Instance | None = None
    ) -> tuple[TemplateSpec, list[tuple[str, str]]]:
        """Check ``request`` against the template, networks and addresses in use (lock held);
        the address keys it claims. ``restarting``: the instance it makes again, whose name
        it keeps."""
        template = self.templates.get(request.template)
        if template is None:
            raise TemplateNotFound(f"template {request.template!r} does not exist")
        taken = self.instances.get(request.name)
        if (taken is not None and taken is not restarting) or request.name in self.reserved_names:
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
                if net.subnet is not None and iface_addr.ip not in ipaddress.ip_network(net.subnet):
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
        try:  # the request alone was checked at the boundary; with the template's too
            check_assignment(
                request.command or template.command,
                workload_env(template.env, request.env, request.name),
            )
            check_file_tree([*template.files, *request.files])
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        return template, claims

    def create_instance(
        self,
        request: InstanceRequest,
        started: float | None = None,
        *,
        durable: bool = True,
        after_answer: list[Callable[[], None]] | None = None,
        restarting: Instance | None = None,
    ) -> InstanceView:
        """Create an instance (from the template's warm pool when it holds a shell).

        The claim of the shell is committed before the workload starts, always; with
        ``durable`` (the default) its flush to disk overlaps the start and is waited for
        before returning, so a returned instance survives power loss. ``durable=False`` (the
        superfluid controller's on-demand instances) skips that flush: the claim survives a
        kill -9 of the daemon (the restart re-adopts the instance), not a power loss, which the
        instance does not survive either (and the controller re-creates on-demand instances on
        the next packet).

        ``after_answer``: the caller answers someone (the API) and runs what this appends once
        the answer is out (the new instance's cgroup leaving the idle class it was started in,
        :data:`fluidedge.instances.shell.IDLE_START`); without it, that runs before returning.

        ``restarting``: the instance (gone, its holds released) this makes again with its id
        (:meth:`_restart_now`; ``request.cold``).
        """
        timer = PhaseTimer(started)
        with self.lock:
            template, claims = self._admit(request, restarting)
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
                self._hold_address(key, request.name)
            self._hold(
                Placed(request.name, cpus, resources.cpus, resources.memory_mb, request.labels)
            )
            timer.mark("placement")
            shell, dead = self._take_live(template.name, request.cold, cpus)
            if shell is not None and not dead and after_answer is not None:
                # A worker refills the pool once the answer is out: woken now, its look at the
                # pools would compete with this request for the GIL (the refill waits anyway).
                after_answer.append(self._wake_workers)
            elif shell is not None or dead:
                self._wake.notify_all()  # a worker refills the pool (now or after its delay)
        self._discard_dead(dead)
        try:
            path: Literal["warm", "cold"] = "warm"
            if shell is None:
                path = "cold"
                shell = self.prepare_shell(
                    template,
                    state="assigned",
                    cpus=cpus,
                    shell_id=restarting.id if restarting is not None else None,
                )
            timer.mark("shell")
            return self._execute(
                request,
                template,
                shell,
                cpus,
                resources,
                path,
                timer,
                durable=durable,
                after_answer=after_answer,
                restarting=restarting,
            )
        except LauncherGone as exc:
            self._roll_back(request, template, shell, restarting)
            if path == "cold" or request.cold:
                raise
            # The shell died between the take's look and its go: the request is not the
            # shell's to fail. Once more on the cold path (a fresh shell of its own).
            log.warning(
                "instances: %s: a pooled shell died before its go (%s); cold path",
                request.name,
                exc,
            )
            return self.create_instance(
                request.model_copy(update={"cold": True}),
                started,
                durable=durable,
                after_answer=after_answer,
            )
        except BaseException:
            self._roll_back(request, template, shell, restarting)
            raise

    def _take_live(
        self, template: str, cold: bool, cpus: tuple[int, ...]
    ) -> tuple[Shell | None, list[Shell]]:
        """A ready shell whose launcher still waits (None: the cold path), and the pooled
        shells found dead on the way (under the lock; one ``/proc`` read per shell)."""
        chosen = self.pools.setdefault(template, Pool())
        dead: list[Shell] = []
        while True:
            shell = pool.take(chosen, cold=cold, now=time.monotonic(), cpus=cpus)
            if shell is None:
                return shell, dead
            # the request's now, dead or alive: its watch says which, else /proc does
            alive = None if self._shellwatch is None else self._shellwatch.take(shell.id)
            if alive or (alive is None and self.io.alive(shell)):
                return shell, dead
            dead.append(shell)
            _count_dead(chosen, shell)

    def _discard_dead(self, dead: list[Shell]) -> None:
        """Remove pooled shells whose launcher died while they waited (logged: something
        killed them, or tore their container down)."""
        for shell in dead:
            log.warning(
                "instances: pooled shell %s (pid %d) had exited; discarded: %s",
                shell.id,
                shell.pid,
                runc.log_tail(shell.directory / "log", 300),
            )
            try:
                self.destroy_shell(shell)  # its row last
            except Exception:  # what is left of it is an orphan; its row must not stay pooled
                with contextlib.suppress(Exception):
                    self.tables.delete_shell(shell.id)

    def _roll_back(
        self,
        request: InstanceRequest,
        template: TemplateSpec,
        shell: Shell | None,
        restarting: Instance | None = None,
    ) -> None:
        """Undo a failed request: class of service, reservations, its shell and its row. A
        failed restart leaves the instance as it was: exited, declared, its settings kept."""
        if self.cos_binder is not None and (request.cos or template.cos):
            with contextlib.suppress(Exception):
                self.cos_binder.unbind(request.name)
        if self.port_hook is not None and restarting is None:
            with contextlib.suppress(Exception):
                self.port_hook.ports_down(request.name)
        with self.lock:
            self._release(request.name)
            if restarting is None:
                self.instances.pop(request.name, None)
            elif self.instances.get(request.name) is restarting:
                self.reserve(restarting)
        if shell is not None:
            with contextlib.suppress(Exception):
                self.destroy_shell(shell)
            with contextlib.suppress(Exception):
                if restarting is None:
                    self.tables.delete_instance(request.name)
                else:  # the claim wrote the new record over it
                    self.tables.put_instance(restarting.record())

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
        *,
        durable: bool = True,
        after_answer: list[Callable[[], None]] | None = None,
        restarting: Instance | None = None,
    ) -> InstanceView:
        files = {rel: text.replace("{name}", request.name) for rel, text in template.files.items()}
        files.update(request.files)
        env = workload_env(template.env, request.env, request.name)
        argv = request.command or template.command
        encoded = encode_assignment(argv, env)
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
            token=shell.token,
        )
        if restarting is not None:
            inst.request, inst.restarts = restarting.request, restarting.restarts + 1
        elif (request.restart or template.restart) == "always":
            # what makes it again (fluidedge.instances.restart), in its row
            inst.request = {
                **request.model_dump(mode="json", exclude={"cold"}),
                "restart": "always",
            }
        # The claim is committed before the launcher is released (a kill -9 from then on
        # re-adopts the instance) but not flushed: its flush to disk (durable) is made while
        # the launcher execs the workload, in this thread (another thread would contend for
        # the GIL with the config work), before the instance is returned.
        self.tables.claim_shell(shell.id, inst.record(), False)
        self.io.configure(shell, files, encoded, shell.base or template.resources, resources, cpus)
        if inst.cos is not None and self.cos_binder is not None:
            # The launcher joins the class before it execs the workload (same pid), so the
            # workload and all it forks run in the class from their first instruction.
            self.cos_binder.bind(inst.name, inst.cos, shell.pid)
        timer.mark("config")
        self.io.address(shell, interfaces)
        for state in interfaces:  # the addresses may have been another instance's
            spec = self.networks.get(state.network)
            if spec is not None and state.addresses:
                self.io.forget_neighbours(spec, state.addresses)
        if self.port_hook is not None:
            if restarting is None:
                self.port_hook.ports_up(inst, request, template)
            else:  # the stored settings: a change made since its creation holds
                self.port_hook.ports_up(inst, None, None)
        timer.mark("network")
        # The launcher's report of its exec is waited for (and the exec therefore seen).
        watched = request.wait_ready and template.readiness.kind != "none"
        watch = self.io.release(shell, watch=watched)
        timer.mark("start")
        try:
            if durable:  # a failed flush raises: rolled back, never answered as created
                self.tables.store.sync()
            timer.mark("durable")
        except BaseException:
            if watch is not None:
                watch.close()
            raise
        if request.wait_ready:
            self.io.wait_ready(template.readiness, shell.pid, request.name, watch)
        timer.mark("ready")
        inst.timing = timer.milliseconds()
        with self.lock:
            self.instances[inst.name] = inst
            self.reserved_names.discard(inst.name)
        # What only follows the creation (the idle class left, the timing stored, metrics and
        # the log line): after the answer when the caller answers someone.
        follow_ups = [functools.partial(self._created, inst, template.name, path)]
        if inst.request is not None:
            follow_ups.append(functools.partial(self._watch_instance, inst))
        if shell.idle:
            follow_ups.insert(0, functools.partial(self.io.answered, shell.id, resources.cpus))
        if after_answer is None:
            for call in follow_ups:
                call()
        else:
            after_answer.extend(follow_ups)
        # Its exec (or port) was just seen: no /proc read to say it runs.
        return inst.view(alive=watched)

    def _created(self, inst: Instance, template: str, path: str) -> None:
        """The follow-ups of a creation: its timing stored, its histograms, its log line."""
        # The timing only; a follow-up a crash may lose: no fsync (claims never wait for one).
        self.writer.defer(self.tables.update_instance, inst.record(), False)
        for phase in PHASES:
            self.histograms.observe(
                "fluidedge_instance_phase_seconds",
                inst.timing[phase] / 1000,
                phase=phase,
                path=path,
                template=template,
            )
        self.histograms.observe(
            "fluidedge_instance_create_seconds",
            inst.timing["total"] / 1000,
            path=path,
            template=template,
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

    # ------------------------------------------------------------------ networks kept whole
    def bridge_ports(self) -> dict[str, list[tuple[str, bool]]]:
        """Network -> (host end, isolated) of every veth of ours on it: the instances' and
        the pooled shells' (a shell being prepared plugs itself, or fails and is retried)."""
        with self.lock:
            owners = [(inst.template, inst.shell_ifaces) for inst in self.instances.values()]
            owners += [(s.template, s.ifaces) for p in self.pools.values() for s in p.ready]
        out: dict[str, list[tuple[str, bool]]] = {}
        for template_name, ifaces in owners:
            template = self.templates.get(template_name)
            isolated = {i.name: i.isolated for i in template.interfaces} if template else {}
            for iface in ifaces:
                out.setdefault(iface.network, []).append(
                    (iface.host_ifname, isolated.get(iface.name, False))
                )
        return out

    def revive_bridges(self) -> list[str]:
        """The ``linuxbridge`` networks whose bridge was deleted from outside, created again
        with their ports (:func:`fluidedge.instances.network.revive_bridge`, which logs it);
        the part calls it every ``switch_check_interval_s``."""
        missing = [spec for spec in list(self.networks.values()) if network.bridge_missing(spec)]
        if not missing:  # the common case: no walk over every instance and shell
            return []
        ports = self.bridge_ports()
        return [
            spec.name
            for spec in missing
            if network.revive_bridge(spec, ports.get(spec.name, [])) is not None
        ]

    def keep_networks(self) -> None:
        """Every ``switch_check_interval_s`` (the part): the bridges deleted from outside
        (:meth:`revive_bridges`), the networks whose switch could not be made until now
        (:meth:`fluidedge.instances.catalog.Catalog.retry_unavailable`), then the veths
        (:meth:`revive_veths`)."""
        self.revive_bridges()
        self.catalog.retry_unavailable()
        self.revive_veths()

    def revive_veths(self) -> list[str]:
        """The veths of ours deleted from outside since the last call (one look at the
        kernel's announcements per namespace: :class:`fluidedge.instances.veths.VethLooker`):
        an instance's is made again as it was (its name, MAC, addresses and default route; its
        switch port, filters and chains are the name's), a pooled shell is discarded (its pool
        makes another). The host ends made again."""
        with self.lock:
            instances = list(self.instances.values())
            pooled = [s for p in self.pools.values() for s in p.ready]
        owned = [(i.netns, i.host_ifname) for inst in instances for i in inst.shell_ifaces]
        owned += [(i.netns, i.host_ifname) for shell in pooled for i in shell.ifaces]
        if not owned:
            return []
        missing = self._veths.missing(owned)
        if not missing:
            return []
        revived = []
        for inst in instances:
            for iface in inst.shell_ifaces:
                if (iface.netns, iface.host_ifname) in missing and self._revive_veth(inst, iface):
                    revived.append(iface.host_ifname)
        lost = [s for s in pooled if any((i.netns, i.host_ifname) in missing for i in s.ifaces)]
        if lost:
            with self.lock:  # taken by no request from here on (one taken meanwhile is not)
                taken = [s for s in lost if s not in self.pools.get(s.template, Pool()).ready]
                lost = [s for s in lost if s not in taken]
                for shell in lost:
                    self.pools[shell.template].ready.remove(shell)
                self._wake.notify_all()
            for shell in lost:
                log.warning(
                    "instances: pooled shell %s lost a veth (deleted from outside); discarded",
                    shell.id,
                )
                try:
                    self.destroy_shell(shell)
                except Exception:  # what is left of it is an orphan; its row must not stay
                    with contextlib.suppress(Exception):
                        self.tables.delete_shell(shell.id)
        return revived

    def _revive_veth(self, inst: Instance, iface: ShellIface) -> bool:
        """Make ``inst``'s veth ``iface`` again unless the instance went meanwhile (its lock:
        a deletion unplugs under it) or its process is no longer there."""
        with inst.lock:
            with self.lock:
                if self.instances.get(inst.name) is not inst:
                    return False
            spec = self.networks.get(iface.network)
            if spec is None or network.link_exists(iface.netns, iface.host_ifname):
                return False
            template = self.templates.get(inst.template)
            isolated = any(
                t.name == iface.name and t.isolated
                for t in (template.interfaces if template else [])
            )
            state = next((s for s in inst.interfaces if s.name == iface.name), None)
            if inst.pid is None or not self.io.revive_veth(
                inst.id, inst.pid, spec, iface, state, isolated=isolated
            ):
                return False
        log.error(
            "instances: instance %s: veth %s (%s on network %s) was deleted from outside; "
            "made again",
            inst.name,
            iface.host_ifname,
            iface.name,
            iface.network,
            extra={"part": "instances", "event": "veth_revived", "ids": inst.name},
        )
        return True

    # ------------------------------------------------------------------ instance operations
    def get_instance(self, name: str) -> Instance:
        inst = self.instances.get(name)
        if inst is None:
            raise InstanceNotFound(f"instance {name!r} does not exist")
        return inst

    def list_instances(self) -> list[InstanceView]:
        return self.instance_page()[0]

    def instance_page(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        visible: Callable[[str], bool] | None = None,
    ) -> tuple[list[InstanceView], str | None]:
        """(the views of the instances named after ``after``, by name, at most ``limit``;
        the next page's marker or None), of those ``visible`` keeps (by name). Only the page's
        instances are viewed (see :mod:`fluidedge.core.paging`)."""
        items = self._kept(None if visible is None else lambda inst: visible(inst.name))
        page, marker = keyset_page(items, _instance_name, after, limit)
        return [inst.view() for inst in page], marker

    def instance_slice(
        self, offset: int, size: int, keep: Callable[[Instance], bool] | None = None
    ) -> tuple[int, list[InstanceView]]:
        """(how many instances ``keep`` keeps; the views of ``size`` of them from ``offset``,
        by name): numbered pages, for the GUI."""
        items = self._kept(keep)
        items.sort(key=_instance_name)
        return len(items), [inst.view() for inst in items[offset : offset + size]]

    def state_counts(self, keep: Callable[[Instance], bool] | None = None) -> dict[str, int]:
        """{state: how many instances are in it} (:meth:`Instance.current_state`) of those
        ``keep`` keeps, without building their views."""
        counts: dict[str, int] = {}
        for inst in self._kept(keep):
            state = inst.current_state()
            counts[state] = counts.get(state, 0) + 1
        return counts

    def _kept(self, keep: Callable[[Instance], bool] | None) -> list[Instance]:
        with self.lock:
            items = list(self.instances.values())
        return items if keep is None else [inst for inst in items if keep(inst)]

    def pause(
        self,
        name: str,
        *,
        timeout: float = FREEZER_TIMEOUT,
        after_answer: list[Callable[[], None]] | None = None,
    ) -> InstanceView:
        """Freeze the instance; :class:`FreezerBusy` if the cgroup is not frozen in ``timeout``
        (the instance stays "running" and the call may be repeated). ``after_answer``: as for
        :meth:`create_instance` (the metrics and the row's new state follow the answer)."""
        return self._freezer_transition(name, True, timeout, after_answer)

    def resume(
        self,
        name: str,
        *,
        timeout: float = FREEZER_TIMEOUT,
        after_answer: list[Callable[[], None]] | None = None,
    ) -> InstanceView:
        """Thaw the instance; :class:`FreezerBusy` and ``after_answer`` as for :meth:`pause`."""
        return self._freezer_transition(name, False, timeout, after_answer)

    def _freezer_transition(
        self,
        name: str,
        frozen: bool,
        timeout: float,
        after_answer: list[Callable[[], None]] | None,
    ) -> InstanceView:
        before, after, op = (
            ("running", "paused", "pause") if frozen else ("paused", "running", "resume")
        )
        inst = self.get_instance(name)
        with inst.lock:
            if inst.state != before:
                raise WrongState(f"instance {name} is {inst.state}, not {before}")
            begin = time.perf_counter()
            (self.io.freeze if frozen else self.io.thaw)(inst.id, timeout=timeout)
            took = time.perf_counter() - begin
            inst.state = after
        follow_up = functools.partial(self._transitioned, inst, op, took)
        if after_answer is None:
            follow_up()
        else:
            after_answer.append(follow_up)
        return inst.view().model_copy(update={"op_ms": round(took * 1000, 4)})

    def _transitioned(self, inst: Instance, op: str, took: float) -> None:
        """The follow-ups of a pause or resume: its histogram, the row's new state."""
        self.histograms.observe("fluidedge_instance_pause_seconds", took, op=op)
        # The freezer is the truth (re-adoption reads it): the row follows, off the path; the
        # state written is the latest (a later transition's follow-up writes its own after).
        with inst.lock:
            record = inst.record()
        self.writer.defer(self.tables.update_instance, record, False)

    # ------------------------------------------------------------------ restart = "always"
    def _watch_instance(self, inst: Instance) -> None:
        """Have the exit watch report ``inst``'s workload exit (restart = "always"), under
        its name: the instance is then one lookup, and its id is checked when it is made
        again (:meth:`_restart_now`)."""
        watch = self._exitwatch
        if watch is None or inst.pid is None:
            return
        try:
            fd = exit_fd(inst.pid)
        except ProcessLookupError:  # gone already: made again like one that exits now
            self._instance_exited(inst.name)
            return
        except OSError as exc:  # e.g. out of descriptors: a restart of the daemon finds it
            log.warning("instances: instance %s: its exit is not watched: %s", inst.name, exc)
            return
        watch.watch(inst.name, fd)
        with self.lock:  # deleted (or replaced) meanwhile: not ours to watch
            current = self.instances.get(inst.name) is inst
        if not current:
            watch.unwatch(inst.name)

    def _instance_exited(self, name: str) -> None:
        """The exit watch's report: an instance whose restart policy is ``always`` lost its
        workload; it is made again after the back-off (:mod:`fluidedge.instances.restart`)."""
        with self.lock:
            inst = self.instances.get(name)
        if inst is None or inst.request is None:
            return
        ran_for = max(0.0, time.time() - inst.created_at)
        wait = self.restarter.schedule(inst.name, inst.id, ran_for=ran_for)
        log.warning(
            "instances: instance %s: its workload exited after %.1f s; made again in %g s",
            inst.name,
            ran_for,
            wait,
            extra={
                "part": "instances",
                "event": "instance_exited",
                "ids": f"{inst.name},{inst.id}",
            },
        )

    def _restart_now(self, name: str, container_id: str) -> None:
        """Make instance ``name`` again (the restarter's call): what is left of its container
        destroyed, then the cold path with its id and stored request. Nothing is done when it
        was deleted or replaced meanwhile, or its workload runs (or is paused)."""
        with self.lock:
            inst = self.instances.get(name)
        if inst is None or inst.id != container_id or inst.request is None:
            return
        if inst.current_state() != "exited":
            return
        request = InstanceRequest.model_validate({**inst.request, "cold": True})
        with inst.lock:
            with self.lock:
                if self.instances.get(name) is not inst:
                    return
                self._release(name)  # its addresses and placement, taken again below
            with contextlib.suppress(RuntimeFailure):  # absent is fine; a leftover would fail
                self.io.destroy(inst.id, inst.shell_ifaces, inst.directory)
            try:
                made = self.create_instance(request, restarting=inst)
            except FluidedgeError:
                raise
            except Exception as exc:
                raise RuntimeFailure(f"restart of {name}: {exc}") from exc
        log.warning(
            "instances: instance %s made again (restart %d, %.2f ms)",
            name,
            made.restarts,
            made.timing.total,
            extra={"part": "instances", "event": "instance_restarted", "ids": f"{name},{made.id}"},
        )

    def delete_instance(self, name: str) -> None:
        inst = self.get_instance(name)
        self.tables.store.ensure_writable()  # never destroy what the store would still name
        self.restarter.cancel(name)
        if self._exitwatch is not None:
            self._exitwatch.unwatch(name)
        with inst.lock:
            with contextlib.suppress(RuntimeFailure):
                self.io.thaw(inst.id, timeout=0.5)
            self.io.destroy(inst.id, inst.shell_ifaces, inst.directory)
            if self.port_hook is not None:
                self.port_hook.ports_down(name)
            if inst.cos is not None and self.cos_binder is not None:
                with contextlib.suppress(Exception):
                    self.cos_binder.unbind(name)
            with self.lock:
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

    # ------------------------------------------------------------------ templates, networks
    def provide_templates(self, specs: Iterable[TemplateSpec]) -> list[str]:
        """Built-in templates another part ships (the ME platform's example apps), added when
        no template has their name (an operator's own or an earlier start's stays). Every
        tenant may use them, like ``idle`` and ``httpd``. The names added."""
        added = []
        with self.lock:
            for spec in specs:
                if self.catalog.add_builtin(spec):
                    self.pools.setdefault(spec.name, Pool())
                    added.append(spec.name)
            self._wake.notify_all()
        return added

    def create_template(self, spec: TemplateSpec) -> TemplateSpec:
        spec = apply_image(spec, self.images.get(spec.image))
        with self.lock:
            self.images.get(spec.image)  # still there (removals hold this lock)
            self.catalog.create_template(spec)
            self.pools.setdefault(spec.name, Pool())
            self._wake.notify_all()
        if spec.userns_opt_out is not None:
            log.warning(
                "template %s runs without a user namespace: %s",
                spec.name,
                spec.userns_opt_out,
                extra={"part": "instances", "event": "userns_opt_out", "ids": spec.name},
            )
        return spec

    def get_template(self, name: str) -> TemplateSpec:
        return self.catalog.get_template(name)

    def delete_template(self, name: str) -> None:
        with self.lock:
            self.get_template(name)
            users = sorted(i.name for i in self.instances.values() if i.template == name)
            users += sorted(n for n in self.reserved_names if n not in users)
            self.catalog.delete_template(name, users)
            shells = list(self.pools.pop(name, Pool()).ready)
            self._wake.notify_all()
        for shell in shells:
            with contextlib.suppress(RuntimeFailure):
                self.destroy_shell(shell)

    # ------------------------------------------------------------------ images
    def image_users(self, name: str) -> list[str]:
        """Who uses image ``name``: templates naming it, and instances of those."""
        with self.lock:
            templates = sorted(t.name for t in self.templates.values() if t.image == name)
            instances = sorted(i.name for i in self.instances.values() if i.template in templates)
        return [*(f"template {t}" for t in templates), *(f"instance {i}" for i in instances)]

    def remove_image(self, name: str) -> None:
        """Remove image ``name`` unless used (409); under the manager's lock, so no template
        naming it can be created between the check and the removal."""
        with self.lock:
            self.images.remove(name, self.image_users)

    def create_network(self, spec: NetworkSpec) -> NetworkSpec:
        created = self.catalog.create_network(spec)
        if spec.driver == "ovs":
            # Its bridge's creation may have restarted the switch of its namespace, dead
            # meanwhile: the switch's other bridges then hold no flow until revive() puts them
            # back in order. Now, not at the part's next check (which may be off).
            try:
                ovs_bridges.revive()
            except Exception as exc:  # the part's check tries again (when on)
                log.error(
                    "ovs: the restore of the switches after network %s's creation failed: %s",
                    spec.name,
                    exc,
                )
        return created

    def get_network(self, name: str) -> NetworkSpec:
        return self.catalog.get_network(name)

    def delete_network(self, name: str) -> None:
        self.catalog.delete_network(name)

    # ------------------------------------------------------------------ pools, stats
    def pool_status(self) -> list[PoolStatus]:
        with self.lock:
            return [
                PoolStatus(
                    template=name,
                    target=self._target(self.templates[name]),
                    ready=len(p.ready),
                    preparing=p.preparing,
                    consumed=p.consumed,
                    failures=p.failures,
                    last_error=p.last_error,
                )
                for name, p in sorted(self.pools.items())
                if name in self.templates
            ]

    def wait_pools(self, timeout: float = 60.0) -> bool:
        """Block until every pool is at its target (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while time.monotonic() < deadline:
                if pool.full(self.templates, self.pools, self.config.pool_scale):
                    return True
                self._wake.wait(timeout=0.1)
        return False

    def stats(self) -> dict[str, Any]:
        """What ``GET /v1/stats`` says: the host modes the manager runs in, and counts."""
        with self.lock:
            states: dict[str, int] = {}
            for inst in self.instances.values():
                states[inst.state] = states.get(inst.state, 0) + 1
            shells = sum(len(p.ready) for p in self.pools.values())
        return {
            **self.io.describe(),
            "instances": states,
            "pooled_shells": shells,
            # declared networks whose switch could not be made (name -> why)
            "networks_unavailable": dict(self.catalog.unavailable),
            # restart = "always" instances to be made again (name -> seconds until then)
            "restarts_pending": self.restarter.pending(),
        }

    def metrics(self) -> str:
        lines = []
        with self.lock:
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


def _instance_name(inst: Instance) -> str:
    return inst.name
