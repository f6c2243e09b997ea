"""Pure decisions of the superfluid controller: admission, addresses, idle transitions.

Kept free of I/O and clocks (times are arguments) so the unit tests state the rules exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fluidedge.tof.superfluid.model import OnDemand

INSTANCE_NAME_MAX = 32  # the instance manager's names: ^[a-z][a-z0-9-]{0,31}$
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def instance_name(service: str, suffix: str, prefix: str = "") -> str:
    """The name of a new instance of ``service``: ``<prefix><service>-<suffix>``, within the
    instance manager's charset and length.

    WHY: a TOF service's name allows what an instance's does not (upper case, ``_``, ``.``,
    a leading digit, 63 characters); an invalid name made every creation fail, forever. The
    service part is lower-cased, other characters become ``-``, and it is cut to fit; the
    ``prefix`` (a tenant's ``<tenant>-``) and the random ``suffix`` are kept whole.
    """
    slug = _NOT_NAME.sub("-", service.lower()).strip("-") or "svc"
    if not prefix and not slug[0].isalpha():
        slug = f"s-{slug}"
    room = INSTANCE_NAME_MAX - len(prefix) - len(suffix) - 1
    slug = slug[: max(room, 1)].rstrip("-") or "s"
    return f"{prefix}{slug}-{suffix}"


@dataclass(slots=True)
class TokenBucket:
    """At most ``burst`` creations at once and ``rate`` per second on average, node-wide: in
    any window of ``w`` seconds at most ``burst + rate * w`` grants (GCRA, virtual scheduling).

    WHY: a flood of new UEs under ``per-ue`` must not turn into a flood of cold ``runc create``
    calls that starve the node; the pool refills at its own pace, and this bounds how fast we
    draw from it (refusals are counted, queued packets wait up to the queue timeout).
    """

    rate: float
    burst: int
    tat: float = float("-inf")  # theoretical arrival time of the next grant
    _undo: float = float("-inf")

    def take(self, now: float) -> float:
        """Reserve the next grant: 0.0 if it is now, else the seconds until it (the caller
        waits that long, or calls :meth:`give_back` at once to cancel the reservation)."""
        interval = 1.0 / self.rate
        grant = max(now, self.tat - (self.burst - 1) * interval)
        self._undo = self.tat
        self.tat = max(self.tat, grant) + interval
        return grant - now

    def give_back(self) -> None:
        """Cancel the reservation just made (call right after :meth:`take`, same lock)."""
        self.tat = self._undo


def admit(spec: OnDemand, live: int) -> str | None:
    """None when the service may have one more instance, else the refusal reason."""
    if live >= spec.bound:
        return "max_instances"
    return None


def pick_address(spec: OnDemand, used: Iterable[str]) -> str | None:
    """The first host of the service's address pool not in ``used`` (None: pool exhausted)."""
    taken = set(used)
    for host in spec.pool_hosts():
        if host not in taken:
            return host
    return None


PAUSE = "pause"
DELETE = "delete"


def idle_action(
    spec: OnDemand, state: str, last_active: float, paused_at: float | None, now: float
) -> str | None:
    """What an instance in ``state`` ("ready"/"paused" binding) is due for at ``now``.

    ``last_active``: the binding's latest packet (monotonic); ``paused_at``: when it was paused
    (same clock). T1 = ``idle_pause`` since the latest packet; T2 = ``idle_delete`` since the
    pause.
    """
    if state == "ready" and now - last_active >= spec.idle_pause:
        return PAUSE
    if state == "paused" and paused_at is not None and now - paused_at >= spec.idle_delete:
        return DELETE
    return None


def needs_new_instances(old: OnDemand | None, new: OnDemand | None) -> bool:
    """Whether a change of a service's spec invalidates its instances (template, policy,
    addresses or interface changed, or no longer on demand); timers and bounds apply live."""
    if old is None:
        return False
    if new is None:
        return True
    return (old.template, old.policy, old.address_pool, old.interface, old.gateway) != (
        new.template,
        new.policy,
        new.address_pool,
        new.interface,
        new.gateway,
    )
