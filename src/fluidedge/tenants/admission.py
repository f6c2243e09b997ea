"""Admission control of instance requests: tenant quotas and the host's own limits.

Pure policy (:func:`cpu_cap`, :func:`pids_budget`, :func:`check`) with one small stateful
part, :class:`Admission`, which holds the requests being created (admitted, not yet instances)
so that two concurrent requests cannot both take the last of a quota.

What is checked, in order (each refusal says which limit, what is used and what was asked):

1. one instance's pids limit is at most ``max_pids_per_instance`` and the host's budget (403);
2. the pids limits of all instances, this one included, fit the host's budget:
   ``pid_max * (1 - pids_reserved_fraction) * pids_overcommit`` (409);
3. for a tenant: its template's capabilities are in its quota's (403), and its instances,
   CPUs (sum of CPU caps), memory and pids with this one fit its quota (409).

Every instance gets a CPU cap (CFS quota): the one it names, else ``default_cpu_limit`` (at
least its CPU request); a tenant's instance is capped even when the default is off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fluidedge.tenants.config import AdmissionConfig
from fluidedge.tenants.errors import Forbidden, LimitExceeded, QuotaExceeded
from fluidedge.tenants.models import Quota, Usage

PID_MAX_PATH = Path("/proc/sys/kernel/pid_max")
PID_MAX_FALLBACK = 32768  # the kernel's default, when /proc cannot say


PID_MAX_TTL = 1.0  # seconds a read of pid_max is reused (an operator may raise it live)
_pid_max_cache: list[float] = [0.0, -PID_MAX_TTL - 1]  # value, monotonic time read


def pid_max() -> int:
    """The host's ``kernel.pid_max``, re-read at most once a second (reading /proc costs
    more than the rest of an admission)."""
    now = time.monotonic()
    if now - _pid_max_cache[1] > PID_MAX_TTL:
        try:
            value = int(PID_MAX_PATH.read_text())
        except (OSError, ValueError):
            value = PID_MAX_FALLBACK
        _pid_max_cache[:] = [value, now]
    return int(_pid_max_cache[0])


@dataclass(frozen=True)
class Demand:
    """What one instance holds, in the quota's units."""

    cpus: float  # its CPU cap (0.0 when uncapped: an admin's choice, then not counted)
    memory_mb: int
    pids: int


class Limits(Protocol):
    """What admission reads of an instance's resources (the instances part's ``Resources``)."""

    @property
    def cpus(self) -> float: ...
    @property
    def cpu_limit(self) -> float | None: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def pids(self) -> int: ...


def cpu_cap(resources: Limits, default: float | None, *, tenant: bool) -> float | None:
    """The CPU cap an instance gets: its own, else the default (at least its request);
    a tenant's instance is always capped (at its request when the default is off)."""
    if resources.cpu_limit is not None:
        return resources.cpu_limit
    if default is not None:
        return max(default, resources.cpus)
    return resources.cpus if tenant else None


def demand_of(resources: Limits) -> Demand:
    return Demand(
        cpus=resources.cpu_limit or 0.0, memory_mb=resources.memory_mb, pids=resources.pids
    )


def pids_budget(host_pid_max: int, config: AdmissionConfig) -> int:
    """How many pids the instances' limits may sum to on this host."""
    return int(host_pid_max * (1.0 - config.pids_reserved_fraction) * config.pids_overcommit)


def usage_of(demands: list[Demand]) -> Usage:
    return Usage(
        instances=len(demands),
        cpus=round(sum(d.cpus for d in demands), 6),
        memory_mb=sum(d.memory_mb for d in demands),
        pids=sum(d.pids for d in demands),
    )


@dataclass(frozen=True)
class TenantDemand:
    """A tenant's side of a request: its name, quota, usage and the template's capabilities."""

    name: str
    quota: Quota
    usage: Usage
    capabilities: list[str]


def check(
    demand: Demand,
    *,
    config: AdmissionConfig,
    host_pid_max: int,
    host_pids: int,
    tenant: TenantDemand | None,
) -> None:
    """Raise the refusal of an instance holding ``demand`` (see the module docstring);
    ``host_pids``: the pids limits already held on the host."""
    budget = pids_budget(host_pid_max, config)
    bound = min(config.max_pids_per_instance, budget)
    if demand.pids > bound:
        raise LimitExceeded(
            f"resources.pids: {demand.pids} is above the per-instance limit {bound} "
            f"([admission] max_pids_per_instance = {config.max_pids_per_instance}; the host's "
            f"budget is {budget} of pid_max {host_pid_max})"
        )
    if host_pids + demand.pids > budget:
        raise QuotaExceeded(
            f"host pids: instances hold pids limits of {host_pids} in all; {demand.pids} more "
            f"would exceed the host's budget of {budget} (pid_max {host_pid_max}, "
            f"{config.pids_reserved_fraction:.0%} kept for the host)"
        )
    if tenant is None:
        return
    refused = sorted(set(tenant.capabilities) - set(tenant.quota.capabilities))
    if refused:
        raise Forbidden(
            f"capabilities {', '.join(refused)} are outside tenant {tenant.name}'s quota "
            f"(allowed: {', '.join(tenant.quota.capabilities) or 'none'})"
        )
    quota, used = tenant.quota, tenant.usage
    over = [
        (what, have, ask, limit)
        for what, have, ask, limit in (
            ("instances", used.instances, 1, quota.instances),
            ("cpus", used.cpus, demand.cpus, quota.cpus),
            ("memory_mb", used.memory_mb, demand.memory_mb, quota.memory_mb),
            ("pids", used.pids, demand.pids, quota.pids),
        )
        if have + ask > limit + 1e-9
    ]
    if over:
        raise QuotaExceeded(
            f"quota of tenant {tenant.name}: "
            + "; ".join(
                f"{what} {_num(have)} used + {_num(ask)} asked > {_num(limit)}"
                for what, have, ask, limit in over
            )
        )


def check_capabilities(tenant: str, quota: Quota, capabilities: list[str]) -> None:
    """A tenant's template may only name capabilities its quota allows (403)."""
    refused = sorted(set(capabilities) - set(quota.capabilities))
    if refused:
        raise Forbidden(
            f"capabilities {', '.join(refused)} are outside tenant {tenant}'s quota "
            f"(allowed: {', '.join(quota.capabilities) or 'none'})"
        )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class Totals:
    """What a set of instances holds (mutable: kept up to date one instance at a time)."""

    instances: int = 0
    cpus: float = 0.0
    memory_mb: int = 0
    pids: int = 0

    def add(self, demand: Demand, sign: int = 1) -> None:
        self.instances += sign
        self.cpus += sign * demand.cpus
        self.memory_mb += sign * demand.memory_mb
        self.pids += sign * demand.pids

    def usage(self) -> Usage:
        return Usage(
            instances=self.instances,
            cpus=round(self.cpus, 6),
            memory_mb=self.memory_mb,
            pids=self.pids,
        )


class Ledger:
    """What the instances hold, per owner (None: the admin), kept incrementally: O(1) per
    admission rather than a walk over every instance (10,000 idle instances on a node)."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[str | None, Demand]] = {}
        self.totals: dict[str | None, Totals] = {}

    def add(self, name: str, owner: str | None, demand: Demand) -> None:
        self.remove(name)
        self.held[name] = (owner, demand)
        self.totals.setdefault(owner, Totals()).add(demand)

    def remove(self, name: str) -> None:
        entry = self.held.pop(name, None)
        if entry is not None:
            self.totals[entry[0]].add(entry[1], -1)

    def reset(self, entries: list[tuple[str, str | None, Demand]]) -> None:
        self.held.clear()
        self.totals.clear()
        for name, owner, demand in entries:
            self.add(name, owner, demand)


# What the existing instances hold, per owner: a fresh copy at each call.
Committed = Callable[[], dict[str | None, Totals]]


class Admission:
    """Admits instance requests against ``committed()`` (what the existing instances hold,
    per owner) plus the requests admitted and still being created."""

    def __init__(
        self,
        config: AdmissionConfig,
        committed: Committed,
        host_pid_max: Callable[[], int] = pid_max,
    ) -> None:
        self.config = config
        self._committed = committed
        self._pid_max = host_pid_max
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str | None, Demand]] = {}
        # What a tenant's instances hold on the site's other nodes (the cluster part sets it
        # from their records, at most a heartbeat old): a quota is the tenant's on the site.
        self.elsewhere: Callable[[str], Usage] | None = None

    def _held(self, skip: str | None = None) -> dict[str | None, Totals]:
        held = self._committed()  # a copy: ours to add the pending requests to
        for name, (owner, demand) in list(self._pending.items()):
            if name != skip:
                held.setdefault(owner, Totals()).add(demand)
        return held

    def local_usages(self) -> dict[str | None, Usage]:
        """What each owner's instances hold on this host (None: the admin's)."""
        return {owner: totals.usage() for owner, totals in self._held().items()}

    def usage(self, tenant: str | None = None) -> Usage:
        """What ``tenant``'s instances hold, here and on the site's other nodes (None: every
        instance on the host)."""
        held = self._held()
        if tenant is not None:
            return _plus(held.get(tenant, Totals()).usage(), self._elsewhere(tenant))
        return Totals(
            instances=sum(t.instances for t in held.values()),
            cpus=sum(t.cpus for t in held.values()),
            memory_mb=sum(t.memory_mb for t in held.values()),
            pids=sum(t.pids for t in held.values()),
        ).usage()

    def _elsewhere(self, tenant: str) -> Usage:
        return self.elsewhere(tenant) if self.elsewhere is not None else Usage()

    @contextmanager
    def admit(
        self,
        name: str,
        demand: Demand,
        tenant: tuple[str, Quota, list[str]] | None,
    ) -> Iterator[None]:
        """Hold ``demand`` for request ``name`` while it is created (refused: raises)."""
        with self._lock:
            held = self._held(skip=name)
            owner = tenant[0] if tenant else None
            tenant_demand = None
            if tenant is not None:
                mine = _plus(held.get(tenant[0], Totals()).usage(), self._elsewhere(tenant[0]))
                tenant_demand = TenantDemand(tenant[0], tenant[1], mine, tenant[2])
            check(
                demand,
                config=self.config,
                host_pid_max=self._pid_max(),
                host_pids=sum(t.pids for t in held.values()),
                tenant=tenant_demand,
            )
            self._pending[name] = (owner, demand)
        try:
            yield
        finally:
            with self._lock:
                self._pending.pop(name, None)


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        instances=a.instances + b.instances,
        cpus=round(a.cpus + b.cpus, 6),
        memory_mb=a.memory_mb + b.memory_mb,
        pids=a.pids + b.pids,
    )
