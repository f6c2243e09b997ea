"""A damaged row of ``sfc_objects`` is set aside at start; the other objects load.

A real store on a file: objects declared through the service, the store closed, one row
damaged with ``sqlite3`` as an operator's edit or a bad disk would, the part started again on
it (:meth:`ChainService.load`). No data plane (nothing to install)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.rows import set_aside

from fluidedge.chains.persist import Tables
from fluidedge.chains.service import ChainService
from fluidedge.core import rows
from fluidedge.core.store import Store, StoreDamaged


def _classifier(object_id: str, source: str, destination: str) -> dict[str, Any]:
    return {
        "id": object_id,
        "logical_source_port": source,
        "logical_destination_port": destination,
    }


# Chain ``ca`` (pair pa, group ga, classifier fa) and chain ``cb`` (pb, gb, fb), and objects no
# other one names: a pair ``sp``, a group ``sg`` (of pair ``sgp``), a classifier ``sc``.
DECLARED: list[tuple[str, dict[str, Any]]] = [
    ("port_pair", {"id": "pa", "ingress": "a0", "egress": "a1"}),
    ("port_pair", {"id": "pb", "ingress": "b0", "egress": "b1"}),
    ("port_pair", {"id": "sp", "ingress": "s0", "egress": "s1"}),
    ("port_pair", {"id": "sgp", "ingress": "t0", "egress": "t1"}),
    ("port_pair_group", {"id": "ga", "port_pairs": ["pa"]}),
    ("port_pair_group", {"id": "gb", "port_pairs": ["pb"]}),
    ("port_pair_group", {"id": "sg", "port_pairs": ["sgp"]}),
    ("flow_classifier", _classifier("fa", "va", "vb")),
    ("flow_classifier", _classifier("fb", "vc", "vd")),
    ("flow_classifier", _classifier("sc", "ve", "vf")),
    ("port_chain", {"id": "ca", "port_pair_groups": ["ga"], "flow_classifiers": ["fa"]}),
    ("port_chain", {"id": "cb", "port_pair_groups": ["gb"], "flow_classifiers": ["fb"]}),
]  # fmt: skip
FIELD = {
    "port_pair": "port_pairs",
    "port_pair_group": "groups",
    "flow_classifier": "classifiers",
    "port_chain": "chains",
}


def _ids(service: ChainService) -> set[tuple[str, str]]:
    return {
        (kind, object_id)
        for kind, field in FIELD.items()
        for object_id in getattr(service.state, field)
    }


ALL = {(kind, doc["id"]) for kind, doc in DECLARED}


class Node:
    """The store's file, and the part started on it (again) as the daemon would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = Store(path)
        self.service = ChainService(Tables(self.store), lambda: [])
        self.service.load()

    def restart(self) -> None:
        self.store.close()
        self.store = Store(self.path)
        self.service = ChainService(Tables(self.store), lambda: [])
        self.service.load()

    def damage(self, kind: str, object_id: str, doc: str) -> None:
        """Write ``doc`` as the stored document of ``kind`` ``object_id``, the part stopped."""
        self.store.close()
        with closing(sqlite3.connect(self.path)) as conn, conn:
            changed = conn.execute(
                "UPDATE sfc_objects SET doc = ? WHERE kind = ? AND id = ?", (doc, kind, object_id)
            ).rowcount
        assert changed == 1

    def stored(self, kind: str, object_id: str) -> dict[str, Any]:
        found = self.store.query(
            "SELECT doc FROM sfc_objects WHERE kind = ? AND id = ?", (kind, object_id)
        )
        assert len(found) == 1
        return dict(json.loads(found[0]["doc"]))

    def set_aside(self) -> list[rows.SetAside]:
        return set_aside(self.path)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node(tmp_path / "db.sqlite")
    for kind, doc in DECLARED:
        made.service.create(kind, doc)
    yield made
    made.store.close()


def _bad_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc)[:-3]


def _wrong_type(doc: dict[str, Any]) -> str:
    return json.dumps(list(doc.values()))


def _refused(doc: dict[str, Any]) -> str:
    return json.dumps({**doc, "tenant": "Not A Tenant"})


DAMAGES = {"bad-json": _bad_json, "wrong-type": _wrong_type, "refused": _refused}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize(
    ("kind", "object_id"),
    [
        ("port_pair", "sp"),
        ("port_pair_group", "sg"),
        ("flow_classifier", "sc"),
        ("port_chain", "cb"),
    ],
)
def test_a_damaged_row_is_set_aside_and_the_rest_loads(
    node: Node, kind: str, object_id: str, damage: str
) -> None:
    declared = node.stored(kind, object_id)
    node.damage(kind, object_id, DAMAGES[damage](declared))
    node.restart()

    assert _ids(node.service) == ALL - {(kind, object_id)}
    assert rows.count(node.store) == 1
    [aside] = node.set_aside()
    assert (aside.source, aside.key) == ("sfc_objects", f"{kind}/{object_id}")
    assert aside.row["kind"] == kind
    assert aside.reason
    assert not node.store.query(
        "SELECT 1 FROM sfc_objects WHERE kind = ? AND id = ?", (kind, object_id)
    )

    # its id is free: declaring it again is no conflict, and it survives the next start
    body = {k: v for k, v in declared.items() if k not in ("tenant", "chain_id")}
    node.service.create(kind, body)
    node.restart()
    assert _ids(node.service) == ALL
    assert rows.count(node.store) == 1


def test_what_names_a_set_aside_row_is_set_aside_in_turn(node: Node) -> None:
    """Pair ``pb`` does not decode: its group ``gb`` names nothing, then chain ``cb`` does
    not; the three are set aside, the start serves the rest (which checks)."""
    node.damage("port_pair", "pb", "{")
    node.restart()

    gone = {("port_pair", "pb"), ("port_pair_group", "gb"), ("port_chain", "cb")}
    assert _ids(node.service) == ALL - gone
    assert [(a.source, a.key) for a in node.set_aside()] == [
        ("sfc_objects", "port_pair/pb"),
        ("sfc_objects", "port_pair_group/gb"),
        ("sfc_objects", "port_chain/cb"),
    ]
    assert "'pb'" in node.set_aside()[1].reason
    assert rows.count(node.store) == 3

    node.service.create("port_pair", {"id": "pb", "ingress": "b0", "egress": "b1"})
    node.service.create("port_pair_group", {"id": "gb", "port_pairs": ["pb"]})
    node.service.create("port_chain", {"id": "cb", "port_pair_groups": ["gb"],
                                       "flow_classifiers": ["fb"]})  # fmt: skip
    node.restart()
    assert _ids(node.service) == ALL


def test_a_reference_to_another_tenants_object_is_set_aside(node: Node) -> None:
    """A row the model takes (pair ``pb`` moved to tenant ``acme``) that the state refuses:
    its group then names a pair it may not, so it goes, and its chain."""
    node.damage("port_pair", "pb", json.dumps({**node.stored("port_pair", "pb"), "tenant": "acme"}))
    node.restart()

    gone = {("port_pair_group", "gb"), ("port_chain", "cb")}
    assert _ids(node.service) == ALL - gone
    assert node.service.get("port_pair", "pb").tenant == "acme"
    assert [a.key for a in node.set_aside()] == ["port_pair_group/gb", "port_chain/cb"]


def test_a_conflict_no_row_can_be_blamed_for_is_a_damaged_store(node: Node) -> None:
    """Two chains with one number: either could be the damaged one, so the start is refused
    (a clear StoreDamaged naming the conflict), and nothing is set aside."""
    doc = node.stored("port_chain", "cb")
    number = node.stored("port_chain", "ca")["chain_id"]
    node.damage("port_chain", "cb", json.dumps({**doc, "chain_id": number}))
    node.store = Store(node.path)
    service = ChainService(Tables(node.store), lambda: [])

    with pytest.raises(StoreDamaged, match="chain_id") as refused:
        service.load()
    assert "do not check together" in str(refused.value)
    assert rows.count(node.store) == 0
