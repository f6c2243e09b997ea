"""A damaged row of the cluster part's tables (what the node saw of the site, the writes it
still owes) is set aside at start and the part starts with the others (fluidedge.core.rows)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.fixtures.rows import damage, set_aside_keys

from fluidedge.cluster.part import ClusterPart, create_part
from fluidedge.cluster.persist import PendingTable, SeenTable
from fluidedge.core import rows
from fluidedge.core.config import DaemonConfig
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store

SECTION = {
    "etcd": "http://127.0.0.1:1",
    "node": "here",
    "url": "http://127.0.0.1:2",
    "token": "t" * 24,
}


def _start(path: Path) -> ClusterPart:
    store = Store(path)
    return create_part(SECTION, DaemonContext(DaemonConfig(state_dir=path.parent), store))


def _stored(path: Path) -> Path:
    store = Store(path)
    SeenTable(store).replace("templates", {"web", "db"})
    SeenTable(store).replace("tenants", {"acme"})
    pending = PendingTable(store)
    pending.put("templates", "new", {"name": "new"})
    pending.put("networks", "old", None)
    pending.put("secgroups", "grp", {"id": "grp", "rules": []})
    store.close()
    return path


def _keys(path: Path, table: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute(f"SELECT kind, name FROM {table}").fetchall())  # noqa: S608 (test constants)


@pytest.mark.parametrize(
    ("kind", "name", "key"),
    [
        ("bogus", "db", "bogus/db"),  # a kind the part does not sync
        ("templates", "../db", "templates/../db"),  # no site object has that name
        ("templates", b"db", None),  # a blob, not text
    ],
    ids=["unknown-kind", "bad-name", "blob"],
)
def test_a_seen_row_that_does_not_decode_is_set_aside(
    tmp_path: Path, kind: str, name: str | bytes, key: str | None
) -> None:
    path = _stored(tmp_path / "s.sqlite")
    damage(
        path,
        "UPDATE cluster_seen SET kind = ?, name = ? WHERE kind = 'templates' AND name = 'db'",
        kind,
        name,
    )
    part = _start(path)
    assert part._seen == {"templates": {"web"}, "tenants": {"acme"}}
    listed = set_aside_keys(path)
    assert [source for source, _ in listed] == ["cluster_seen"]
    if key is not None:
        assert listed[0][1] == key
    assert rows.count(part.ctx.store) == 1
    assert _keys(path, "cluster_seen") == [("templates", "web"), ("tenants", "acme")]


@pytest.mark.parametrize(
    "value",
    ["{not json", '[{"name": "new"}]', '"new"', "7"],
    ids=["bad-json", "list", "string", "number"],
)
def test_a_pending_write_that_does_not_decode_is_set_aside(tmp_path: Path, value: str) -> None:
    path = _stored(tmp_path / "s.sqlite")
    damage(path, "UPDATE cluster_pending SET value = ? WHERE name = 'new'", value)
    part = _start(path)
    assert part._pending == {
        ("networks", "old"): None,
        ("secgroups", "grp"): {"id": "grp", "rules": []},
    }
    assert set_aside_keys(path) == [("cluster_pending", "templates/new")]
    assert rows.count(part.ctx.store) == 1
    assert _keys(path, "cluster_pending") == [("networks", "old"), ("secgroups", "grp")]


def test_a_pending_write_of_a_kind_the_site_does_not_share_is_set_aside(tmp_path: Path) -> None:
    path = _stored(tmp_path / "s.sqlite")
    damage(path, "UPDATE cluster_pending SET kind = 'instances' WHERE name = 'old'")
    part = _start(path)
    assert sorted(part._pending) == [("secgroups", "grp"), ("templates", "new")]
    assert set_aside_keys(path) == [("cluster_pending", "instances/old")]
    assert rows.count(part.ctx.store) == 1
