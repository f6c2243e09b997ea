"""fluidedge.core.rows: a row that cannot be read back is set aside whole; the rest loads.

A real SQLite store in a temporary directory; rows damaged with ``sqlite3`` as an operator's
edit would damage them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from tests.fixtures.rows import set_aside

from fluidedge.core import rows
from fluidedge.core.store import Store, StoreDamaged

TABLE = [
    "CREATE TABLE things (kind TEXT NOT NULL, name TEXT NOT NULL, doc TEXT, n BLOB, "
    "PRIMARY KEY (kind, name))"
]


def _store(tmp_path: Path, docs: dict[tuple[str, str], str]) -> Store:
    store = Store(tmp_path / "db.sqlite")
    store.migrate("things", TABLE)
    with store.transaction() as conn:
        for (kind, name), doc in docs.items():
            conn.execute("INSERT INTO things VALUES (?, ?, ?, ?)", (kind, name, doc, b"\x00\xff"))
    return store


def _decode(row: sqlite3.Row) -> tuple[str, int]:
    doc = json.loads(row["doc"])
    return row["name"], int(doc["size"])


def _load(store: Store) -> list[tuple[str, int]]:
    return rows.load(
        store, "things", ("name", "doc", "n"), _decode, key=("kind", "name"), order=("name",)
    )


def test_a_row_that_does_not_decode_is_set_aside_whole_and_the_rest_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(
        tmp_path,
        {
            ("a", "one"): '{"size": 1}',
            ("a", "two"): "{not json",
            ("b", "three"): '{"size": 3}',
            ("b", "four"): '["a list"]',
            ("b", "five"): '{"size": "many"}',
        },
    )
    assert rows.count(store) == 0  # no table yet: nothing ever set aside
    with caplog.at_level(logging.ERROR, logger="fluidedge.core.rows"):
        assert _load(store) == [("one", 1), ("three", 3)]
    left = {(r["kind"], r["name"]) for r in store.query("SELECT kind, name FROM things")}
    assert left == {("a", "one"), ("b", "three")}
    assert rows.count(store) == 3
    aside = {r.key: r for r in set_aside(tmp_path / "db.sqlite")}
    assert set(aside) == {"a/two", "b/four", "b/five"}
    assert {r.source for r in aside.values()} == {"things"}
    assert aside["a/two"].row == {
        "kind": "a",
        "name": "two",
        "doc": "{not json",
        "n": "b'\\x00\\xff'",
    }
    assert aside["a/two"].reason.startswith("JSONDecodeError: Expecting property name")
    assert aside["b/four"].reason.startswith("TypeError")
    assert aside["b/five"].reason.startswith("ValueError: invalid literal for int()")
    messages = [r.getMessage() for r in caplog.records]
    assert any("row b/four of table things set aside (TypeError" in m for m in messages)
    # Read again, nothing more is set aside; the keys are free to be declared again.
    assert _load(store) == [("one", 1), ("three", 3)]
    assert rows.count(store) == 3
    with store.transaction() as conn2:
        conn2.execute("INSERT INTO things VALUES ('a', 'two', '{\"size\": 2}', NULL)")
    assert _load(store) == [("one", 1), ("three", 3), ("two", 2)]
    store.close()


def test_a_single_row_that_fails_is_set_aside(tmp_path: Path) -> None:
    store = _store(tmp_path, {("a", "one"): "null"})
    assert _load(store) == []
    assert rows.count(store) == 1


def test_every_row_failing_refuses_instead_of_emptying_the_table(tmp_path: Path) -> None:
    store = _store(tmp_path, {("a", "one"): "{}", ("a", "two"): "{}"})
    with pytest.raises(StoreDamaged) as refused:
        _load(store)
    assert "not one of the 2 rows of table things can be read" in str(refused.value)
    assert "a/one: KeyError: 'size'" in str(refused.value)
    assert "fluidedge state restore" in str(refused.value)
    assert len(store.query("SELECT * FROM things")) == 2  # nothing set aside
    assert rows.count(store) == 0


def test_a_fault_that_is_not_damage_is_raised_and_sets_nothing_aside(tmp_path: Path) -> None:
    store = _store(tmp_path, {("a", "one"): '{"size": 1}', ("a", "two"): '{"size": 2}'})

    def broken(row: sqlite3.Row) -> None:
        if row["name"] == "two":
            raise RuntimeError("a fault of ours")

    with pytest.raises(RuntimeError):
        rows.load(store, "things", ("name",), broken, key=("kind", "name"))
    assert rows.count(store) == 0


@pytest.mark.parametrize(
    ("table", "columns"), [("things; DROP TABLE things", ("name",)), ("things", ("name, 1",))]
)
def test_tables_and_columns_must_be_identifiers(
    tmp_path: Path, table: str, columns: tuple[str, ...]
) -> None:
    store = _store(tmp_path, {("a", "one"): '{"size": 1}'})
    with pytest.raises(ValueError, match="is not a table or column name"):
        rows.load(store, table, columns, _decode)
    assert len(store.query("SELECT * FROM things")) == 1


def test_a_reason_spanning_lines_is_one_bounded_line(tmp_path: Path) -> None:
    store = _store(tmp_path, {("a", "one"): '{"size": 1}', ("a", "two"): "x"})

    def long(row: sqlite3.Row) -> None:
        if row["name"] == "two":
            raise ValueError("first line\n" + "word " * 500)

    rows.load(store, "things", ("name",), long, key=("kind", "name"))
    (aside,) = set_aside(tmp_path / "db.sqlite")
    assert "\n" not in aside.reason
    assert len(aside.reason) <= 500
    assert aside.reason.startswith("ValueError: first line word")


def test_rows_set_aside_are_listed_and_dropped_one_by_one(tmp_path: Path) -> None:
    store = _store(tmp_path, {("a", "one"): '{"size": 1}', ("a", "two"): "x", ("b", "3"): "y"})
    assert rows.stored(store) == []
    _load(store)
    listed = rows.stored(store)
    assert [r.key for r in listed] == ["b/3", "a/two"]  # set aside in name order
    assert listed == set_aside(tmp_path / "db.sqlite")  # the daemon's reading and the file's
    dropped = rows.drop(store, listed[0].id)
    assert dropped == listed[0]
    assert [r.key for r in rows.stored(store)] == ["a/two"]
    assert rows.count(store) == 1
    with pytest.raises(rows.SetAsideNotFound, match=f"no row set aside has id {listed[0].id}"):
        rows.drop(store, listed[0].id)
    assert rows.SetAsideNotFound.http_status == 404
    store.close()


def test_dropping_before_anything_was_set_aside_is_not_found(tmp_path: Path) -> None:
    store = _store(tmp_path, {("a", "one"): '{"size": 1}'})
    with pytest.raises(rows.SetAsideNotFound):
        rows.drop(store, 1)
    store.close()
