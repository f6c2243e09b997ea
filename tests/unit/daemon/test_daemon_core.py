"""The daemon's shared ground: config, token guard, store migrations, error mapping."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fluidedge.core import store as store_module
from fluidedge.core.config import parse_config, resolve_token
from fluidedge.core.errors import ConfigError
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store, StoreError
from fluidedge.daemon.app import create_app
from fluidedge.errors import ConflictError

TOKEN = "t" * 32


class _Item(BaseModel):
    name: str


class _EchoPart:
    name = "echo"

    def __init__(self) -> None:
        self.started = False

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/echo")
        def read() -> dict[str, bool]:
            return {"started": self.started}

        @router.post("/echo")
        def write(item: _Item) -> dict[str, str]:
            if item.name == "taken":
                raise ConflictError("name 'taken' is already used")
            return {"name": item.name}

        return router

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    def metrics(self) -> str:
        return "echo_up 1\n"


def _client(tmp_path: Path) -> TestClient:
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    context = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    context.parts["echo"] = _EchoPart()
    return TestClient(create_app(context))


def test_defaults_are_secure() -> None:
    config = parse_config({})
    assert config.api.listen == "127.0.0.1"
    assert config.api.token is None


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="listen"):
        parse_config({"api": {"listen": "not-an-ip"}})
    with pytest.raises(ConfigError, match=r"\[tof\] must be a table"):
        parse_config({"tof": 3})


def test_token_file_is_created_private_and_reused(tmp_path: Path) -> None:
    api = parse_config({"api": {"token_file": str(tmp_path / "tok")}}).api
    first = resolve_token(api)
    assert len(first) >= 32
    assert (tmp_path / "tok").stat().st_mode & 0o777 == 0o600
    assert resolve_token(api) == first


def test_mutations_need_the_token_reads_do_not(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get("/echo").json() == {"started": True}
        assert client.post("/echo", json={"name": "a"}).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 32}
        assert client.post("/echo", json={"name": "a"}, headers=wrong).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/echo", json={"name": "a"}, headers=good).json() == {"name": "a"}


def test_errors_map_to_status_with_reason(tmp_path: Path) -> None:
    good = {"Authorization": f"Bearer {TOKEN}"}
    with _client(tmp_path) as client:
        bad = client.post("/echo", json={"nom": "a"}, headers=good)
        assert bad.status_code == 400
        assert "name" in bad.json()["detail"]
        clash = client.post("/echo", json={"name": "taken"}, headers=good)
        assert clash.status_code == 409
        assert "already used" in clash.json()["detail"]
        assert "echo_up 1" in client.get("/metrics").text


def test_store_migrations_apply_once_and_keep_data(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    migrations = ["CREATE TABLE things (name TEXT PRIMARY KEY)"]
    store = Store(path)
    store.migrate("part", migrations)
    with store.transaction() as conn:
        conn.execute("INSERT INTO things VALUES ('a')")
    store.close()
    again = Store(path)
    again.migrate("part", [*migrations, "ALTER TABLE things ADD COLUMN size INTEGER"])
    rows = again.query("SELECT name, size FROM things")
    assert [tuple(r) for r in rows] == [("a", None)]


def test_store_rolls_back_on_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])

    def failing_write() -> None:
        with store.transaction() as conn:
            conn.execute("INSERT INTO things VALUES ('a')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_write()
    assert store.query("SELECT * FROM things") == []


def _record_files(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[str]:
    """The files ``owner.name(fd)`` is called on from now on (each call still made)."""
    seen: list[str] = []
    real = getattr(owner, name)

    def recording(fd: int) -> object:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(owner, name, recording)
    return seen


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files ``os.fdatasync`` is called on from now on (each call still made)."""
    return _record_files(monkeypatch, os, "fdatasync")


def test_store_flushes_the_wal_after_each_durable_commit_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flushed: list[str]
) -> None:
    """Under FULL a commit is followed by one fdatasync of the WAL (the flush SQLite's FULL
    makes, made by the store on a descriptor it keeps: the connection runs NORMAL);
    ``durable=False`` commits without it, also after a failed one; a failed flush is a
    StoreError."""
    store = Store(tmp_path / "db.sqlite")
    store.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])
    wal = str(tmp_path / "db.sqlite-wal")
    flushed.clear()
    with store.transaction(durable=False) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        conn.execute("INSERT INTO things VALUES ('a')")
    assert flushed == []

    def failing_write() -> None:
        with store.transaction(durable=False) as conn:
            conn.execute("INSERT INTO things VALUES ('b')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_write()
    assert flushed == []
    with store.transaction() as conn:
        conn.execute("INSERT INTO things VALUES ('c')")
    assert flushed == [wal]
    with store.transaction() as conn:
        conn.execute("INSERT INTO things VALUES ('d')")
    assert flushed == [wal, wal]
    assert [r[0] for r in store.query("SELECT name FROM things")] == ["a", "c", "d"]
    assert [r[0] for r in Store(tmp_path / "db.sqlite").query("SELECT name FROM things")] == [
        "a",
        "c",
        "d",
    ]

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", broken)
    failed = r"sync of .*db\.sqlite-wal failed: Input/output error"
    with pytest.raises(StoreError, match=failed), store.transaction() as conn:
        conn.execute("INSERT INTO things VALUES ('e')")
    for quiet in (Store(tmp_path / "n.sqlite", synchronous="normal"), Store(":memory:")):
        quiet.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])
        with quiet.transaction() as conn:  # no flush to make: fdatasync would raise
            conn.execute("INSERT INTO things VALUES ('a')")


def test_store_sync_flushes_the_wal_under_full_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flushed: list[str]
) -> None:
    """``sync()`` makes the commits so far durable with one fdatasync of the WAL (what FULL
    does per commit); nothing to do under NORMAL or in memory; a failed flush is an error."""
    store = Store(tmp_path / "db.sqlite")
    store.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])
    with store.transaction(durable=False) as conn:
        conn.execute("INSERT INTO things VALUES ('a')")
    flushed.clear()
    store.sync()
    assert flushed == [str(tmp_path / "db.sqlite-wal")]
    for quiet in (Store(tmp_path / "n.sqlite", synchronous="normal"), Store(":memory:")):
        flushed.clear()
        quiet.sync()
        assert flushed == []

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(StoreError, match=r"sync of .*db\.sqlite-wal failed: Input/output error"):
        store.sync()


def test_store_writes_the_wal_out_once_and_reads_back_through_it(tmp_path: Path) -> None:
    """Under FULL the WAL is written out to its working size after its first commit (so a
    durable commit's fsync does not journal a new file size); the zeros past the last frame
    are the log's end: the rows read back, also from a copy of the files taken while the store
    is open (what a power loss leaves), and the store's own WAL check accepts it."""
    store = Store(tmp_path / "db.sqlite")
    store.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])
    wal = tmp_path / "db.sqlite-wal"
    page = store.query("PRAGMA page_size")[0][0]
    frames = store.query("PRAGMA wal_autocheckpoint")[0][0]
    assert wal.stat().st_size == 32 + frames * (24 + page)
    for index in range(50):
        with store.transaction() as conn:
            conn.execute("INSERT INTO things VALUES (?)", (f"t{index}",))
    assert wal.stat().st_size == 32 + frames * (24 + page)  # written into, not grown
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("db.sqlite", "db.sqlite-wal", "db.sqlite.created"):
        (crashed / name).write_bytes((tmp_path / name).read_bytes())
    again = Store(crashed / "db.sqlite")
    assert len(again.query("SELECT name FROM things")) == 50
    store.close()
    assert len(Store(tmp_path / "db.sqlite").query("SELECT name FROM things")) == 50


def test_store_normal_leaves_the_wal_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", synchronous="normal")
    store.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])
    assert (tmp_path / "db.sqlite-wal").stat().st_size < 64 * 1024


def test_a_new_store_is_on_disk_before_its_creation_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection runs NORMAL: the opening's own writes (the migrations table, the store
    format) are flushed by the store before the marker that says a store exists is written."""
    marker = tmp_path / "db.sqlite.created"
    seen: list[tuple[str, bool]] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), marker.exists()))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    Store(tmp_path / "db.sqlite")
    assert seen[0] == (str(tmp_path / "db.sqlite-wal"), False)
    assert marker.exists()


@pytest.fixture
def written_back(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the store starts writing out early from now on (each call still made)."""
    return _record_files(monkeypatch, store_module, "start_write_back")


def test_a_commit_that_defers_its_flush_starts_the_wal_write_out(
    tmp_path: Path, flushed: list[str], written_back: list[str]
) -> None:
    """Under FULL a ``durable=False`` commit queues the write-out of the WAL (so that the
    ``sync()`` to come waits for less) without flushing it; a durable commit flushes and queues
    nothing more; NORMAL and an in-memory store do neither. What it queues is no promise: the
    rows read back after ``sync()`` as after a durable commit."""
    store = Store(tmp_path / "db.sqlite")
    store.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])
    wal = str(tmp_path / "db.sqlite-wal")
    flushed.clear()
    written_back.clear()
    with store.transaction(durable=False) as conn:
        conn.execute("INSERT INTO things VALUES ('a')")
    assert (written_back, flushed) == ([wal], [])
    store.sync()
    assert (written_back, flushed) == ([wal], [wal])
    with store.transaction() as conn:
        conn.execute("INSERT INTO things VALUES ('b')")
    assert (written_back, flushed) == ([wal], [wal, wal])
    assert [r[0] for r in Store(tmp_path / "db.sqlite").query("SELECT name FROM things")] == [
        "a",
        "b",
    ]
    for quiet in (Store(tmp_path / "n.sqlite", synchronous="normal"), Store(":memory:")):
        quiet.migrate("part", ["CREATE TABLE things (name TEXT PRIMARY KEY)"])
        written_back.clear()
        with quiet.transaction(durable=False) as conn:
            conn.execute("INSERT INTO things VALUES ('a')")
        assert written_back == []


def test_start_write_back_queues_a_real_files_pages(tmp_path: Path) -> None:
    """The kernel takes the write-out request on a read-only descriptor of a file with dirty
    pages (the store's WAL descriptor), and refuses a pipe (ESPIPE): the call reports it."""
    path = tmp_path / "f"
    with path.open("wb") as f:
        f.write(b"x" * 65536)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert store_module.start_write_back(fd)
    finally:
        os.close(fd)
    read, write = os.pipe()
    try:
        assert not store_module.start_write_back(read)
    finally:
        os.close(read)
        os.close(write)
