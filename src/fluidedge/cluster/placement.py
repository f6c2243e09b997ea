"""Which node runs a request: a pure function of the nodes' reported state.

Each live node reports its capacity (CPUs and memory after overcommit) and what its instances
have committed. ``spread`` picks the node with the most free memory (relative to its
capacity; then the most free CPU, then the name), ``pack`` the fullest node that still fits;
a request names a node to skip the choice. The view may be a heartbeat old: the chosen
node's own admission (:mod:`fluidedge.instances.placement`) still has the last word.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from fluidedge.cluster.errors import NodeNotFound, NodeUnavailable, NoNodeFits

Policy = Literal["spread", "pack"]
_EPS = 1e-9


@dataclass(frozen=True)
class NodeState:
    """A node as its record and liveness key say."""

    name: str
    url: str
    alive: bool
    cpu_capacity: float  # CPUs x overcommit
    memory_capacity: int  # MB x overcommit
    cpu_committed: float = 0.0
    memory_committed: int = 0
    instances: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # what each tenant's instances hold there (quota units), and which instances are whose
    tenants: dict[str, dict[str, float]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    @property
    def cpu_free(self) -> float:
        return self.cpu_capacity - self.cpu_committed

    @property
    def memory_free(self) -> int:
        return self.memory_capacity - self.memory_committed

    def fits(self, cpus: float, memory_mb: int) -> bool:
        return self.cpu_free + _EPS >= cpus and self.memory_free >= memory_mb

    @classmethod
    def of(cls, record: dict[str, Any], alive: bool) -> NodeState:
        capacity = record.get("capacity", {})
        committed = record.get("committed", {})
        return cls(
            name=str(record["name"]),
            url=str(record["url"]),
            alive=alive,
            cpu_capacity=float(capacity.get("cpus", 0.0)),
            memory_capacity=int(capacity.get("memory_mb", 0)),
            cpu_committed=float(committed.get("cpus", 0.0)),
            memory_committed=int(committed.get("memory_mb", 0)),
            instances=tuple(record.get("instances", ())),
            tenants=_tenants(record.get("tenants")),
            owners=_owners(record.get("owners")),
        )


def _tenants(value: Any) -> dict[str, dict[str, float]]:
    """A record's per-tenant usage, what of it is well formed (a peer's record)."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, dict[str, float]] = {}
    for tenant, usage in value.items():
        if isinstance(tenant, str) and isinstance(usage, dict):
            out[tenant] = {
                k: float(v)
                for k, v in usage.items()
                if k in USAGE_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
            }
    return out


def _owners(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


USAGE_KEYS = ("instances", "cpus", "memory_mb", "pids")


def choose(
    nodes: Iterable[NodeState],
    cpus: float,
    memory_mb: int,
    policy: Policy = "spread",
    named: str | None = None,
) -> NodeState:
    """The node to run a request of ``cpus``/``memory_mb`` (``named``: that one, if alive)."""
    listed = {node.name: node for node in nodes}
    if named is not None:
        node = listed.get(named)
        if node is None:
            raise NodeNotFound(f"no node {named!r} in the cluster")
        if not node.alive:
            raise NodeUnavailable(f"node {named!r} is dead (no heartbeat within its lease)")
        return node
    live = [node for node in listed.values() if node.alive]
    fitting = [node for node in live if node.fits(cpus, memory_mb)]
    if not fitting:
        raise NoNodeFits(
            f"no live node has {cpus} CPU and {memory_mb} MB free "
            f"({len(live)} live of {len(listed)})"
        )

    def free_share(node: NodeState) -> tuple[float, float]:
        memory = node.memory_free / node.memory_capacity if node.memory_capacity else 0.0
        cpu = node.cpu_free / node.cpu_capacity if node.cpu_capacity else 0.0
        return memory, cpu

    if policy == "spread":
        return min(fitting, key=lambda n: (-free_share(n)[0], -free_share(n)[1], n.name))
    return min(fitting, key=lambda n: (free_share(n)[0], free_share(n)[1], n.name))
