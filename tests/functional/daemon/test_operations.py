"""Operating the daemon: the lock, the WAL walk on real SQLite logs, the service install, the
journal handler on a real datagram socket."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from fluidedge.core.lock import StateDirLocked, StateLock
from fluidedge.core.store import Store, StoreDamaged
from fluidedge.core.walcheck import check_wal
from fluidedge.daemon.logs import JournalHandler
from fluidedge.daemon.service import ServicePaths, install


def test_lock_is_exclusive_names_its_owner_and_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateLock(state, "serve") as lock:
        assert lock.path.stat().st_mode & 0o777 == 0o600
        assert state.stat().st_mode & 0o777 == 0o700
        with pytest.raises(StateDirLocked, match=rf"pid {os.getpid()}, serve since"):
            StateLock(state, "state restore").acquire()
        # Another process is refused too (flock is per open file, across processes).
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; "
                "from fluidedge.core.lock import StateLock; "
                "StateLock(Path(sys.argv[1])).acquire()",
                str(state),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert other.returncode != 0
        assert "is in use by another fluidedge process" in other.stderr
    with StateLock(state, "again"):
        pass


def _wal_of(tmp_path: Path, rows: int) -> bytes:
    """A real WAL left by a writer that did not checkpoint (a copy taken while it is open)."""
    db = tmp_path / "w.sqlite"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (x TEXT)")
    for index in range(rows):
        conn.execute("INSERT INTO t VALUES (?)", (str(index) * 100,))
    data = (tmp_path / "w.sqlite-wal").read_bytes()
    conn.close()
    return data


def test_wal_walk_accepts_logs_and_torn_tails_and_refuses_hidden_loss(tmp_path: Path) -> None:
    data = _wal_of(tmp_path, 30)
    report = check_wal(data)
    assert report.problem is None
    assert report.valid_commits == 31  # the CREATE TABLE and 30 inserts
    # A torn last frame (crash during the last, unacknowledged commit) is normal.
    assert check_wal(data[:-100]).problem is None
    # Garbage in the middle: later committed transactions would silently vanish.
    middle = len(data) // 2
    damaged = data[:middle] + os.urandom(2000) + data[middle + 2000 :]
    problem = check_wal(damaged).problem
    assert problem is not None
    assert "committed transaction(s) after it would be lost" in problem
    # One flipped bit in a page also breaks the checksum chain.
    flipped = bytearray(data)
    flipped[32 + 24 + 100] ^= 1
    assert check_wal(bytes(flipped)).problem is not None
    # An invalid header hides the whole log.
    assert "magic" in str(check_wal(b"\0" * 32 + data[32:]).problem)
    assert check_wal(b"").problem is None


def test_install_service_writes_unit_config_and_state_dir(tmp_path: Path) -> None:
    paths = ServicePaths(root=tmp_path, python=sys.executable)
    written = install(paths)
    assert written == [paths.unit, paths.config]
    assert paths.state_dir.stat().st_mode & 0o777 == 0o700
    paths.config.write_text("# mine\n")
    assert install(paths) == [paths.unit]  # an existing config is kept
    assert paths.config.read_text() == "# mine\n"
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "scripts/setup installs systemd (systemd-analyze)"
    verify = subprocess.run(
        [analyze, "verify", "--man=no", str(paths.unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # verify exits 0 on unknown keys and bad values, warning on stderr: both must be clean.
    assert (verify.returncode, verify.stderr.strip(), verify.stdout.strip()) == (0, "", "")


def test_install_service_command_prints_and_installs(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "fluidedge", "install-service"]
    printed = subprocess.run([*run, "--print"], capture_output=True, text=True, check=True)
    assert f"ExecStart={sys.executable} -m fluidedge serve" in printed.stdout
    done = subprocess.run(
        [*run, "--root", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "etc/systemd/system/fluidedge.service" in done.stdout
    assert (tmp_path / "etc/fluidedge/fluidedge.toml").exists()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[socket.socket, logging.Logger]]:
    """A datagram socket standing for the journal's, and a logger whose only handler is a
    :class:`JournalHandler` sending to it."""
    path = tmp_path / "journal.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(10)
    handler = JournalHandler(path)
    logger = logging.getLogger(f"fluidedge.test_journal_{tmp_path.name}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield server, logger
    finally:
        logger.removeHandler(handler)
        handler.close()
        server.close()


def test_journal_handler_sends_fields_to_a_datagram_socket(
    journal: tuple[socket.socket, logging.Logger],
) -> None:
    server, logger = journal
    logger.error("store gone", extra={"part": "daemon", "event": "store_unavailable"})
    data = server.recv(65536)
    assert b"MESSAGE=store gone\n" in data
    assert b"PRIORITY=3\n" in data
    assert b"FLUIDEDGE_EVENT=store_unavailable\n" in data


def test_journal_handler_outlives_the_logging_reconfiguration_uvicorn_makes(
    journal: tuple[socket.socket, logging.Logger],
) -> None:
    """``uvicorn.Config`` runs ``logging.config.dictConfig``, which closes every handler; the
    daemon builds it after setting up its journal handler, whose records must still arrive."""
    server, logger = journal
    uvicorn.Config(app=object(), log_level="info")  # its dictConfig: handler.close()
    logger.warning("after uvicorn", extra={"part": "daemon", "event": "check"})
    assert b"MESSAGE=after uvicorn\n" in server.recv(65536)


def test_store_from_a_newer_release_or_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    store.migrate("part", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"])
    store.close()
    with pytest.raises(StoreDamaged, match="part part has schema version 2, this fluidedge knows"):
        Store(path).migrate("part", ["CREATE TABLE a (x)"])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=7")
    conn.close()
    with pytest.raises(StoreDamaged, match="store format 7 was written by a newer fluidedge"):
        Store(path)
    foreign = tmp_path / "other.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE mine (x)")
    conn.close()
    with pytest.raises(StoreDamaged, match="not a fluidedge store"):
        Store(foreign)
