"""The store is checked like a database: damage refuses the start, removal refuses writes.

A real daemon (the TOF part with the ``none`` backend: services are plain store rows), real
SQLite files, real corruption: garbage in the WAL, garbage in the database, files deleted or
replaced while the daemon runs, and a second daemon on the same state directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.core.client import ClientError
from fluidedge.core.store import companions, marker_path
from fluidedge.core.walcheck import check_wal
from tests.fixtures.daemon import DaemonFactory, DaemonHandle

TOF = {"tof": {"backend": "none"}}


def _service(index: int) -> dict[str, str]:
    return {
        "name": f"svc{index}",
        "serviceIP": f"198.18.{index // 200}.{index % 200 + 1}",
        "applicationIP": f"198.19.0.{index % 200 + 1}",
    }


def _add_services(daemon: DaemonHandle, indices: range) -> None:
    client = daemon.client()
    try:
        for index in indices:
            client.post("/service", _service(index))
    finally:
        client.close()


def _names(daemon: DaemonHandle) -> set[str]:
    return {s["name"] for s in httpx.get(f"{daemon.url}/service").json()}


def _digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.exists()}


def _crash_with_wal(daemon_factory: DaemonFactory, count: int) -> DaemonHandle:
    """A daemon killed -9 after ``count`` acknowledged service POSTs: they are in its WAL."""
    daemon = daemon_factory(TOF)
    _add_services(daemon, range(count))
    daemon.kill9()
    wal = companions(daemon.store_path)[1]
    report = check_wal(wal.read_bytes())
    assert report.problem is None
    assert report.valid_commits >= count
    return daemon


def test_garbage_in_the_wal_refuses_start_then_reset_starts_empty_on_purpose(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = _crash_with_wal(daemon_factory, 40)
    wal = companions(daemon.store_path)[1]
    # The frames' end, not the file's: the store writes its WAL out with zeros past them.
    data = wal.read_bytes()
    page = int.from_bytes(data[8:12], "big")
    size = 32 + check_wal(data).valid_frames * (24 + page)
    with wal.open("r+b") as handle:  # a few KB of garbage in the middle of the log
        handle.seek(size // 2)
        handle.write(os.urandom(4096))
    before = _digest(companions(daemon.store_path)[:2])  # (-shm is a rebuilt index)

    log = daemon.start_refused()
    assert "refusing to start on a damaged store" in log
    assert "WAL frame" in log
    assert "committed transaction(s) after it would be lost" in log
    assert "fluidedge state restore" in log
    assert "--reset-store" in log
    # Refusing changed nothing on disk (no checkpoint of the truncated log).
    assert _digest(companions(daemon.store_path)[:2]) == before

    daemon.extra_args = ["--reset-store"]
    daemon.start()
    assert _names(daemon) == set()
    aside = sorted(p.name for p in daemon.state_dir.iterdir() if ".damaged-" in p.name)
    assert any(n.endswith("-wal") for n in aside)
    assert any(n.startswith("fluidedge.sqlite.damaged-") and "-" not in n[-4:] for n in aside)
    # --reset-store on a healthy store keeps it.
    _add_services(daemon, range(3))
    daemon.restart()
    assert _names(daemon) == {"svc0", "svc1", "svc2"}


def test_garbage_in_the_database_file_refuses_start(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF)
    _add_services(daemon, range(300))
    daemon.stop()  # clean stop: everything checkpointed into the main file
    db = daemon.store_path
    wal = companions(db)[1]
    assert not wal.exists() or wal.stat().st_size == 0
    size = db.stat().st_size
    assert size > 4 * 4096
    with db.open("r+b") as handle:
        handle.seek(2 * 4096)
        handle.write(os.urandom(size - 3 * 4096))
    log = daemon.start_refused()
    assert "refusing to start on a damaged store" in log
    assert "quick_check" in log or "malformed" in log
    assert "fluidedge state restore" in log


def test_a_missing_store_that_existed_refuses_start(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF)
    _add_services(daemon, range(2))
    daemon.stop()
    marker = marker_path(daemon.store_path)
    assert marker.exists()
    assert marker.stat().st_mode & 0o777 == 0o600
    daemon.store_path.unlink()
    log = daemon.start_refused()
    assert "is missing, but a store was created there" in log
    assert "--reset-store" in log
    # An emptied (truncated) database is refused too.
    daemon.store_path.write_bytes(b"")
    assert "the database is empty, but a store was created there" in daemon.start_refused()


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_store_files_removed_or_replaced_while_running_refuse_writes(
    daemon_factory: DaemonFactory, how: str
) -> None:
    daemon = daemon_factory(TOF)
    _add_services(daemon, range(2))
    db = daemon.store_path
    if how == "removed":
        for file in companions(db):
            file.unlink()
    else:
        copy = db.with_name("copy.sqlite")
        shutil.copyfile(db, copy)
        os.replace(copy, db)
    client = daemon.client()
    with pytest.raises(ClientError) as refused:
        client.post("/service", _service(5))
    client.close()
    assert refused.value.status == 503
    assert f"was {how}" in refused.value.detail
    assert "writes are refused" in refused.value.detail
    health = httpx.get(f"{daemon.url}/healthz").json()
    assert health["status"] == "degraded"
    assert f"was {how}" in health["store"]
    # Nothing was acknowledged that is not there; reads still answer from memory.
    assert _names(daemon) == {"svc0", "svc1"}
    # The next start does not come up silently empty over the removed store.
    if how == "removed":
        daemon.stop()
        assert "is missing, but a store was created there" in daemon.start_refused()


def test_a_second_daemon_on_the_same_state_dir_refuses(daemon_factory: DaemonFactory) -> None:
    first = daemon_factory(TOF)
    assert first.process is not None
    second = daemon_factory(TOF, start=False, state_dir=first.state_dir)
    log = second.start_refused()
    assert f"is in use by another fluidedge process (pid {first.process.pid}, serve" in log
    assert str(first.state_dir) in log
    _add_services(first, range(1))  # the first one is unharmed
    # The lock dies with its owner: after kill -9 the second one starts.
    first.kill9()
    second.start()
    assert _names(second) == {"svc0"}


def test_offline_commands_refuse_a_running_daemon(daemon_factory: DaemonFactory) -> None:
    daemon = daemon_factory(TOF)
    backup = daemon.workdir / "b.sqlite"
    out = _cli("state", "backup", str(backup), "--config", str(daemon.config_path))
    assert out.returncode == 0, out.stderr
    refused = _cli("state", "restore", str(backup), "--config", str(daemon.config_path))
    assert refused.returncode == 1
    assert "in use by another fluidedge process" in refused.stderr


def _cli(*args: str, env: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fluidedge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )
