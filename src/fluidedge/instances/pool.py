"""The pool refill policy: which template's pool the next prepare worker fills, pure.

Each template keeps ``round(pool.size * pool_scale)`` prepared shells. Refilling is
hysteretic (once below ``low_water`` a pool fills up to its target, then rests), a failed
prepare backs the pool off for :data:`BACKOFF_S`, and a pool that just served a request and is
still at least half full waits ``refill_delay_ms`` so that ``runc create`` (CPU-heavy) does not
compete with the request being served. Shells are pinned ahead of time, each to the CPU least
represented among the pool's shells (:func:`pin_for`), and a request takes a shell pinned to
the CPUs placement chose if there is one (:func:`take`): its config phase then skips the
``cpuset.cpus`` write (~0.2 ms on cgroup v1). No I/O and no clock of its own: the manager passes
``now`` (``time.monotonic()``), so the tests drive time; :func:`next_due` tells an idle worker
when time alone may give it a job (otherwise it sleeps until the manager notifies it).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fluidedge.instances.models import TemplateSpec
from fluidedge.instances.records import Shell

BACKOFF_S = 1.0  # after a failed prepare, before the pool tries again


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
    pinning: list[int] = field(default_factory=list)  # CPUs of the shells in preparation


def target(template: TemplateSpec, scale: float) -> int:
    """The number of shells ``template``'s pool keeps."""
    return round(template.pool.size * scale)


def next_job(
    templates: Mapping[str, TemplateSpec], pools: dict[str, Pool], scale: float, now: float
) -> TemplateSpec | None:
    """The template whose pool needs a shell, if any (hysteresis: low-water -> target).

    Updates each pool's ``filling`` flag (and creates missing pools): call it with the
    manager's lock held, then count the job in with :func:`start_job`.
    """
    for name, template in templates.items():
        pool = pools.setdefault(name, Pool())
        goal = target(template, scale)
        low = goal if template.pool.low_water is None else min(template.pool.low_water, goal)
        have = len(pool.ready) + pool.preparing
        if have >= goal:
            pool.filling = False
            continue
        if pool.backoff_until > now:
            continue
        recent = now - pool.last_consumed < template.pool.refill_delay_ms / 1000
        if recent and len(pool.ready) >= max(1, goal // 2):
            continue  # not urgent: let the request just served finish first
        if have < low and (template.pool.refill or pool.consumed == 0):
            pool.filling = True
        if pool.filling:
            return template
    return None


def next_due(
    templates: Mapping[str, TemplateSpec], pools: Mapping[str, Pool], scale: float, now: float
) -> float | None:
    """The earliest time after ``now`` at which :func:`next_job` may answer differently without
    anything else changing: the end of a back-off or of a refill delay of a pool short of its
    target. None: only a change (a shell taken or prepared, a template added, a stop) can give
    a worker something to do, so it may sleep until notified."""
    due: list[float] = []
    for name, template in templates.items():
        pool = pools.get(name)
        if pool is None or len(pool.ready) + pool.preparing >= target(template, scale):
            continue
        if pool.backoff_until > now:
            due.append(pool.backoff_until)
        until = pool.last_consumed + template.pool.refill_delay_ms / 1000
        if until > now:
            due.append(until)
    return min(due, default=None)


def pin_for(pool: Pool, cpus: Sequence[int]) -> int:
    """The CPU the next shell is pinned to: the one fewest ready or coming shells have (the
    lowest on a tie)."""
    have = Counter(cpu for shell in pool.ready for cpu in shell.cpus if len(shell.cpus) == 1)
    have.update(pool.pinning)
    return min(cpus, key=lambda cpu: (have[cpu], cpu))


def start_job(pool: Pool, pin: int | None = None) -> None:
    pool.preparing += 1
    if pin is not None:
        pool.pinning.append(pin)


def finish_job(
    pool: Pool,
    shell: Shell | None,
    error: str | None,
    *,
    keep: bool,
    now: float,
    pin: int | None = None,
) -> bool:
    """Account for a finished prepare; True if ``shell`` joined the pool (else the caller
    destroys it: its template was deleted meanwhile, ``keep`` false)."""
    pool.preparing -= 1
    if pin is not None and pin in pool.pinning:
        pool.pinning.remove(pin)
    if shell is None:
        pool.failures += 1
        pool.last_error = error
        pool.backoff_until = now + BACKOFF_S
        return False
    if keep:
        pool.ready.append(shell)
        return True
    return False


def take(pool: Pool, *, cold: bool, now: float, cpus: tuple[int, ...] = ()) -> Shell | None:
    """A ready shell for a request, or None: the request goes the cold path. The oldest one
    pinned to ``cpus`` if any, else the oldest."""
    if cold or not pool.ready:
        return None
    pool.consumed += 1
    pool.last_consumed = now
    for shell in pool.ready:
        if shell.cpus == cpus:
            pool.ready.remove(shell)
            return shell
    return pool.ready.popleft()


def full(templates: Mapping[str, TemplateSpec], pools: Mapping[str, Pool], scale: float) -> bool:
    """Whether every template's pool is at its target."""
    return all(
        (len(pools[name].ready) if name in pools else 0) >= target(t, scale)
        for name, t in templates.items()
    )
