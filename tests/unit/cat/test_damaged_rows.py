"""A damaged row of the CAT part's tables (a declared class, an assignment) is set aside at
start and the manager starts with the others (fluidedge.core.rows); an assignment whose class
was set aside stays, as the part keeps one whose class is not declared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fixtures.resctrl import SHAPES, FakeResctrl
from tests.fixtures.rows import damage, set_aside_keys

from fluidedge.cat.persist import Tables
from fluidedge.core import rows
from fluidedge.core.store import Store

from .conftest import MakeManager


def _stored(path: Path) -> None:
    """Two classes and three assignments (one to the default group), the store closed."""
    store = Store(path)
    tables = Tables(store)
    tables.put_class("a", {"name": "a", "l3": "f"})
    tables.put_class("b", {"name": "b", "l3": "f0"})
    tables.put_assignment("i1", "a")
    tables.put_assignment("i2", "b")
    tables.put_assignment("i3", "default")
    store.close()


@pytest.mark.parametrize(
    "spec",
    [
        "{not json",
        json.dumps([{"name": "b", "l3": "f0"}]),  # a JSON list, not an object
        json.dumps({"name": "b", "l3": "xyz"}),  # not a mask: the model refuses it
        json.dumps({"name": "a", "l3": "f0"}),  # another class's spec under b's name
    ],
    ids=["bad-json", "list", "model-refused", "another-name"],
)
def test_a_class_row_that_does_not_decode_is_set_aside(
    tmp_path: Path, make_manager: MakeManager, spec: str
) -> None:
    path = tmp_path / "db.sqlite"
    _stored(path)
    damage(path, "UPDATE cat_classes SET spec = ? WHERE name = 'b'", spec)
    fs = FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"])
    manager = make_manager(fs, Store(path))
    assert sorted(manager.classes) == ["a"]
    assert manager.classes["a"].l3 == "f"
    assert fs.exists("a")
    assert not fs.exists("b")
    assert set_aside_keys(path) == [("cat_classes", "b")]
    assert rows.count(manager.tables.store) == 1
    assert [c["name"] for c in manager.tables.classes()] == ["a"]
    assert "class 'b'" in (manager.last_error or "")
    # its assignment stays, as one whose class is not declared: left be until it is again
    assert sorted(manager.bindings) == ["i1", "i2", "i3"]
    assert manager.sync() == 0
    assert manager.tables.assignments() == [("i1", "a"), ("i2", "b"), ("i3", "default")]


@pytest.mark.parametrize(
    "cos",
    [
        "../../tmp",  # it would become a resctrl path
        "info",  # resctrl's own directory, never a class
        b"b",  # a blob, not text
    ],
    ids=["path", "reserved", "blob"],
)
def test_an_assignment_row_that_does_not_decode_is_set_aside(
    tmp_path: Path, make_manager: MakeManager, cos: str | bytes
) -> None:
    path = tmp_path / "db.sqlite"
    _stored(path)
    damage(path, "UPDATE cat_assignments SET cos = ? WHERE instance = 'i2'", cos)
    manager = make_manager(FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"]), Store(path))
    assert sorted(manager.classes) == ["a", "b"]
    assert {b.instance: b.cos for b in manager.bindings.values()} == {"i1": "a", "i3": "default"}
    assert set_aside_keys(path) == [("cat_assignments", "i2")]
    assert rows.count(manager.tables.store) == 1
    assert manager.tables.assignments() == [("i1", "a"), ("i3", "default")]
    assert "assignment of 'i2'" in (manager.last_error or "")


def test_an_assignment_of_a_name_no_instance_has_is_set_aside(
    tmp_path: Path, make_manager: MakeManager
) -> None:
    path = tmp_path / "db.sqlite"
    _stored(path)
    damage(path, "UPDATE cat_assignments SET instance = 'I/2' WHERE instance = 'i2'")
    manager = make_manager(FakeResctrl(tmp_path / "r", SHAPES["12w-16c-plain"]), Store(path))
    assert sorted(manager.bindings) == ["i1", "i3"]
    assert set_aside_keys(path) == [("cat_assignments", "I/2")]
    assert rows.count(manager.tables.store) == 1
    assert [i for i, _ in manager.tables.assignments()] == ["i1", "i3"]
