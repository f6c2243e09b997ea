"""The data plane's state of on-demand services: one binding per (service, UE), sans I/O.

A *binding* ties an on-demand service (and, under ``per-ue``, one UE; under ``shared`` the UE
key is ``b""``) to the instance serving it. Its states:

- ``pending``: an instance is being created or resumed; offloadable packets are queued;
- ``ready``: packets go to ``app_ip`` (the caller NATs them); activity is recorded;
- ``paused``: the instance is (being) frozen. Once the controller has confirmed the freeze
  (:meth:`frozen`), the next packet *wakes* it on the packet path: ``waker`` thaws the cgroup
  (one write, tens of microseconds), the binding is ready again and the packet goes on at
  once, and a ``resumed`` notice tells the controller to record it; no thread hop, no queue.
  While the freeze is still in progress (or the waker fails) the packet is queued and asks
  for a resume, which the controller serves after the freeze.

No binding means no instance: the next packet queues and asks for one (a ``create`` demand).
A backend with a kernel projection (the fast path's ``ondemand`` map) sets :attr:`changed` to a
set, and every key whose binding changed state, address or existence is added to it; the
backend takes them after each batch and after each controller call.
The queue is bounded per UE and in total and timed out (:meth:`expire`); every packet that
does not reach an instance is counted by reason in :attr:`drops`. Demands go to ``sink`` (set
by the controller) and must not block: the pipeline calls it from the packet path.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PENDING = "pending"
READY = "ready"
PAUSED = "paused"

CREATE = "create"
RESUME = "resume"
RESUMED = "resumed"  # a notice, not a demand: the packet path woke the instance itself

#: ``sink(service, ue, kind, now)``: a demand for the controller (``kind``: create/resume)
#: or the notice that the packet path resumed an instance (``resumed``).
DemandSink = Callable[[str, bytes, str, float], None]
#: ``waker(service, ue)``: thaw the frozen instance of a binding now (True: thawed).
Waker = Callable[[str, bytes], bool]

Key = tuple[str, bytes]


@dataclass(slots=True)
class Binding:
    """One (service, UE) and the instance serving it."""

    service: str
    ue: bytes
    state: str
    app_ip: bytes = b""
    last_active: float = 0.0
    frozen: bool = False  # paused, and the controller confirmed the freeze
    parked_since: float = 0.0  # the activity the latest park was decided on
    demanded_at: float | None = None  # when the first packet now queued arrived
    queue: deque[tuple[float, bytes, tuple[bytes, object]]] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class Released:
    """What :meth:`OnDemandTable.ready` hands back: the queued items, oldest first."""

    items: list[tuple[bytes, object]]
    waited: float | None  # seconds since the first of them arrived (None: nothing queued)
    resumed: bool


class OnDemandTable:
    """Bindings, queues and counters (see the module docstring)."""

    def __init__(self, per_ue_limit: int, total_limit: int, timeout: float) -> None:
        self.per_ue_limit = per_ue_limit
        self.total_limit = total_limit
        self.timeout = timeout
        self.policies: dict[str, bool] = {}  # service -> per-ue
        self.bindings: dict[Key, Binding] = {}
        self.queued_by_ue: Counter[bytes] = Counter()
        self.queued = 0
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.sink: DemandSink | None = None
        self.waker: Waker | None = None
        # Bindings changed since the backend last took them; None: nobody takes them.
        self.changed: set[Key] | None = None

    # ------------------------------------------------------------------ configuration

    def configure(self, policies: dict[str, bool]) -> list[Key]:
        """Set the on-demand services (name -> per-ue); bindings of others are dropped.

        Returns the keys dropped (their queues counted as ``service_gone``).
        """
        self.policies = dict(policies)
        gone = [
            key
            for key, b in self.bindings.items()
            if key[0] not in policies or (policies[key[0]] != (key[1] != b""))
        ]
        for key in gone:
            self._drop_queue(self.bindings.pop(key), "service_gone")
            self._touch(key)
        return gone

    def key(self, service: str, ue: bytes) -> Key:
        return (service, ue if self.policies.get(service) else b"")

    # ------------------------------------------------------------------ packet path

    def admit(self, service: str, ue: bytes, item: object, packet: bytes, now: float) -> bytes:
        """A packet of ``ue`` for on-demand ``service``: the instance address if it is ready
        (activity recorded), else ``b""`` (the packet was queued or dropped, counted)."""
        key = (service, ue if self.policies.get(service) else b"")
        binding = self.bindings.get(key)
        if binding is not None and binding.state == READY:
            binding.last_active = now
            return binding.app_ip
        if binding is None:
            binding = Binding(service, key[1], PENDING)
            self.bindings[key] = binding
            self._touch(key)
            self._demand(binding, CREATE, now)
        elif binding.state == PAUSED:
            if self._wake(binding, now):
                return binding.app_ip
            binding.state = PENDING
            binding.frozen = False
            self._touch(key)
            self._demand(binding, RESUME, now)
        if self.queued >= self.total_limit:
            self.drops["queue_full_total"] += 1
            return b""
        if self.queued_by_ue[ue] >= self.per_ue_limit:
            self.drops["queue_full_ue"] += 1
            return b""
        if binding.demanded_at is None:
            binding.demanded_at = now
        binding.queue.append((now, ue, (packet, item)))
        self.queued_by_ue[ue] += 1
        self.queued += 1
        self.counters["queued"] += 1
        return b""

    def seen(self, service: str, ue: bytes, app_ip: bytes, now: float) -> None:
        """A packet from the instance of (service, ue) toward its UE: activity, as the UE's
        packets are (an instance that only sends is not idle)."""
        binding = self.bindings.get(self.key(service, ue))
        if binding is not None and binding.state == READY and binding.app_ip == app_ip:
            binding.last_active = now

    def _wake(self, binding: Binding, now: float) -> bool:
        """Thaw a parked binding's frozen instance on the packet path (see the module
        docstring); False when it is not frozen yet or the waker failed."""
        if not binding.frozen or self.waker is None or not self.waker(binding.service, binding.ue):
            return False
        binding.state = READY
        binding.frozen = False
        binding.last_active = now
        self._touch((binding.service, binding.ue))
        self._demand(binding, RESUMED, now)
        return True

    def wake(self, service: str, ue: bytes, now: float) -> bool:
        """Wake a parked, frozen binding now, without a packet: a backend found that a packet
        reached its instance after the park (the kernel forwarded it in the instant before
        its entry went), which the instance must not hold frozen. True: woken."""
        binding = self.bindings.get(self.key(service, ue))
        return binding is not None and binding.state == PAUSED and self._wake(binding, now)

    def _demand(self, binding: Binding, kind: str, now: float) -> None:
        self.counters[f"demand_{kind}"] += 1
        if self.sink is not None:
            self.sink(binding.service, binding.ue, kind, now)

    def expire(self, now: float) -> int:
        """Drop queued packets older than the timeout (counted); how many."""
        limit = now - self.timeout
        dropped = 0
        for binding in self.bindings.values():
            queue = binding.queue
            while queue and queue[0][0] < limit:
                _, ue, _ = queue.popleft()
                self._unqueue(ue)
                dropped += 1
            if not queue:
                binding.demanded_at = None
        if dropped:
            self.drops["queue_timeout"] += dropped
        return dropped

    # ------------------------------------------------------------------ controller calls

    def ready(self, service: str, ue: bytes, app_ip: bytes, now: float) -> Released:
        """The instance of (service, ue) is ready at ``app_ip``: the queued items, in order."""
        key = self.key(service, ue)
        binding = self.bindings.get(key)
        if binding is None:
            binding = Binding(service, key[1], READY)
            self.bindings[key] = binding
        self._touch(key)
        resumed = binding.app_ip == app_ip and binding.state == PENDING and bool(binding.app_ip)
        binding.state = READY
        binding.app_ip = app_ip
        binding.last_active = now
        waited = None if binding.demanded_at is None else now - binding.demanded_at
        binding.demanded_at = None
        items: list[tuple[bytes, object]] = []
        while binding.queue:
            _, queued_ue, item = binding.queue.popleft()
            self._unqueue(queued_ue)
            items.append(item)
        self.counters["flushed"] += len(items)
        return Released(items, waited, resumed)

    def park(self, service: str, ue: bytes, idle_since: float | None = None) -> bool:
        """Mark a ready binding paused (before its instance is frozen); False if not ready, or
        if a packet went through since ``idle_since``, the activity the decision to pause was
        taken on: that packet is on its way into the instance, and freezing the instance now
        would strand it (a TCP segment the instance's kernel acknowledges while its process is
        frozen is never retransmitted: the client waits for an answer no packet will resume)."""
        binding = self.bindings.get(self.key(service, ue))
        if binding is None or binding.state != READY:
            return False
        if idle_since is not None and binding.last_active != idle_since:
            return False
        binding.frozen = False
        binding.state = PAUSED
        binding.parked_since = binding.last_active
        self._touch(self.key(service, ue))
        return True

    def frozen(self, service: str, ue: bytes) -> bool:
        """The controller froze the instance of a parked binding: the next packet may wake
        it on the packet path. False when the binding is no longer parked."""
        binding = self.bindings.get(self.key(service, ue))
        if binding is None or binding.state != PAUSED:
            return False
        binding.frozen = True
        return True

    def forget(self, service: str, ue: bytes, *, force: bool = False) -> bytes | None:
        """Remove a paused binding (its instance is about to be deleted): its address, or None
        when it is not paused (a packet asked for a resume meanwhile) unless ``force``."""
        key = self.key(service, ue)
        binding = self.bindings.get(key)
        if binding is None or (binding.state != PAUSED and not force):
            return None
        del self.bindings[key]
        self._touch(key)
        self._drop_queue(binding, "instance_gone")
        return binding.app_ip

    def refuse(self, service: str, ue: bytes, reason: str) -> int:
        """The demand of (service, ue) was refused: drop its queue (counted) and binding."""
        key = self.key(service, ue)
        binding = self.bindings.get(key)
        if binding is None:
            return 0
        n = len(binding.queue)
        self._touch(key)
        if binding.state == PENDING and not binding.app_ip:
            del self.bindings[key]
        elif binding.state == PENDING:
            binding.state = PAUSED  # a failed resume: the next packet tries again
        self._drop_queue(binding, f"refused_{reason}")
        self.counters[f"refused_{reason}"] += 1
        return n

    def activity(self) -> dict[Key, tuple[str, float]]:
        """(service, ue) -> (state, last activity) of every binding."""
        return {key: (b.state, b.last_active) for key, b in self.bindings.items()}

    def restore(self, service: str, ue: bytes, app_ip: bytes, *, paused: bool, now: float) -> None:
        """Re-create a binding from the store at start (no queue, no demand)."""
        key = self.key(service, ue)
        binding = self.bindings.get(key)
        self._touch(key)
        if binding is not None and binding.state == PENDING:
            binding.app_ip = app_ip  # packets came first: the queued demand will release them
            return
        self.bindings[key] = Binding(
            service,
            key[1],
            PAUSED if paused else READY,
            app_ip=app_ip,
            last_active=now,
            frozen=paused,  # the manager re-adopted it frozen: no freeze in progress
        )

    # ------------------------------------------------------------------ helpers

    def _touch(self, key: Key) -> None:
        if self.changed is not None:
            self.changed.add(key)

    def _unqueue(self, ue: bytes) -> None:
        self.queued -= 1
        left = self.queued_by_ue[ue] - 1
        if left > 0:
            self.queued_by_ue[ue] = left
        else:
            del self.queued_by_ue[ue]

    def _drop_queue(self, binding: Binding, reason: str) -> None:
        if binding.queue:
            self.drops[reason] += len(binding.queue)
            for _, ue, _ in binding.queue:
                self._unqueue(ue)
            binding.queue.clear()
        binding.demanded_at = None

    def app_ips(self, service: str) -> Iterable[bytes]:
        return [b.app_ip for b in self.bindings.values() if b.service == service and b.app_ip]

    def stats(self) -> dict[str, object]:
        states: Counter[str] = Counter(b.state for b in self.bindings.values())
        return {
            "bindings": dict(states),
            "queued": self.queued,
            "counters": dict(self.counters),
            "drops": dict(self.drops),
        }
