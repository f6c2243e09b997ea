"""The CAT manager: classes of service, layouts, assignments and monitoring over resctrl.

Declared state (classes and which instance is in which class) lives in the store and is
re-applied at start. The kernel's state is read back for every view (``schemata`` as the kernel
reports it, ``cpus_list``, ``tasks``, ``mon_data``), never cached.

**Layouts are all-or-none.** :meth:`CatManager.apply` validates every class against the host
(:mod:`.layout`: the kernel's own rules and messages), snapshots every group's ``schemata``,
``mode`` and ``cpus_list``, creates the missing groups, writes every ``schemata``, then modes,
then CPU lists. Any failure (our check, or the kernel's ``EINVAL``/``ENOSPC`` with
``last_cmd_status``) removes the groups this call created and writes the snapshots back, so a
layout is never left half-applied.

**Instances join a class by their tasks** (not by CPU). Placement overcommits CPUs (many
instances share a core), so the CPU-based mode, in which a CPU's *default-group* tasks use the
class, would also govern every other task scheduled there; it is only correct with pinned,
exclusive CPUs. Task-based assignment follows the instance wherever it runs: the launcher's pid is
written into the class before the workload is released (the workload is exec'd in the same pid
and everything it forks inherits the class), and a sync thread re-writes every thread of the
instance's cgroup (:mod:`.tasks`) so processes that *join* it later (``runc exec``) are covered
too. The CPU-based mode is there for CPU sets (a class's ``cpus``), and placement pins an
instance that names such a class inside those CPUs, so both mechanisms agree.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from fluidedge.cat import tasks as task_source
from fluidedge.cat.errors import (
    CatConflict,
    CatError,
    CatInputError,
    CatUnprocessable,
    CosNotFound,
    KernelFailure,
    NotSupported,
)
from fluidedge.cat.fs import DEFAULT_MOUNT, ResctrlFS, Support, kernel_error, probe, read_host
from fluidedge.cat.layout import (
    DEFAULT_GROUP,
    MODELS,
    ROUNDING,
    ClassPlan,
    HostInfo,
    check_layout,
    parse_schemata,
    plan_class,
    preset,
    schemata_line,
)
from fluidedge.cat.models import (
    ClassView,
    CosName,
    CosSpec,
    InstanceCos,
    InstanceName,
    LayoutView,
    PresetRequest,
    Status,
    parse_cpus,
)
from fluidedge.cat.persist import Tables
from fluidedge.core.cpus import cpu_list_text, parse_cpu_list
from fluidedge.core.store import Store

log = logging.getLogger("fluidedge.cat")

MON_EVENTS = ("llc_occupancy", "mbm_total_bytes", "mbm_local_bytes")

_INSTANCE: TypeAdapter[str] = TypeAdapter(InstanceName)
_COS: TypeAdapter[str] = TypeAdapter(CosName)


class CatConfig(BaseModel):
    """The ``[cat]`` table of the daemon config."""

    model_config = ConfigDict(extra="forbid")

    mount: Path = Field(default=DEFAULT_MOUNT, description="where resctrl is mounted")
    sync_interval_s: float = Field(
        default=1.0, ge=0.05, le=60, description="how often instance tasks are re-synced"
    )
    monitor_instances: bool = Field(
        default=True, description="a monitoring group per instance (CMT/MBM) where available"
    )


@dataclass
class Binding:
    instance: str
    cos: str
    pid: int | None
    mon_group: bool = False
    notes: list[str] = field(default_factory=list)


def _rel(name: str) -> str:
    return "" if name == DEFAULT_GROUP else name


def _file(name: str, leaf: str) -> str:
    return f"{_rel(name)}/{leaf}".lstrip("/")


def _stored_binding(instance: str, cos: str) -> Binding:
    """An assignment as the store has it, its names checked as the API checks them (they
    become resctrl paths): ValidationError otherwise."""
    return Binding(
        _INSTANCE.validate_python(instance, strict=True),
        _COS.validate_python(cos, strict=True),
        None,
    )


def _stored_spec(data: dict[str, object]) -> CosSpec:
    """A declared class as the store has it. Classes declared before the API's patterns were
    this strict may hold what the old lax checks took (a mask with spaces around it, a CPU list
    like ``0, 3``): they are written the strict way first, with the old parser's reading, so a
    daemon start never fails on what it once accepted."""
    spec = dict(data)
    for key in ("l3", "l2"):
        value = spec.get(key)
        if isinstance(value, str):
            spec[key] = value.strip()
        elif isinstance(value, dict):
            spec[key] = {str(k).strip(): str(v).strip() for k, v in value.items()}
    cpus = spec.get("cpus")
    if isinstance(cpus, str):  # the lax parser took spaces around each number ('0, 1')
        with contextlib.suppress(ValueError):
            spec["cpus"] = cpu_list_text(parse_cpu_list("".join(cpus.split())))
    return CosSpec.model_validate(spec)


class CatManager:
    """Classes of service of one daemon (see the module docstring)."""

    def __init__(
        self,
        config: CatConfig,
        store: Store,
        fs: ResctrlFS,
        *,
        proc: Path = Path("/proc"),
        instance_pid: Callable[[str], int | None] | None = None,
        instance_tasks: Callable[[int], list[int]] = task_source.instance_tasks,
    ) -> None:
        self.config = config
        self.fs = fs
        self.proc = proc
        self.tables = Tables(store)
        # Who knows an instance's live pid (the instance manager). Without it, the pid given
        # at bind time is used, which only tests do: a remembered pid may be reused by an
        # unrelated process once the instance is gone, and its tasks must never be moved.
        self.instance_pid = instance_pid
        self.instance_tasks = instance_tasks
        self.support = Support(False, ("not probed yet",))
        self.host: HostInfo | None = None
        self.classes: dict[str, CosSpec] = {}
        self.notes: dict[str, tuple[str, ...]] = {}
        self.bindings: dict[str, Binding] = {}
        self.last_error: str | None = None
        self.recreated = 0  # classes created again after their deletion from outside
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Probe the host, re-apply the declared classes, re-sync instance tasks."""
        # A stored class or assignment that no longer reads is set aside (kept, named: the
        # store's set-aside rows) and the others load. An assignment whose class is not
        # declared is kept, as the part keeps one: the sync leaves it be until the class is
        # declared again.
        specs, lost = self.tables.stored_classes(_stored_spec)
        self.classes.update((spec.name, spec) for spec in specs)
        bindings, unbound = self.tables.stored_assignments(_stored_binding)
        self.bindings.update((binding.instance, binding) for binding in bindings)
        if lost or unbound:
            what = [f"class {name!r}" for name in lost]
            what += [f"assignment of {name!r}" for name in unbound]
            self.last_error = (
                f"stored {', '.join(what)} no longer read: set aside (fluidedge state set-aside)"
            )
        self.support = probe(self.fs, self.proc)
        if not self.support.supported:
            return  # declared state stays in the store, untouched, for a host that has RDT
        self.host = read_host(self.fs)
        if self.classes:
            try:
                self._apply_specs(list(self.classes.values()), replace=False, persist=False)
            except CatError as exc:
                self.last_error = f"restoring the declared classes: {exc}"
        self.sync()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sync_loop, name="fe-cat-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the sync thread; groups stay (the kernel keeps them, tasks keep their class)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.config.sync_interval_s):
            with contextlib.suppress(Exception):  # a failed tick must never kill the thread
                self.sync()

    def require(self) -> HostInfo:
        if not self.support.supported or self.host is None:
            raise NotSupported(self.support.reason)
        return self.host

    def status(self) -> Status:
        return Status(
            supported=self.support.supported,
            reason=self.support.reason,
            checks=list(self.support.checks),
            mount=str(self.fs.root),
            host=self.host.describe() if self.host is not None else None,
            last_error=self.last_error,
        )

    # ------------------------------------------------------------------ kernel reads
    def _kernel_groups(self) -> list[str]:
        """Control groups present in the mount (ours and anybody else's), root excluded."""
        out = []
        for entry in self.fs.listdir(""):
            if entry in ("info", "mon_groups", "mon_data"):
                continue
            if self.fs.exists(f"{entry}/schemata"):
                out.append(entry)
        return out

    def _read_plan(self, host: HostInfo, name: str) -> ClassPlan:
        """A group as the kernel has it now (for overlap checks against groups we keep)."""
        schemata = parse_schemata(self.fs.read(_file(name, "schemata")))
        cbm = {}
        for resource in host.caches:
            if resource in schemata:
                cbm[resource] = {dom: int(val, 16) for dom, val in schemata[resource].items()}
        mode = self._read(_file(name, "mode"), "shareable")
        return ClassPlan(name=name, cbm=cbm, exclusive=mode == "exclusive")

    def _read(self, rel: str, default: str = "") -> str:
        try:
            return self.fs.read(rel).strip()
        except OSError:
            return default

    # ------------------------------------------------------------------ layouts
    def _plan(self, host: HostInfo, spec: CosSpec) -> ClassPlan:
        cpus = parse_cpus(spec.cpus, f"{spec.name}.cpus") if spec.cpus is not None else None
        return plan_class(
            host, spec.name, l3=spec.l3, l2=spec.l2, mb=spec.mb, exclusive=spec.exclusive, cpus=cpus
        )

    def apply(self, specs: Sequence[CosSpec], *, replace: bool = False) -> list[ClassView]:
        """Apply ``specs`` all-or-none and declare them (see the module docstring)."""
        self.require()
        with self._lock:
            self._apply_specs(list(specs), replace=replace, persist=True)
        return [self.view(s.name) for s in specs]

    def _apply_specs(self, specs: list[CosSpec], *, replace: bool, persist: bool) -> None:
        host = self.require()
        plans = [self._plan(host, spec) for spec in specs]
        named = {p.name for p in plans}
        existing = self._kernel_groups()
        dropped = [n for n in self.classes if replace and n not in named and n != DEFAULT_GROUP]
        others = [self._read_plan(host, g) for g in existing if g not in named and g not in dropped]
        if DEFAULT_GROUP not in named:
            others.append(self._read_plan(host, DEFAULT_GROUP))
        check_layout(host, plans, others)
        for plan in plans:
            if plan.name == DEFAULT_GROUP and plan.cpus is not None:
                raise CatUnprocessable(
                    "default: the default group's CPUs are those no class claims (no cpus)"
                )
        busy = [b.instance for b in self.bindings.values() if b.cos in dropped]
        if busy:
            raise CatConflict(
                f"replace would delete classes used by instance(s): {', '.join(busy)}"
            )
        # Only what this call may change is restored on failure: the groups it names and, when
        # it moves CPUs, our other classes (CPUs move out of them). Foreign groups are left alone.
        touched = {p.name for p in plans if p.name == DEFAULT_GROUP or p.name in existing}
        if any(p.cpus is not None for p in plans):
            touched |= {n for n in self.classes if n == DEFAULT_GROUP or n in existing}
        snapshot = {g: self._snapshot(g) for g in sorted(touched)}
        created: list[str] = []
        try:
            for plan in plans:
                if plan.name != DEFAULT_GROUP and plan.name not in existing:
                    self._call(f"mkdir {plan.name}", self.fs.mkdir, plan.name)
                    created.append(plan.name)
            for plan in plans:
                # A group may be exclusive only once every other group has moved out of its ways.
                if plan.name != DEFAULT_GROUP and not plan.exclusive:
                    self._call(
                        f"{plan.name}/mode", self.fs.write, _file(plan.name, "mode"), "shareable\n"
                    )
            for plan in plans:
                text = plan.schemata_text()
                if text:
                    self._call(
                        f"{plan.name}/schemata", self.fs.write, _file(plan.name, "schemata"), text
                    )
            for plan in plans:
                if plan.exclusive:
                    self._call(
                        f"{plan.name}/mode", self.fs.write, _file(plan.name, "mode"), "exclusive\n"
                    )
            for plan in plans:
                if plan.cpus is not None:
                    self._call(
                        f"{plan.name}/cpus_list",
                        self.fs.write,
                        _file(plan.name, "cpus_list"),
                        cpu_list_text(plan.cpus) + "\n",
                    )
        except CatError as exc:
            self._rollback(created, snapshot, exc)
            raise
        for name in dropped:
            with contextlib.suppress(OSError):
                self.fs.rmdir(name)
            self.classes.pop(name, None)
            self.notes.pop(name, None)
            if persist:
                self.tables.delete_class(name)
        for spec, plan in zip(specs, plans, strict=True):
            self.classes[spec.name] = spec
            self.notes[spec.name] = plan.notes
            if persist:
                self.tables.put_class(spec.name, spec.model_dump())

    def _call(self, what: str, op: Callable[..., None], *args: str) -> None:
        try:
            op(*args)
        except OSError as exc:
            raise kernel_error(self.fs, what, exc) from exc

    def _snapshot(self, name: str) -> dict[str, str]:
        return {
            "schemata": self._read(_file(name, "schemata")),
            "mode": self._read(_file(name, "mode"), "shareable"),
            "cpus_list": self._read(_file(name, "cpus_list")),
        }

    def _rollback(
        self, created: list[str], snapshot: dict[str, dict[str, str]], cause: Exception
    ) -> None:
        problems = []
        for name in reversed(created):
            try:
                self.fs.rmdir(name)
            except OSError as exc:
                problems.append(f"rmdir {name}: {exc.strerror}")
        # Modes first back to shareable, so restoring masks cannot trip an exclusive check.
        for name in snapshot:
            if name != DEFAULT_GROUP and self.fs.exists(_file(name, "mode")):
                with contextlib.suppress(OSError):
                    self.fs.write(_file(name, "mode"), "shareable\n")
        for name, saved in snapshot.items():
            if not self.fs.exists(_file(name, "schemata")):
                continue
            try:
                if saved["schemata"]:
                    self.fs.write(_file(name, "schemata"), saved["schemata"] + "\n")
                if saved["mode"] == "exclusive":
                    self.fs.write(_file(name, "mode"), "exclusive\n")
                if name != DEFAULT_GROUP:
                    self.fs.write(_file(name, "cpus_list"), (saved["cpus_list"] or "") + "\n")
            except OSError as exc:
                problems.append(f"restore {name}: {exc.strerror}")
        if problems:
            raise KernelFailure(
                f"{cause}; and the rollback failed: {'; '.join(problems)}"
            ) from cause

    def apply_preset(self, model: str, request: PresetRequest) -> LayoutView:
        """The seed's ``model`` on this host's cache; ``rest`` is the default group."""
        host = self.require()
        if model not in MODELS:  # the API's path enum; callers in process may pass anything
            raise CatInputError(f"unknown CoS model {model!r} (known: {', '.join(MODELS)})")
        cache = host.caches.get(request.resource)
        if cache is None:
            raise CatUnprocessable(f"resource: the host has no {request.resource} cache allocation")
        roles = {role for role, _ in MODELS[model]}
        unknown = (set(request.names) | set(request.cpus)) - roles
        if unknown:
            raise CatUnprocessable(
                f"model {model} has no role(s) {', '.join(sorted(unknown))} "
                f"(has: {', '.join(sorted(roles))})"
            )
        if "rest" in request.names and request.names["rest"] != DEFAULT_GROUP:
            raise CatInputError("the 'rest' role is the default group (everything else)")
        specs, ways = [], {}
        for part in preset(model, cache):
            name = DEFAULT_GROUP if part.role == "rest" else request.names.get(part.role, part.role)
            ways[name] = part.ways
            mask = f"{part.mask:x}"
            specs.append(
                CosSpec(
                    name=name,
                    l3=mask if request.resource == "L3" else None,
                    l2=mask if request.resource == "L2" else None,
                    cpus=request.cpus.get(part.role),
                )
            )
        # The default group first: shrinking it before the others grow keeps exclusive checks sane.
        specs.sort(key=lambda s: s.name != DEFAULT_GROUP)
        views = self.apply(specs, replace=request.replace)
        return LayoutView(model=model, rounding=ROUNDING, classes=views, ways=ways)

    def reset(self) -> None:
        """Undo everything declared: instances back to the default group, our classes removed,
        the default group given every way (and all the bandwidth) back."""
        host = self.require()
        with self._lock:
            for instance in list(self.bindings):
                self.unbind(instance, move_tasks=True)
            for name in [n for n in self.classes if n != DEFAULT_GROUP]:
                if self.fs.exists(name):
                    self._call(f"rmdir {name}", self.fs.rmdir, name)
            full = "".join(
                schemata_line(r, dict.fromkeys(c.domains, c.cbm_mask), hex_values=True)
                for r, c in host.caches.items()
            )
            if host.mba is not None:
                full += schemata_line(
                    "MB", dict.fromkeys(host.mba.domains, host.mba.max_bandwidth), hex_values=False
                )
            if full:
                self._call("schemata", self.fs.write, "schemata", full)
            for name in list(self.classes):
                self.tables.delete_class(name)
            self.classes.clear()
            self.notes.clear()

    def delete(self, name: str) -> None:
        self.require()
        with self._lock:
            if name == DEFAULT_GROUP:
                raise CatUnprocessable("the default group cannot be deleted (reset empties it)")
            if name not in self.classes:
                raise CosNotFound(f"class of service {name!r} is not declared here")
            users = sorted(b.instance for b in self.bindings.values() if b.cos == name)
            if users:
                raise CatConflict(f"class {name} is used by instance(s): {', '.join(users)}")
            if self.fs.exists(name):
                self._call(f"rmdir {name}", self.fs.rmdir, name)
            del self.classes[name]
            self.notes.pop(name, None)
            self.tables.delete_class(name)

    # ------------------------------------------------------------------ views
    def list_classes(self) -> list[ClassView]:
        self.require()
        names = [DEFAULT_GROUP, *sorted(set(self.classes) - {DEFAULT_GROUP})]
        return [self.view(n) for n in names]

    def view(self, name: str) -> ClassView:
        self.require()
        if name != DEFAULT_GROUP and (name not in self.classes or not self.fs.exists(name)):
            raise CosNotFound(f"class of service {name!r} does not exist")
        try:
            schemata = parse_schemata(self.fs.read(_file(name, "schemata")))
        except (OSError, CatInputError):
            schemata = {}
        tasks = self._read(_file(name, "tasks")).split()
        return ClassView(
            name=name,
            declared=self.classes.get(name),
            schemata={r: {str(d): v for d, v in doms.items()} for r, doms in schemata.items()},
            mode=self._read(_file(name, "mode"), "shareable"),
            cpus=self._read(_file(name, "cpus_list")),
            tasks=len(tasks),
            instances=sorted(b.instance for b in self.bindings.values() if b.cos == name),
            monitoring=self._monitoring(_rel(name)),
            notes=list(self.notes.get(name, ())),
        )

    def _monitoring(self, rel: str) -> dict[str, dict[str, int | str]]:
        """``mon_data/mon_L3_XX/<event>`` of a group: bytes, or the kernel's word for none."""
        base = f"{rel}/mon_data".lstrip("/")
        if self.host is None or self.host.mon is None or not self.fs.exists(base):
            return {}
        out: dict[str, dict[str, int | str]] = {}
        for domain in self.fs.listdir(base):
            values: dict[str, int | str] = {}
            for event in MON_EVENTS:
                if event not in self.host.mon.features:
                    continue
                text = self._read(f"{base}/{domain}/{event}", "Unavailable")
                values[event] = int(text) if text.isdigit() else text
            out[domain] = values
        return out

    # ------------------------------------------------------------------ instances
    def check(self, cos: str) -> tuple[int, ...] | None:
        """For the instance manager: 404 unless ``cos`` exists; the CPUs it is bound to. On a
        host without RDT an instance request naming a class is a 422 (like one naming a class
        without the CAT part): the request is refused for what it asks of this host, while
        the CAT routes themselves answer 501."""
        try:
            self.require()
        except NotSupported as exc:
            raise CatUnprocessable(f"cos: {cos!r} needs cache allocation: {exc}") from exc
        if cos != DEFAULT_GROUP and cos not in self.classes:
            raise CosNotFound(f"cos: class of service {cos!r} does not exist")
        spec = self.classes.get(cos)
        if spec is None or not spec.cpus:
            return None
        return parse_cpus(spec.cpus, f"{cos}.cpus")

    def bind(self, instance: str, cos: str, pid: int) -> None:
        """Put ``instance`` (its cgroup's tasks, at least ``pid``) into ``cos`` and declare it."""
        self.check(cos)
        with self._lock:
            old = self.bindings.get(instance)
            if old is not None and old.mon_group and old.cos != cos:
                self._drop_mon_group(old)
            binding = Binding(instance, cos, pid)
            self._write_tasks(binding, [pid], strict=True)
            self.bindings[instance] = binding
            self.tables.put_assignment(instance, cos)
        self._sync_one(binding)

    def assign(self, instance: str, cos: str) -> InstanceCos:
        """``POST /v1/cat/classes/{cos}/instances``: move a running instance."""
        pid = self._live_pid(instance, None)
        if pid is None:
            raise CosNotFound(f"instance {instance!r} does not exist or is not running")
        self.bind(instance, cos, pid)
        return self.instance_view(instance)

    def unbind(self, instance: str, *, move_tasks: bool = False) -> None:
        """Forget ``instance``; with ``move_tasks`` its tasks go back to the default group."""
        with self._lock:
            binding = self.bindings.pop(instance, None)
            if binding is None:
                return
            self.tables.delete_assignment(instance)
        if binding.mon_group:
            self._drop_mon_group(binding)
        pid = self._live_pid(instance, binding.pid)
        if move_tasks and self.support.supported and pid is not None:
            for tid in self.instance_tasks(pid):
                with contextlib.suppress(OSError):
                    self.fs.write("tasks", f"{tid}\n")

    def _live_pid(self, instance: str, remembered: int | None) -> int | None:
        if self.instance_pid is not None:
            return self.instance_pid(instance)
        return remembered

    def _drop_mon_group(self, binding: Binding) -> None:
        with contextlib.suppress(OSError):
            self.fs.rmdir(f"{_rel(binding.cos)}/mon_groups/{binding.instance}".lstrip("/"))
        binding.mon_group = False

    def _write_tasks(self, binding: Binding, tids: Sequence[int], *, strict: bool) -> int:
        """Write ``tids`` into the class (then into the instance's monitoring group)."""
        host = self.require()
        moved = 0
        for tid in tids:
            try:
                self.fs.write(_file(binding.cos, "tasks"), f"{tid}\n")
                moved += 1
            except OSError as exc:
                if exc.errno == errno.ESRCH and not strict:
                    continue  # exited between the cgroup read and the write
                raise kernel_error(self.fs, f"{binding.cos}/tasks <- {tid}", exc) from exc
        if host.mon is not None and self.config.monitor_instances:
            mon = f"{_rel(binding.cos)}/mon_groups/{binding.instance}".lstrip("/")
            if not binding.mon_group:
                try:
                    if not self.fs.exists(mon):
                        self.fs.mkdir(mon)
                    binding.mon_group = True
                except OSError as exc:
                    note = f"no monitoring group: {kernel_error(self.fs, 'mkdir ' + mon, exc)}"
                    if note not in binding.notes:
                        binding.notes.append(note)
            if binding.mon_group:
                for tid in tids:
                    with contextlib.suppress(OSError):
                        self.fs.write(f"{mon}/tasks", f"{tid}\n")
        return moved

    def _sync_one(self, binding: Binding) -> int:
        pid = self._live_pid(binding.instance, binding.pid)
        if pid is None:
            return 0
        binding.pid = pid
        wanted = self.instance_tasks(pid)
        present = set(self._read(_file(binding.cos, "tasks")).split())
        if binding.mon_group:
            mon = f"{_rel(binding.cos)}/mon_groups/{binding.instance}/tasks".lstrip("/")
            present &= set(self._read(mon).split())
        missing = [t for t in wanted if str(t) not in present]
        return self._write_tasks(binding, missing, strict=False) if missing else 0

    def _revive_classes(self) -> None:
        """Create again the declared classes whose group was deleted from outside (``rmdir``
        of it, a tool that resets resctrl): the kernel moved their tasks to the default
        group, so their instances lost their isolation with nothing to say so. Their masks
        and CPUs come back (:meth:`_apply_specs`), the instances' monitoring groups are made
        again at the next task write (:meth:`sync` moves the tasks back)."""
        with self._lock:
            present = set(self._kernel_groups())
            lost = [s for n, s in self.classes.items() if n != DEFAULT_GROUP and n not in present]
            if not lost:
                return
            try:
                self._apply_specs(lost, replace=False, persist=False)
            except CatError as exc:
                self.last_error = f"re-creating class(es) deleted from outside: {exc}"
                return
            names = {spec.name for spec in lost}
            for binding in self.bindings.values():
                if binding.cos in names:
                    binding.mon_group = False  # gone with its class
        self.recreated += len(lost)
        log.error(
            "cat: class(es) %s deleted from outside (their tasks fell back to the default "
            "group); created again",
            ", ".join(sorted(names)),
            extra={"part": "cat", "event": "classes_recreated"},
        )

    def sync(self) -> int:
        """Re-create the classes deleted from outside (:meth:`_revive_classes`), then re-write
        every bound instance's missing tasks into its class; returns tasks moved."""
        if not self.support.supported:
            return 0
        self._revive_classes()
        moved = 0
        with self._lock:
            bindings = list(self.bindings.values())
        for binding in bindings:
            if binding.cos != DEFAULT_GROUP and binding.cos not in self.classes:
                continue
            try:
                moved += self._sync_one(binding)
            except CatError as exc:
                self.last_error = f"sync {binding.instance}: {exc}"
        return moved

    def instance_view(self, instance: str) -> InstanceCos:
        self.require()
        binding = self.bindings.get(instance)
        if binding is None:
            raise CosNotFound(f"instance {instance!r} is not assigned to a class of service")
        pid = self._live_pid(instance, binding.pid)
        tids = self.instance_tasks(pid) if pid is not None else []
        present = set(self._read(_file(binding.cos, "tasks")).split())
        mon = f"{_rel(binding.cos)}/mon_groups/{instance}".lstrip("/")
        return InstanceCos(
            instance=instance,
            cos=binding.cos,
            tasks=len(tids),
            in_class=sum(1 for t in tids if str(t) in present),
            monitoring=self._monitoring(mon) if binding.mon_group else {},
        )

    def list_instances(self) -> list[InstanceCos]:
        self.require()
        return [self.instance_view(name) for name in sorted(self.bindings)]

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> str:
        lines = [
            "# TYPE fluidedge_cat_supported gauge",
            f"fluidedge_cat_supported {int(self.support.supported)}",
        ]
        if not self.support.supported or self.host is None or self.host.mon is None:
            return "\n".join(lines) + "\n"
        samples: dict[str, list[str]] = {event: [] for event in MON_EVENTS}
        with contextlib.suppress(CatError, OSError):
            for name in [DEFAULT_GROUP, *sorted(set(self.classes) - {DEFAULT_GROUP})]:
                for domain, values in self._monitoring(_rel(name)).items():
                    for event, value in values.items():
                        if isinstance(value, int):
                            samples[event].append(
                                f'fluidedge_cat_{event}{{cos="{name}",domain="{domain}"}} {value}'
                            )
            for binding in list(self.bindings.values()):
                if not binding.mon_group:
                    continue
                mon = f"{_rel(binding.cos)}/mon_groups/{binding.instance}".lstrip("/")
                for domain, values in self._monitoring(mon).items():
                    for event, value in values.items():
                        if isinstance(value, int):
                            samples[event].append(
                                f'fluidedge_cat_instance_{event}{{instance="{binding.instance}",'
                                f'cos="{binding.cos}",domain="{domain}"}} {value}'
                            )
        for event, rows in samples.items():
            kind = "gauge" if event == "llc_occupancy" else "counter"
            if rows:
                lines.append(f"# TYPE fluidedge_cat_{event} {kind}")
                lines.extend(r for r in rows if r.startswith(f"fluidedge_cat_{event}"))
                inst = [r for r in rows if r.startswith("fluidedge_cat_instance_")]
                if inst:
                    lines.append(f"# TYPE fluidedge_cat_instance_{event} {kind}")
                    lines.extend(inst)
        return "\n".join(lines) + "\n"
