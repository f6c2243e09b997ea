"""Failover: which of a dead node's instances this node takes over, and what it asks for.

Pure. Instances whose template says ``failover = "recreate"`` have a record in etcd
(``<prefix>/instances/<name>``: the node that runs it, the request that re-creates it, its
CPU and memory). When a record's node is dead, every live node computes the same placement
(:func:`fluidedge.cluster.placement.choose` over its view); the chosen one claims the record
with a compare-and-swap on its revision (one winner even if views differ) and creates the
instance. A node that finds one of its own instances claimed by another deletes its copy
(fencing: it was seen dead meanwhile). Names are the records' keys: failover needs instance
names unique in the site (an instance whose name another node has recorded gets no record).

A claimer whose creation fails gives the record back (:meth:`Record.given_back`: the dead
node's again, one more ``attempts``, ``retry_at`` later by a doubling delay): placement may
then pick another node, or the same one once the cause is gone. After
:data:`MAX_ATTEMPTS` failures the record stays as it is, the instance listed lost, until an
admin re-creates or deletes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fluidedge.cluster.errors import ClusterError
from fluidedge.cluster.placement import NodeState, choose

MAX_ATTEMPTS = 5  # failed re-creations after which a record is left lost
FIRST_DELAY = 2.0  # s before the second attempt; doubled each time, at most MAX_DELAY
MAX_DELAY = 60.0


@dataclass(frozen=True)
class Record:
    """``<prefix>/instances/<name>`` with its etcd revision."""

    name: str
    node: str
    request: dict[str, Any]
    cpus: float
    memory_mb: int
    revision: str
    taken_from: str | None = None  # the dead node it was taken over from
    ports: tuple[str, ...] = ()  # its OVN logical ports on its node (removed when taken over)
    attempts: int = 0  # re-creations that failed
    retry_at: float = 0.0  # wall-clock time before which nobody tries again
    error: str | None = None  # why the last one failed
    tenant: str | None = None  # the tenant whose instance it is (None: the admin's)

    @classmethod
    def of(cls, name: str, value: Mapping[str, Any], revision: str) -> Record:
        return cls(
            name=name,
            node=str(value["node"]),
            request=dict(value["request"]),
            cpus=float(value.get("cpus", 0.0)),
            memory_mb=int(value.get("memory_mb", 0)),
            revision=revision,
            taken_from=value.get("taken_from"),
            ports=tuple(str(p) for p in value.get("ports", ())),
            attempts=int(value.get("attempts", 0)),
            retry_at=float(value.get("retry_at", 0.0)),
            error=value.get("error"),
            tenant=value["tenant"] if isinstance(value.get("tenant"), str) else None,
        )

    def taken_by(self, node: str) -> dict[str, Any]:
        """The record's value once ``node`` has claimed it from its dead owner."""
        return {
            "node": node,
            "request": self.request,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "taken_from": self.node,
            "attempts": self.attempts,
            **({"tenant": self.tenant} if self.tenant is not None else {}),
        }

    def given_back(self, error: str, now: float) -> dict[str, Any]:
        """The record's value after a claimer failed to re-create it: its dead node's again
        (with the ports still to remove), one more attempt, the next not before a delay."""
        attempts = self.attempts + 1
        value: dict[str, Any] = {
            "node": self.node,
            "request": self.request,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "attempts": attempts,
            "retry_at": now + min(MAX_DELAY, FIRST_DELAY * 2 ** (attempts - 1)),
            "error": error[:500],
        }
        if self.taken_from is not None:
            value["taken_from"] = self.taken_from
        if self.tenant is not None:
            value["tenant"] = self.tenant
        if self.ports:
            value["ports"] = list(self.ports)
        return value


def request_of(inst: Any) -> dict[str, Any]:
    """The creation request that makes ``inst`` (an instance record of the manager) again."""
    body: dict[str, Any] = {"name": inst.name, "template": inst.template}
    interfaces: dict[str, dict[str, Any]] = {}
    for iface in inst.interfaces:
        wanted: dict[str, Any] = {}
        if iface.addresses:
            wanted["addresses"] = list(iface.addresses)
        if getattr(iface, "gateway", None):  # e.g. an edge app's route back via the TOF
            wanted["gateway"] = iface.gateway
        if wanted:
            interfaces[iface.name] = wanted
    if interfaces:
        body["interfaces"] = interfaces
    if inst.labels:
        body["labels"] = dict(inst.labels)
    resources = {"cpus": inst.resources.cpus, "memory_mb": inst.resources.memory_mb}
    body["resources"] = {k: v for k, v in resources.items() if v}
    return body


@dataclass(frozen=True)
class Plan:
    publish: list[str]  # local instances to record (failover on, no record yet)
    fence: list[str]  # local instances another node has taken over: delete here
    forget: list[str]  # records of this node whose instance is gone: delete the record
    take: list[Record]  # dead nodes' instances placement gives this node: claim, create


def plan(
    me: str,
    view: Iterable[NodeState],
    records: Mapping[str, Record],
    local: Mapping[str, bool],
    now: float = 0.0,
) -> Plan:
    """What this node does this beat. ``local``: its instances -> whether failover is on;
    ``now``: the wall clock, against the records' ``retry_at``."""
    nodes = {n.name: n for n in view}
    publish = sorted(n for n, on in local.items() if on and n not in records)
    # only what was taken from this node: an instance of the same name elsewhere is not ours
    fence = sorted(
        n for n in local if n in records and records[n].node != me and records[n].taken_from == me
    )
    forget = sorted(n for n, r in records.items() if r.node == me and n not in local)
    take: list[Record] = []
    live = [n for n in nodes.values() if n.alive]
    for record in sorted(records.values(), key=lambda r: r.name):
        owner = nodes.get(record.node)
        if owner is None or owner.alive or record.name in local:
            continue
        if record.attempts >= MAX_ATTEMPTS or now < record.retry_at:
            continue  # given up on, or not yet: a failed re-creation waits its delay
        try:
            chosen = choose(live, record.cpus, record.memory_mb)
        except ClusterError:
            continue  # nothing fits now: stays lost, tried again next beat
        if chosen.name == me:
            take.append(record)
    return Plan(publish, fence, forget, take)
