"""REST routes of the cluster part: ``GET /v1/nodes`` and ``GET /v1/nodes/{name}``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from fluidedge.cluster.errors import NodeNotFound
from fluidedge.cluster.placement import NodeState
from fluidedge.cluster.registry import Registry
from fluidedge.core.openapi import error_responses


class NodeView(BaseModel):
    name: str
    url: str
    state: Literal["alive", "dead"]
    cpu_capacity: float
    cpu_committed: float
    memory_capacity_mb: int
    memory_committed_mb: int
    instances: list[str]
    lost: list[str]  # a dead node's instances that no live node runs (none taken over)

    @classmethod
    def of(cls, node: NodeState, running: frozenset[str] = frozenset()) -> NodeView:
        """``running``: the instances live nodes run (a dead node's, taken over, are not lost)."""
        return cls(
            name=node.name,
            url=node.url,
            state="alive" if node.alive else "dead",
            cpu_capacity=node.cpu_capacity,
            cpu_committed=node.cpu_committed,
            memory_capacity_mb=node.memory_capacity,
            memory_committed_mb=node.memory_committed,
            instances=list(node.instances),
            lost=[] if node.alive else [i for i in node.instances if i not in running],
        )


def _views(nodes: list[NodeState]) -> list[NodeView]:
    running = frozenset(i for node in nodes if node.alive for i in node.instances)
    return [NodeView.of(node, running) for node in nodes]


def build_router(registry: Registry) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["cluster"])

    @router.get("/nodes")
    def list_nodes() -> list[NodeView]:
        """Every registered node, alive or dead, as etcd says (at most a heartbeat old)."""
        return _views(registry.nodes())

    @router.get("/nodes/{name}", responses=error_responses(404))
    def get_node(name: str) -> NodeView:
        for view in _views(registry.nodes()):
            if view.name == name:
                return view
        raise NodeNotFound(f"no node {name!r} in the cluster")

    return router
