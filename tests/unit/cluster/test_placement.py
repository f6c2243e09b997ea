"""Choosing a node: spread, pack, a named node, dead nodes, nothing fits."""

from __future__ import annotations

import pytest

from fluidedge.cluster.errors import NodeNotFound, NodeUnavailable, NoNodeFits
from fluidedge.cluster.placement import NodeState, choose


def node(name: str, memory_used: int, *, alive: bool = True, cpus_used: float = 0.0) -> NodeState:
    return NodeState(name, f"http://127.0.0.1:1/{name}", alive, 4.0, 1000, cpus_used, memory_used)


NODES = [node("a", 600), node("b", 100), node("c", 300)]


def test_spread_picks_the_emptiest_and_pack_the_fullest_that_fits() -> None:
    assert choose(NODES, 0.5, 100, "spread").name == "b"
    assert choose(NODES, 0.5, 100, "pack").name == "a"
    assert choose(NODES, 0.5, 500, "pack").name == "c"  # a has only 400 MB free


def test_ties_go_by_cpu_then_name() -> None:
    same = [node("y", 100, cpus_used=1.0), node("x", 100, cpus_used=1.0), node("z", 100)]
    assert choose(same, 0.1, 10, "spread").name == "z"
    assert choose(same, 0.1, 10, "pack").name == "x"


def test_dead_nodes_are_skipped_and_a_named_one_refused() -> None:
    nodes = [node("a", 0, alive=False), node("b", 900)]
    assert choose(nodes, 0.1, 50).name == "b"
    with pytest.raises(NodeUnavailable, match="dead"):
        choose(nodes, 0.1, 50, named="a")
    with pytest.raises(NodeNotFound):
        choose(nodes, 0.1, 50, named="q")
    assert choose(nodes, 0.1, 5000, named="b").name == "b"  # named: its own admission decides


def test_nothing_fits() -> None:
    with pytest.raises(NoNodeFits, match="2 live of 3"):
        choose([*NODES[:2], node("d", 0, alive=False)], 0.5, 950)
    with pytest.raises(NoNodeFits):
        choose(NODES, 4.5, 10)  # no node has 4.5 CPUs free


def test_a_record_becomes_a_state() -> None:
    record = {
        "name": "n1",
        "url": "http://10.0.0.1:8181",
        "capacity": {"cpus": 8.0, "memory_mb": 2048},
        "committed": {"cpus": 1.5, "memory_mb": 512},
        "instances": ["i1", "i2"],
    }
    state = NodeState.of(record, alive=True)
    assert (state.cpu_free, state.memory_free, state.instances) == (6.5, 1536, ("i1", "i2"))


def test_a_dead_nodes_instances_are_lost_unless_a_live_node_runs_them() -> None:
    from fluidedge.cluster.api import _views

    dead = NodeState("b", "http://127.0.0.1:2", False, 1.0, 100, instances=("x", "y"))
    live = NodeState("a", "http://127.0.0.1:1", True, 1.0, 100, instances=("y", "z"))
    views = {v.name: v for v in _views([live, dead])}
    assert views["b"].state == "dead"
    assert views["b"].lost == ["x"]  # y was taken over by a
    assert views["a"].lost == []
