"""The superfluid controller: turns the data plane's demands into instance-manager calls.

Threads (all daemon threads of the daemon process that hosts both the TOF and the instance
manager, so nothing crosses a process boundary on the first-packet path):

- *workers* (``[tof] ondemand_workers``) take ``create`` demands from a queue (admission:
  the service's bound and a node-wide token bucket; an address from the service's pool; an
  instance from the template's warm pool via :meth:`Manager.create_instance`; then the
  binding is pointed at it and its queue flushed). A refused or failed demand drops its
  queue, counted by reason.
- a packet for a frozen instance wakes it on the packet path (:meth:`Controller._wake`, called
  by the data plane: one cgroup write, then the packet goes on; see
  :mod:`fluidedge.tof.superfluid.table`). Its ``resumed`` notice goes into a list no thread
  waits on (waking one would hand it the GIL while the instance's first answer crosses the
  data plane); the idle thread records it at its next look, at least ``RECORD_AFTER`` later
  (:meth:`Manager.resume`, the row).
- the *resume* thread serves ``resume`` demands, for a packet that came while the freeze was
  still in progress (thaw after the freeze, flush, record). Resumes have this queue of their
  own: they must never wait behind creations, which take milliseconds each and, under a
  flood of new UEs, wait for the creation rate's tokens.
- the *idle* thread looks at the bindings' activity every ``IDLE_PERIOD`` and pauses an
  instance idle for T1 (the binding is parked first, unless a packet went through since the
  look, so a packet arriving meanwhile is queued and asks for a resume) and deletes one
  paused for T2 (scale to zero; the manager refills its pool on its own).

Every instance is a row of ``superfluid_instance`` (service, UE, instance, address, state,
pause time in wall-clock seconds): at start the rows whose instances the manager re-adopted
are put back into the data plane as ready or paused bindings, and T2 keeps counting from the
stored pause time; instances carrying our label without a row (a kill -9 in the middle of a
creation) are deleted. Operations on one binding are serialised by its record's lock.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.errors import FluidedgeError
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest
from fluidedge.instances.timing import Histograms
from fluidedge.tenants.errors import TenantsError
from fluidedge.tof.models import Service
from fluidedge.tof.superfluid import policy
from fluidedge.tof.superfluid.admission import Admission, NoAdmission
from fluidedge.tof.superfluid.errors import OnDemandTargetMissing
from fluidedge.tof.superfluid.model import OnDemand
from fluidedge.tof.superfluid.plane import OnDemandPlane
from fluidedge.tof.superfluid.table import CREATE, PAUSED, READY, RESUME, RESUMED, Key

log = logging.getLogger("fluidedge.tof.superfluid")

IDLE_PERIOD = 0.1  # s between looks at the bindings' activity
WAKE_TIMEOUT = 0.002  # s the packet path waits for a thaw to be confirmed (then: queued)
# A wake is recorded (the manager's state, the row) by the idle thread's first look at least
# this long after it, off the first exchange's path: the bookkeeping holds the GIL for about
# half a millisecond, which the data-plane thread would otherwise wait for while the
# instance's first answer passes.
RECORD_AFTER = 0.02
LABEL_SERVICE = "fluidedge.tof.superfluid.service"
LABEL_UE = "fluidedge.tof.superfluid.ue"

MIGRATIONS = [
    """
    CREATE TABLE superfluid_instance (
        service TEXT NOT NULL,
        ue TEXT NOT NULL,
        instance TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL,
        state TEXT NOT NULL,
        paused_at REAL,
        created_at REAL NOT NULL,
        PRIMARY KEY (service, ue)
    )
    """,
]


def _ue_text(ue: bytes) -> str:
    return str(ipaddress.ip_address(ue)) if ue else ""


def _ue_bytes(text: str) -> bytes:
    return ipaddress.ip_address(text).packed if text else b""


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a time")
    return float(value)


def _stored_row(row: sqlite3.Row) -> sqlite3.Row:
    """``row`` once every field the restore uses reads (a row that does not is set aside:
    :mod:`fluidedge.core.rows`; its on-demand instance, unknown then, is deleted)."""
    for column in ("service", "ue", "instance", "address"):
        if not isinstance(row[column], str):
            raise TypeError(f"{column} {row[column]!r} is not text")
    _ue_bytes(row["ue"])
    ipaddress.ip_address(row["address"])
    _time(row["created_at"])
    if row["paused_at"] is not None:
        _time(row["paused_at"])
    return row


class Thawer(Protocol):
    """A thaw prepared at the pause (the instance manager's ``cgroups.Thawer``)."""

    def thaw(self) -> bool: ...

    def close(self) -> None: ...


@dataclass
class Record:
    """One on-demand instance (or one being created) of a binding."""

    service: str
    ue: bytes
    instance: str
    address: str
    state: str  # "creating", "running", "paused"
    created_at: float  # wall clock
    paused_at: float | None = None  # monotonic
    container: str | None = None  # the runtime's id, known once paused (for _wake)
    thawer: Thawer | None = None  # its freezer's files, opened at the pause (for _wake)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def running(self) -> None:
        """Thawed: nothing left for :meth:`Controller._wake` (the record's lock held, and the
        binding no longer frozen, so the packet path does not use the thawer meanwhile)."""
        self.state = "running"
        self.paused_at = None
        self.container = None
        self.drop_thawer()

    def drop_thawer(self) -> None:
        thawer, self.thawer = self.thawer, None
        if thawer is not None:
            with contextlib.suppress(OSError):
                thawer.close()

    def to_api(self, paused_wall: float | None) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "ue": _ue_text(self.ue) or None,
            "address": self.address,
            "state": self.state,
            "createdAt": self.created_at,
            "pausedAt": paused_wall,
        }


class Controller:
    """See the module docstring."""

    def __init__(
        self,
        manager: Manager,
        plane: OnDemandPlane,
        store: Store,
        *,
        workers: int = 2,
        create_rate: float = 50.0,
        create_burst: int = 8,
        queue_timeout: float = 3.0,
        admission: Admission | None = None,
    ) -> None:
        self.manager = manager
        self.admission: Admission = admission or NoAdmission()
        self.plane = plane
        self.store = store
        self.workers = workers
        self.queue_timeout = queue_timeout
        self.bucket = policy.TokenBucket(create_rate, create_burst)
        self.services: dict[str, OnDemand] = {}
        self.records: dict[Key, Record] = {}
        self.counters: Counter[tuple[str, str]] = Counter()  # (service, event)
        self.histograms = Histograms()
        self.histograms.declare(
            "fluidedge_superfluid_first_packet_seconds",
            "on-demand service: first queued packet to its release toward a new instance",
        )
        self.histograms.declare(
            "fluidedge_superfluid_resume_seconds",
            "on-demand service: how long the packet that resumed an instance was held "
            "(the thaw on the packet path, or queued until the controller's resume)",
        )
        self._lock = threading.Lock()
        self._bucket_lock = threading.Lock()
        self._demands: queue.Queue[tuple[str, bytes, str, float] | None] = queue.Queue()
        self._resumes: queue.Queue[tuple[str, bytes, str, float] | None] = queue.Queue()
        # Wakes done on the packet path, to record (no thread waits on it: see the docstring).
        self._woken: deque[tuple[str, bytes, float]] = deque()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._mono_to_wall = time.time() - time.monotonic()
        store.migrate("superfluid", MIGRATIONS)

    # ------------------------------------------------------------------ lifecycle

    def attach(self) -> None:
        """Take the data plane's demands from now on (queued until :meth:`start`)."""
        self.plane.set_demand_sink(self._sink)

    def start(self, services: Mapping[str, Service]) -> None:
        """Restore the stored instances into the data plane, then start the threads."""
        self.services = {n: s.ondemand for n, s in services.items() if s.ondemand is not None}
        self._restore()
        self.plane.set_demand_sink(self._sink)
        self.plane.set_waker(self._wake)
        for i in range(self.workers):
            self._spawn(self._worker, f"superfluid-worker-{i}", self._demands)
        self._spawn(self._worker, "superfluid-resume", self._resumes)
        self._spawn(self._idle_loop, "superfluid-idle")

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop the threads; instances stay (a restart re-adopts them with their timers)."""
        self.plane.set_demand_sink(None)
        self.plane.set_waker(None)
        self._stop.set()
        for _ in range(self.workers):
            self._demands.put(None)
        self._resumes.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        self._record_woken(float("inf"))
        for record in list(self.records.values()):  # the waker is gone: no packet uses them
            record.drop_thawer()

    def _restore(self) -> None:
        stored = rows.load(
            self.store,
            "superfluid_instance",
            ("service", "ue", "instance", "address", "state", "paused_at", "created_at"),
            _stored_row,
            key=("service", "ue"),
        )
        now_wall, now = time.time(), time.monotonic()
        known: set[str] = set()
        for row in stored:
            key = (row["service"], _ue_bytes(row["ue"]))
            spec = self.services.get(row["service"])
            try:
                inst = self.manager.get_instance(row["instance"])
            except FluidedgeError:
                inst = None
            if inst is not None and inst.labels.get(LABEL_SERVICE) != row["service"]:
                # Not an on-demand instance of this service (a damaged row naming another
                # instance): neither adopted nor deleted; the row is set aside.
                rows.set_aside_by_key(
                    self.store,
                    "superfluid_instance",
                    ("service", "ue"),
                    (row["service"], row["ue"]),
                    f"instance {row['instance']!r} is not an on-demand instance of service "
                    f"{row['service']!r} (its labels say otherwise)",
                )
                continue
            if inst is None or spec is None or inst.state not in ("running", "paused"):
                if inst is not None:
                    self._delete_instance(row["instance"])
                self._forget_row(row["service"], row["ue"])
                continue
            paused = inst.state == "paused"
            paused_at = None
            if paused:
                at = row["paused_at"] if row["paused_at"] is not None else now_wall
                paused_at = now - max(0.0, now_wall - at)
            record = Record(
                key[0],
                key[1],
                row["instance"],
                row["address"],
                "paused" if paused else "running",
                row["created_at"],
                paused_at,
                inst.id if paused else None,
            )
            if paused:
                record.thawer = self._thawer(inst.id)
            self.records[key] = record
            known.add(record.instance)
            self.plane.ondemand_restore(
                key[0], key[1], ipaddress.ip_address(record.address).packed, paused=paused
            )
            self.counters[(key[0], "restored")] += 1
        for view in self.manager.list_instances():
            if LABEL_SERVICE in view.labels and view.name not in known:
                log.info("superfluid: deleting %s (no record: created before a crash)", view.name)
                self._delete_instance(view.name)

    # ------------------------------------------------------------------ services

    def check(self, service: Service) -> None:
        """Refuse an on-demand service that cannot work here (400 with the reason)."""
        spec = service.ondemand
        if spec is None:
            return
        try:
            template = self.manager.get_template(spec.template)
        except FluidedgeError as exc:
            raise OnDemandTargetMissing(f"onDemand.template: {exc}") from exc
        names = [i.name for i in template.interfaces]
        if spec.interface not in names:
            raise OnDemandTargetMissing(
                f"onDemand.interface: template {spec.template} has no interface "
                f"{spec.interface!r} (has: {', '.join(names) or 'none'})"
            )

    def services_changed(self, services: Mapping[str, Service]) -> None:
        """The service set the data plane now runs (called after each apply)."""
        new = {n: s.ondemand for n, s in services.items() if s.ondemand is not None}
        with self._lock:
            old, self.services = self.services, new
            stale = [
                key
                for key in self.records
                if policy.needs_new_instances(old.get(key[0]), new.get(key[0]))
            ]
        for key in stale:
            self._demands.put((key[0], key[1], "reap", time.monotonic()))

    # ------------------------------------------------------------------ demands

    def _sink(self, service: str, ue: bytes, kind: str, now: float) -> None:
        """Called by the data plane (its lock held): never blocks, and a ``resumed`` notice
        wakes no thread (an append: the idle thread records it)."""
        if kind == RESUMED:
            self._woken.append((service, ue, now))
            return
        lane = self._resumes if kind == RESUME else self._demands
        lane.put((service, ue, kind, now))

    def _record_woken(self, now: float) -> None:
        """Record the wakes older than ``RECORD_AFTER`` (the idle thread, before its look)."""
        woken = self._woken
        while woken and woken[0][2] <= now - RECORD_AFTER:
            service, ue, _ = woken.popleft()
            try:
                self._resumed(service, ue)
            except Exception:  # the next ones must still be recorded
                log.exception("superfluid: recording a resume of %s failed", service)

    def _worker(self, lane: queue.Queue[tuple[str, bytes, str, float] | None]) -> None:
        while True:
            item = lane.get()
            if item is None:
                return
            service, ue, kind, _ = item
            try:
                if kind == CREATE:
                    self._create(service, ue)
                elif kind == RESUME:
                    self._resume(service, ue)
                elif kind == "reap":
                    self._reap(service, ue)
            except Exception:  # a worker must survive anything one demand does
                log.exception("superfluid: %s of %s failed", kind, service)
                self.plane.ondemand_refuse(service, ue, "error")

    def _refuse(self, service: str, ue: bytes, reason: str) -> None:
        self.counters[(service, f"refused_{reason}")] += 1
        self.plane.ondemand_refuse(service, ue, reason)

    def _create(self, service: str, ue: bytes) -> None:
        with self._lock:
            spec = self.services.get(service)
            key = (service, ue if spec is not None and spec.per_ue else b"")
            if spec is None:
                reason: str | None = "service_gone"
            elif key in self.records:
                reason = None  # already there (a demand raced a restore): just point at it
            else:
                live = sum(1 for k in self.records if k[0] == service)
                reason = policy.admit(spec, live)
            existing = self.records.get(key)
            if spec is not None and reason is None and existing is None:
                used = [r.address for r in self.records.values()]
                address = policy.pick_address(spec, used)
                if address is None:
                    reason = "address_pool"
                else:
                    owner = self.admission.prefix(spec.template)
                    name = policy.instance_name(service, secrets.token_hex(4), owner)
                    record = Record(service, key[1], name, address, "creating", time.time())
                    self.records[key] = record
        if reason is not None or spec is None:
            self._refuse(service, ue, reason or "service_gone")
            return
        if existing is not None:
            if existing.state == "running":
                packed = ipaddress.ip_address(existing.address).packed
                self.plane.ondemand_ready(service, ue, packed)
            elif existing.state == "paused":
                self._resume(service, ue)
            return  # "creating": its creator releases the queue
        granted = self._take_token()
        if granted is None:
            with self._lock:
                self.records.pop(key, None)
            self._refuse(service, ue, "rate")
            return
        with record.lock:
            record.created_at = granted + self._mono_to_wall  # the rate bound's instant
            try:
                self._instantiate(spec, record)
            except Exception as exc:  # whatever it was, the next packet must be able to retry
                why = "admission" if isinstance(exc, TenantsError) else "create_failed"
                if isinstance(exc, FluidedgeError):
                    log.warning("superfluid: %s: creating an instance failed: %s", service, exc)
                else:
                    log.exception("superfluid: %s: creating an instance failed", service)
                with self._lock:
                    self.records.pop(key, None)
                self._refuse(service, ue, why)
                return
            record.state = "running"
            self.counters[(service, "created")] += 1  # counted before the answer can leave
            # Release first, then persist: the queued packets do not wait for an fsync (a
            # crash in between leaves a labelled instance without a row: deleted at start).
            waited = self.plane.ondemand_ready(
                service, key[1], ipaddress.ip_address(record.address).packed
            )
            self._save(record)
        if waited is not None:
            self.histograms.observe(
                "fluidedge_superfluid_first_packet_seconds", waited, service=service
            )

    def _take_token(self) -> float | None:
        """Wait for the creation rate to allow one more: the instant (monotonic) it was
        granted, or None when that would be beyond the queue timeout (refused)."""
        with self._bucket_lock:
            now = time.monotonic()
            wait = self.bucket.take(now)
            if wait > self.queue_timeout:
                self.bucket.give_back()
                return None
        if wait > 0:
            self._stop.wait(wait)
        return now + wait

    def _instantiate(self, spec: OnDemand, record: Record) -> None:
        template = self.manager.get_template(spec.template)
        network_name = next(
            (i.network for i in template.interfaces if i.name == spec.interface), None
        )
        prefix = ipaddress.ip_network(spec.address_pool).prefixlen
        if network_name is not None:
            with contextlib.suppress(FluidedgeError):
                subnet = self.manager.get_network(network_name).subnet
                if subnet:
                    prefix = ipaddress.ip_network(subnet, strict=False).prefixlen
        assignment: dict[str, Any] = {"addresses": [f"{record.address}/{prefix}"]}
        if spec.gateway is not None:
            assignment["gateway"] = spec.gateway
        labels = {LABEL_SERVICE: record.service}
        if record.ue:
            labels[LABEL_UE] = _ue_text(record.ue)
        request = InstanceRequest.model_validate(
            {
                "name": record.instance,
                "template": spec.template,
                "interfaces": {spec.interface: assignment},
                "labels": labels,
            }
        )
        # The address may have been another instance's a moment ago: the manager makes the
        # network forget its neighbour entry (fluidedge.instances.neigh).
        with self.admission.admit(request) as admitted:
            # No fsync before the workload starts: kill -9 still finds the instance (and a
            # power loss leaves neither it nor a reason to keep its row; see create_instance).
            self.manager.create_instance(admitted, durable=False)

    def _resume(self, service: str, ue: bytes) -> None:
        with self._lock:
            spec = self.services.get(service)
            key = (service, ue if spec is not None and spec.per_ue else b"")
            record = self.records.get(key)
        if record is None:  # deleted meanwhile: a creation, on the creation lane
            self._demands.put((service, ue, CREATE, time.monotonic()))
            return
        with record.lock:
            thawed = record.state != "paused"
            if not thawed:
                # Thaw the cgroup first and release the queue at once: the manager's resume
                # (below) then finds it thawed and records the state, an fsync the queued
                # packets need not wait for (the resume-latency goal is 1 ms; a commit is ms).
                try:
                    self.manager.cgroups.thaw(self.manager.get_instance(record.instance).id)
                    thawed = True
                except (FluidedgeError, OSError) as exc:
                    log.info("superfluid: early thaw of %s: %s", record.instance, exc)
            waited = None
            if thawed:
                if record.state == "paused":
                    self.counters[(service, "resumed")] += 1
                waited = self.plane.ondemand_ready(
                    service, key[1], ipaddress.ip_address(record.address).packed
                )
            if record.state == "paused":
                try:
                    self.manager.resume(record.instance)
                except FluidedgeError as exc:
                    log.warning("superfluid: resuming %s failed: %s", record.instance, exc)
                    if not thawed:
                        self._refuse(service, ue, "resume_failed")
                        return
                record.running()
            if not thawed:
                self.counters[(service, "resumed")] += 1
                waited = self.plane.ondemand_ready(
                    service, key[1], ipaddress.ip_address(record.address).packed
                )
            self._save(record)  # after the release (see _create)
        if waited is not None:
            self.histograms.observe("fluidedge_superfluid_resume_seconds", waited, service=service)

    def _wake(self, service: str, ue: bytes) -> bool:
        """Thaw a frozen instance from the packet path (the data plane's lock is held: neither
        the controller's lock nor a record's is taken, only the histograms' leaf lock): True
        when thawed, so the packet goes on. A thaw slower than ``WAKE_TIMEOUT`` falls back to
        the queued resume (the data plane must not stall)."""
        record = self.records.get((service, ue))
        container = None if record is None else record.container
        if record is None or container is None:
            return False
        begin = time.monotonic()
        try:
            thawer = record.thawer
            if thawer is None:  # could not be opened at the pause: the path, polled
                self.manager.cgroups.thaw(container, timeout=WAKE_TIMEOUT)
            elif not thawer.thaw():  # the kernel does not say thawed: the queued resume
                log.info("superfluid: waking %s on the packet path: not thawed", container)
                return False
        except (FluidedgeError, OSError) as exc:
            log.info("superfluid: waking %s on the packet path: %s", container, exc)
            return False
        self.histograms.observe(
            "fluidedge_superfluid_resume_seconds", time.monotonic() - begin, service=service
        )
        self.counters[(service, "resumed")] += 1  # now, not when recorded
        return True

    def _resumed(self, service: str, ue: bytes) -> None:
        """Record a resume the packet path did (:meth:`_wake`): the manager's state, the row."""
        record = self.records.get((service, ue))
        if record is None:
            return
        with record.lock:
            if record.state != "paused":
                return
            try:
                self.manager.resume(record.instance)  # finds it thawed: records the state
            except FluidedgeError as exc:
                log.warning("superfluid: recording the resume of %s: %s", record.instance, exc)
            record.running()
            self._save(record)

    def _reap(self, service: str, ue: bytes) -> None:
        """Delete an instance whose service is gone or changed what its instances are."""
        key = (service, ue)
        record = self.records.get(key)
        if record is None:
            return
        with record.lock:
            self.plane.ondemand_forget(service, ue, force=True)
            record.drop_thawer()  # the binding is gone: no packet wakes it any more
            self._delete_instance(record.instance)
            self.counters[(service, "deleted")] += 1
            with self._lock:
                self.records.pop(key, None)
            self._forget_row(service, _ue_text(ue))

    # ------------------------------------------------------------------ idle

    def _idle_loop(self) -> None:
        while not self._stop.wait(IDLE_PERIOD):
            try:
                self.idle_pass(time.monotonic())
            except Exception:
                log.exception("superfluid: idle pass failed")

    def idle_pass(self, now: float) -> None:
        """Record the packet path's wakes, then pause instances idle for T1 and delete those
        paused for T2 (one look)."""
        self._record_woken(now)
        activity = self.plane.ondemand_activity()
        with self._lock:
            todo = []
            for key, record in self.records.items():
                spec = self.services.get(key[0])
                seen = activity.get(key)
                if spec is None or seen is None or record.state == "creating":
                    continue
                action = policy.idle_action(spec, seen[0], seen[1], record.paused_at, now)
                if action is not None:
                    todo.append((action, key, record, seen[1]))
        for action, key, record, idle_since in todo:
            if action == policy.PAUSE:
                self._pause(key, record, idle_since)
            else:
                self._delete(key, record)

    def _pause(self, key: Key, record: Record, idle_since: float) -> None:
        """Park, then freeze; the park is refused when a packet went through since the look
        that found the binding idle (see :meth:`OnDemandTable.park`)."""
        with record.lock:
            if record.state != "running" or not self.plane.ondemand_park(*key, idle_since):
                return
            try:
                self.manager.pause(record.instance)
            except FluidedgeError as exc:
                log.warning("superfluid: pausing %s failed: %s", record.instance, exc)
                self.plane.ondemand_ready(*key, ipaddress.ip_address(record.address).packed)
                return
            self.counters[(key[0], "paused")] += 1
            record.state = "paused"
            record.paused_at = time.monotonic()
            with contextlib.suppress(FluidedgeError):
                record.container = self.manager.get_instance(record.instance).id
                record.thawer = self._thawer(record.container)
                self.plane.ondemand_frozen(*key)  # from now on a packet wakes it itself
            self._save(record)

    def _thawer(self, container: str) -> Thawer | None:
        """The thaw of a frozen instance, prepared for the packet path (None: it will open
        the freezer's files itself)."""
        try:
            return self.manager.cgroups.thawer(container)
        except (FluidedgeError, OSError) as exc:
            log.info("superfluid: no prepared thaw for %s: %s", container, exc)
            return None

    def _delete(self, key: Key, record: Record) -> None:
        with record.lock:
            if record.state != "paused" or not self.plane.ondemand_forget(*key):
                return
            record.drop_thawer()  # the binding is gone: no packet wakes it any more
            self._delete_instance(record.instance)
            self.counters[(key[0], "deleted")] += 1
            with self._lock:
                self.records.pop(key, None)
            self._forget_row(key[0], _ue_text(key[1]))

    # ------------------------------------------------------------------ store and manager

    def _delete_instance(self, name: str) -> None:
        try:
            self.admission.delete(name, self.manager.delete_instance)
        except FluidedgeError as exc:
            log.warning("superfluid: deleting %s: %s", name, exc)

    # The rows are written without waiting for the fsync (durable=False): they survive a
    # kill -9 of the daemon, which is what they are for (re-adopt the instances, keep T2).
    # A power loss may lose the latest ones, but it also ends every instance they name, and
    # a row whose instance is gone is dropped at start. A creation worker therefore never
    # waits for a disk before its next creation, and never holds the store's lock through
    # an fsync that the next claim would wait for.
    def _save(self, record: Record) -> None:
        paused_wall = None if record.paused_at is None else record.paused_at + self._mono_to_wall
        with self.store.transaction(durable=False) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO superfluid_instance "
                "(service, ue, instance, address, state, paused_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.service,
                    _ue_text(record.ue),
                    record.instance,
                    record.address,
                    record.state,
                    paused_wall,
                    record.created_at,
                ),
            )

    def _forget_row(self, service: str, ue: str) -> None:
        with self.store.transaction(durable=False) as conn:
            conn.execute(
                "DELETE FROM superfluid_instance WHERE service = ? AND ue = ?", (service, ue)
            )

    # ------------------------------------------------------------------ views

    def instances_of(self, service: str) -> list[dict[str, Any]]:
        """The service's instances, for ``GET /service/{name}/instances`` and the CLI."""
        with self._lock:
            records = [r for k, r in self.records.items() if k[0] == service]
        out = []
        for r in sorted(records, key=lambda r: (r.ue, r.instance)):
            wall = None if r.paused_at is None else round(r.paused_at + self._mono_to_wall, 3)
            out.append(r.to_api(wall))
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (service, event), n in sorted(self.counters.items()):
            out.setdefault(service, {})[event] = n
        return out

    def metrics(self, table: Mapping[str, Any]) -> str:
        """Prometheus text: per-service events, the queue (from the data plane's ``table``
        stats) and the latency histograms."""
        lines = [
            "# HELP fluidedge_superfluid_events_total on-demand instance events per service",
            "# TYPE fluidedge_superfluid_events_total counter",
        ]
        for (service, event), n in sorted(self.counters.items()):
            lines.append(
                f'fluidedge_superfluid_events_total{{service="{service}",event="{event}"}} {n}'
            )
        lines.append("# HELP fluidedge_superfluid_instances on-demand instances by state")
        lines.append("# TYPE fluidedge_superfluid_instances gauge")
        states: Counter[tuple[str, str]] = Counter()
        with self._lock:
            for key, record in self.records.items():
                states[(key[0], record.state)] += 1
        for (service, state), n in sorted(states.items()):
            lines.append(
                f'fluidedge_superfluid_instances{{service="{service}",state="{state}"}} {n}'
            )
        lines.append("# HELP fluidedge_superfluid_queue_depth packets waiting for an instance")
        lines.append("# TYPE fluidedge_superfluid_queue_depth gauge")
        lines.append(f"fluidedge_superfluid_queue_depth {int(table.get('queued', 0))}")
        lines.append(
            "# HELP fluidedge_superfluid_queue_drops_total packets not delivered, by reason"
        )
        lines.append("# TYPE fluidedge_superfluid_queue_drops_total counter")
        drops = table.get("drops", {})
        for reason, n in sorted(drops.items()):
            lines.append(f'fluidedge_superfluid_queue_drops_total{{reason="{reason}"}} {n}')
        return "\n".join(lines) + "\n" + self.histograms.render()


__all__ = ["PAUSED", "READY", "Controller", "Record"]
