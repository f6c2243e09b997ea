"""SQLite persistence shared by the daemon's parts, kept like a database.

One database file, WAL journal, one connection guarded by a lock (the daemon's writes are small
and few; reads are served from in-memory state). Each part declares its schema as a list of
migrations under its own name; :meth:`Store.migrate` applies the ones not yet applied, in order,
so a part can grow its tables across releases without losing declared state.

What the store promises (docs/daemon.md, "Integrity" and "Durability"):

- **Checked at open.** Before SQLite touches the files, the WAL is walked
  (:mod:`fluidedge.core.walcheck`: damage SQLite would silently skip is refused); then, on a
  read-only connection (which never checkpoints a damaged log into the database),
  ``PRAGMA quick_check``, the store format (``PRAGMA user_version``) and the parts' schema
  versions. Damage raises :class:`StoreDamaged`, whose message says what is wrong and how to
  recover; nothing on disk is changed.
- **Never silently empty.** Creating a store writes a marker file next to it
  (``<store>.created``). A missing database whose marker exists is damage, not a first start.
  ``reset=True`` (``fluidedge serve --reset-store``) starts empty *on purpose*: the damaged
  files are moved aside (``<store>.damaged-<time>``), never deleted.
- **Acknowledged means on disk.** ``synchronous=FULL`` (the default): every commit fsyncs the
  WAL before returning, so a 2xx survives power loss. ``"normal"`` keeps only crash
  (kill -9) durability and is there for the benchmark that measures the difference. The
  connection itself runs SQLite's ``synchronous=NORMAL`` and the store makes the flush that
  FULL adds in WAL mode (one ``fdatasync`` of the WAL after the commit) itself, on a
  descriptor kept open: a commit that need not wait for it (``durable=False``) then costs no
  two ``PRAGMA`` statements to leave FULL and come back, and :meth:`Store.sync` no open.
- **A durable commit costs one flush.** A commit that grows the WAL file makes its fsync
  journal the file's new size too (ext4: a second flush; 0.6 ms per commit here against
  0.19 ms into space already written). Under ``synchronous=FULL`` the WAL is therefore written
  out to its working size (``wal_autocheckpoint`` pages, about 4 MiB) with zeros once, after
  its first commit of this run (:meth:`Store._size_wal`), and SQLite reuses that space from then
  on. Zeros after the last frame are what SQLite (and :mod:`fluidedge.core.walcheck`) read as
  the end of the log; nothing about what a commit promises changes.
- **A deferred flush starts early.** A commit that does not wait for its flush
  (``durable=False``, e.g. a warm creation's claim, flushed by :meth:`Store.sync` while the
  workload execs) starts writing its WAL pages to the disk at once (``sync_file_range`` with
  ``SYNC_FILE_RANGE_WRITE``: the I/O is queued, nothing waited for). The later ``fdatasync``
  then waits for a write already under way and the device's cache flush: p50 0.19 ms here
  against 0.25 ms for pages still dirty, p99 0.29 against 0.51 (``bench/store_durability.py``,
  "deferred flush"). It promises nothing by itself: only the ``fdatasync`` makes a commit
  durable.
- **Writes go where they are read back from.** Each write transaction first checks that the
  database and WAL files are still the ones opened (device and inode). When they were removed
  or replaced, the store refuses every later write with :class:`StoreUnavailable` (503 with the
  reason) instead of acknowledging writes into an unlinked file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from fluidedge.core.errors import CoreError
from fluidedge.core.walcheck import check_wal
from fluidedge.errors import SystemFailure
from fluidedge.linux import libc

log = logging.getLogger("fluidedge.core.store")

# The store's own format, in PRAGMA user_version (the parts' schemas are in schema_migrations).
STORE_FORMAT = 1

Synchronous = Literal["full", "normal"]


def start_write_back(fd: int) -> bool:
    """Queue the write-out of every dirty page of ``fd`` (``sync_file_range`` with
    ``SYNC_FILE_RANGE_WRITE``, the whole file) and return without waiting for it; False when
    the kernel refused. Best effort: a refusal only leaves the write-out to the next
    ``fdatasync``."""
    try:
        libc.sync_file_range(fd, 0, 0, libc.SYNC_FILE_RANGE_WRITE)
    except OSError:
        return False
    return True


# SQLite's WAL layout (fileformat §4): a 32-byte header, then frames of a 24-byte header + a page.
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24

RECOVERY = (
    "To recover: stop the daemon and restore a backup (fluidedge state restore BACKUP "
    "--config CONFIG), or start empty on purpose (fluidedge serve --reset-store: the damaged "
    "files are moved aside, not deleted; running instances are kept and reported as orphans)."
)


class StoreError(CoreError, SystemFailure):
    """The database failed underneath us."""


class StoreDamaged(StoreError):
    """The store on disk is damaged, missing or not ours: the daemon must not start on it."""


class StoreUnavailable(StoreError):
    """The store's files were removed or replaced while running: writes are refused."""

    http_status = 503


def marker_path(path: Path) -> Path:
    """The file recording, outside the database, that a store was created at ``path``."""
    return path.with_name(path.name + ".created")


def companions(path: Path) -> list[Path]:
    """The database file and SQLite's WAL and shared-memory files next to it."""
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (0600, fsynced, then renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def check_store_file(path: Path, *, created: bool = False) -> list[str]:
    """The problems of the store at ``path`` (empty when healthy); never modifies it.

    ``created``: a store is known to have been created there (its marker exists), so an empty
    database is a problem too.
    """
    problems: list[str] = []
    wal = companions(path)[1]
    if wal.exists():
        try:
            report = check_wal(wal.read_bytes())
        except OSError as exc:
            return [f"cannot read the WAL {wal}: {exc.strerror}"]
        if report.problem:
            problems.append(f"{wal}: {report.problem}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        return [*problems, f"{path}: cannot open: {exc}"]
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            problems.append(f"{path}: quick_check: {'; '.join(str(r) for r in rows[:5])}")
            return problems
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version > STORE_FORMAT:
            problems.append(
                f"{path}: store format {version} was written by a newer fluidedge "
                f"(this one reads format {STORE_FORMAT})"
            )
        elif tables and "schema_migrations" not in tables:
            problems.append(f"{path}: not a fluidedge store (no schema_migrations table)")
        elif created and not tables:
            problems.append(f"{path}: the database is empty, but a store was created there")
    except sqlite3.DatabaseError as exc:
        problems.append(f"{path}: {exc}")
    finally:
        conn.close()
    return problems


def move_aside(path: Path, tag: str) -> list[Path]:
    """Rename the database and its WAL/shm files to ``<name>.<tag>-<time>...``; return them."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    moved = []
    for file in companions(path):
        if file.exists():
            target = file.with_name(f"{path.name}.{tag}-{stamp}{file.name[len(path.name) :]}")
            os.replace(file, target)
            moved.append(target)
    if moved:
        _fsync_dir(path.parent)
    return moved


class Store:
    """A thread-safe, checked SQLite store (see the module docstring for its promises)."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Synchronous = "full",
        reset: bool = False,
    ) -> None:
        self.path: Path | str = Path(path) if str(path) != ":memory:" else ":memory:"
        self.synchronous = synchronous
        self.moved_aside: list[Path] = []
        self._unavailable: str | None = None
        self._identities: dict[Path, tuple[int, int]] = {}
        if isinstance(self.path, Path):
            self._check_before_open(self.path, reset=reset)
        try:
            self._conn = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL's per-commit flush is the store's own (see the module docstring).
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(part TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (part, version))"
            )
            if self._conn.execute("PRAGMA user_version").fetchone()[0] < STORE_FORMAT:
                self._conn.execute(f"PRAGMA user_version={STORE_FORMAT}")
        except sqlite3.Error as exc:
            raise StoreError(f"store {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._wal_fd: int | None = None  # the WAL, open for its flushes (under FULL)
        # Under FULL: the WAL still to be written out to its working size (see _size_wal).
        self._wal_sized = synchronous != "full" or not isinstance(self.path, Path)
        if isinstance(self.path, Path):
            # The opening's own writes (the migrations table, the format) on disk before the
            # creation marker says a store exists here.
            self._flush()
            self._after_open(self.path)

    # ------------------------------------------------------------------ open-time checks
    def _check_before_open(self, path: Path, *, reset: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = marker_path(path)
        problems: list[str] = []
        if not path.exists():
            stray = [str(f) for f in companions(path)[1:] if f.exists()]
            if marker.exists():
                problems.append(
                    f"store {path} is missing, but a store was created there "
                    f"({marker.read_text().strip()})"
                )
            elif stray:
                problems.append(f"store {path} is missing but its {', '.join(stray)} exist")
        else:
            problems = check_store_file(path, created=marker.exists())
        if not problems:
            return
        if not reset:
            raise StoreDamaged(
                "refusing to start on a damaged store:\n  - "
                + "\n  - ".join(problems)
                + f"\n{RECOVERY}"
            )
        self.moved_aside = move_aside(path, "damaged")
        marker.unlink(missing_ok=True)  # re-written for the new, empty store
        log.warning(
            "store reset on request: problems=%s moved_aside=%s",
            "; ".join(problems),
            ", ".join(str(p) for p in self.moved_aside) or "-",
            extra={"part": "daemon", "event": "store_reset", "ids": str(path)},
        )

    def _after_open(self, path: Path) -> None:
        marker = marker_path(path)
        if not marker.exists():
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            _write_private(
                marker, json.dumps({"created": stamp, "store": str(path), "format": STORE_FORMAT})
            )
        for file in companions(path):
            _chmod_private(file)
        for file in companions(path)[:2]:
            identity = _identity(file)
            if identity is not None:
                self._identities[file] = identity

    # ------------------------------------------------------------------ running checks
    @property
    def unavailable(self) -> str | None:
        """Why writes are refused (the files were removed or replaced), or ``None``."""
        return self._unavailable

    def ensure_writable(self) -> None:
        """Raise :class:`StoreUnavailable` now if a write would be refused: for callers that
        must not change the host (destroy a container) before a write that would fail."""
        with self._lock:
            self._check_files()

    def _check_files(self) -> None:
        if self._unavailable is not None:
            raise StoreUnavailable(self._unavailable)
        if not self._identities:
            return
        for file, identity in self._identities.items():
            now = _identity(file)
            if now != identity:
                what = "removed" if now is None else "replaced by another file"
                self._unavailable = (
                    f"store file {file} was {what} while the daemon ran: writes are refused "
                    "so that nothing is acknowledged that a restart would not find. Restart "
                    "the daemon (it checks the store and refuses damage), and restore a "
                    "backup if the store is gone (fluidedge state restore)."
                )
                log.error(
                    "store unavailable: %s",
                    self._unavailable,
                    extra={"part": "daemon", "event": "store_unavailable", "ids": str(file)},
                )
                raise StoreUnavailable(self._unavailable)

    # ------------------------------------------------------------------ API
    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None

    def migrate(self, part: str, migrations: Sequence[str]) -> None:
        """Apply ``part``'s migrations (SQL scripts) that have not run yet, in order."""
        with self.transaction() as conn:
            done = {
                row[0]
                for row in conn.execute(
                    "SELECT version FROM schema_migrations WHERE part = ?", (part,)
                )
            }
            if done and max(done) > len(migrations):
                raise StoreDamaged(
                    f"store {self.path}: part {part} has schema version {max(done)}, this "
                    f"fluidedge knows up to {len(migrations)} (written by a newer release?)"
                )
            for version, script in enumerate(migrations, start=1):
                if version in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (part, version) VALUES (?, ?)", (part, version)
                )

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception.

        Under ``synchronous=FULL`` the commit is followed by the WAL's flush (one
        ``fdatasync``); a failed flush raises :class:`StoreError` once the commit is made (as
        with SQLite's own FULL, whose frames a restart may still recover: the caller must not
        answer it as stored). ``durable=False``: this commit does not wait for that flush. It
        survives the daemon's kill -9 (the WAL is in the kernel's page cache), and power loss
        once any later durable commit, :meth:`sync` or a checkpoint has synced the WAL; for
        writes whose truth lives elsewhere or dies with the host (deferred follow-ups, an
        on-demand instance's claim).

        Refused with :class:`StoreUnavailable` when the store's files are no longer the ones
        opened (see the module docstring).
        """
        with self._lock:
            self._check_files()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"store: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    raise StoreError(f"store: commit failed: {exc}") from exc
            if durable:
                self._flush()  # FULL's flush (a failure: StoreError, the caller's to answer)
            else:
                self._write_back()  # the flush to come (sync()) has less to wait for
            if len(self._identities) == 1 and isinstance(self.path, Path):
                # The WAL file exists from the first write on: watch it too.
                wal = companions(self.path)[1]
                identity = _identity(wal)
                if identity is not None:
                    self._identities[wal] = identity
            if not self._wal_sized:
                self._size_wal()

    def _size_wal(self) -> None:
        """Write the WAL out with zeros to ``wal_autocheckpoint`` frames, once it holds a valid
        header (the first commit's): later commits write into space already on disk, and their
        fsync flushes data only. Best effort: a failure leaves the WAL growing as before."""
        if not isinstance(self.path, Path):
            return
        wal = companions(self.path)[1]
        try:
            size = os.stat(wal).st_size
            if size < WAL_HEADER_BYTES:
                return  # no header yet: zeros there would read as a damaged log
            page = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            frames = int(self._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            target = WAL_HEADER_BYTES + max(frames, 1) * (WAL_FRAME_HEADER_BYTES + page)
            self._wal_sized = True
            if size >= target:
                return
            fd = os.open(wal, os.O_WRONLY | os.O_CLOEXEC)
            try:
                chunk = bytes(1 << 20)
                offset = size
                while offset < target:
                    offset += os.pwrite(fd, chunk[: min(len(chunk), target - offset)], offset)
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except (OSError, sqlite3.Error) as exc:
            self._wal_sized = True
            log.warning(
                "store: could not pre-size the WAL (%s): durable commits may cost more",
                exc,
                extra={"part": "daemon", "event": "store_wal_size_failed", "ids": str(wal)},
            )

    def sync(self) -> None:
        """Make every commit so far durable, as ``synchronous=FULL`` does at each commit: one
        ``fdatasync`` of the WAL. For a commit made with ``durable=False`` whose answer must
        still survive power loss, so that the flush may overlap other work instead of
        delaying the commit (the instance manager's claims, fluidedge.instances.writer). A
        no-op under ``synchronous=NORMAL`` (the operator chose crash durability only) and for
        an in-memory store. Raises :class:`StoreError` when the flush fails (EIO, ENOSPC).
        """
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        """One ``fdatasync`` of the WAL under FULL (lock held), on the descriptor kept open
        from the first flush on: the WAL stays the same file while the connection is open
        (a checkpoint truncates or rewrites it in place; the write checks refuse a replaced
        one)."""
        fd = self._wal_descriptor()
        if fd is None:
            return
        try:
            os.fdatasync(fd)
        except OSError as exc:
            wal = companions(Path(self.path))[1]
            raise StoreError(f"store: sync of {wal} failed: {exc.strerror}") from exc

    def _write_back(self) -> None:
        """Under FULL, start writing the WAL's dirty pages out (lock held; see the module
        docstring, "A deferred flush starts early"); the flush itself stays :meth:`_flush`'s."""
        try:
            fd = self._wal_descriptor()
        except StoreError:
            return  # the flush to come reports it
        if fd is not None:
            start_write_back(fd)

    def _wal_descriptor(self) -> int | None:
        """The WAL's descriptor under FULL (opened at the first use, lock held), or None: not
        FULL, in memory, or no WAL yet (every commit is then in the synced database file)."""
        if self.synchronous != "full" or not isinstance(self.path, Path):
            return None
        if self._wal_fd is None:
            wal = companions(self.path)[1]
            try:
                self._wal_fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise StoreError(f"store: cannot open {wal} to sync it: {exc.strerror}") from exc
        return self._wal_fd

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        with self._lock:
            try:
                return list(self._conn.execute(sql, params))
            except sqlite3.Error as exc:
                raise StoreError(f"store: {exc}") from exc

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (clean shutdown); best effort:
        a store whose files were removed is left alone."""
        with self._lock:
            if self._unavailable is not None:
                return
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def backup_to(self, dest: Path) -> None:
        """An online, consistent copy of the store into ``dest`` (see :func:`backup`)."""
        with self._lock:
            _backup_connection(self._conn, dest)


def _chmod_private(path: Path) -> None:
    """Make ``path`` 0600 if it exists (the store holds request data)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)


def _backup_connection(source: sqlite3.Connection, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    for leftover in companions(tmp):
        leftover.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.close(fd)
    target = sqlite3.connect(str(tmp))
    try:
        source.backup(target)
        # One self-contained file: no WAL next to a backup.
        target.execute("PRAGMA journal_mode=DELETE")
        rows = [r[0] for r in target.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise StoreError(f"backup {dest}: quick_check: {rows[:3]}")
    finally:
        target.close()
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def backup(store_path: Path, dest: Path) -> None:
    """Copy the store at ``store_path`` into the single file ``dest`` (mode 0600).

    SQLite's online backup API on a read-only connection: safe while the daemon runs (WAL
    readers do not block its writer), and the copy is one consistent snapshot, checked with
    ``quick_check`` before it replaces ``dest``.
    """
    if not store_path.exists():
        raise StoreError(f"backup: no store at {store_path}")
    try:
        source = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        raise StoreError(f"backup: cannot open {store_path}: {exc}") from exc
    try:
        _backup_connection(source, dest)
    except sqlite3.Error as exc:
        raise StoreError(f"backup {store_path} -> {dest}: {exc}") from exc
    finally:
        source.close()


def restore(backup_file: Path, store_path: Path) -> list[Path]:
    """Replace the store at ``store_path`` by ``backup_file``; return the files moved aside.

    The caller holds the state directory's lock (the daemon is stopped). The backup is checked
    first (a damaged or foreign file is refused and nothing changes); the current store, if
    any, is moved aside (``<store>.pre-restore-<time>``), never deleted.
    """
    if not backup_file.is_file():
        raise StoreError(f"restore: no backup file {backup_file}")
    problems = check_store_file(backup_file)
    if problems:
        raise StoreDamaged("restore: the backup is not usable:\n  - " + "\n  - ".join(problems))
    store_path.parent.mkdir(parents=True, exist_ok=True)
    moved = move_aside(store_path, "pre-restore")
    tmp = store_path.with_name(store_path.name + ".restoring")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, open(backup_file, "rb") as src:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, store_path)
    _fsync_dir(store_path.parent)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_private(
        marker_path(store_path),
        json.dumps({"created": stamp, "store": str(store_path), "restored_from": str(backup_file)}),
    )
    return moved
