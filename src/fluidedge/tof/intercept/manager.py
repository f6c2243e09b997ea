"""The intercepts of a daemon: validated, persisted (SQLite), pushed to the data plane.

Adding one opens its destination (a pcap file created 0600 that must not exist, or an
interface socket), starts its writer, hands the complete set to the backend and commits the
row, in one store transaction: any failure undoes all of it. Deleting one first removes it
from the data plane (copies stop at once), then deletes the row, then lets its writer finish
what was queued. At the daemon's start every stored intercept is re-opened; a pcap file is
**appended to** (one file per intercept across restarts; the gap shows as a gap in the
timestamps), an intercept whose destination cannot be opened is reported in ``GET`` (``error``)
and retried at the next start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.intercept.model import (
    Intercept,
    InterceptConfig,
    InterceptConflict,
    InterceptInvalid,
    InterceptNotFound,
    InterceptRefused,
    NewInterceptModel,
    pcap_path,
    validate,
)
from fluidedge.tof.intercept.sink import InterfaceWriter, Mirror, PcapWriter, Writer

_log = logging.getLogger("fluidedge.tof.intercept")

MIGRATIONS = [
    """
    CREATE TABLE tof_intercept (
        name TEXT PRIMARY KEY,
        ue TEXT NOT NULL UNIQUE,
        enb TEXT,
        sgw TEXT,
        interface TEXT,
        pcap TEXT,
        created REAL NOT NULL
    )
    """,
]

SetMirrors = Callable[[Sequence[Mirror]], None]


def _stored_intercept(row: sqlite3.Row) -> Intercept:
    """A stored row as its intercept, checked by the request's schema (a row that fails is set
    aside: :mod:`fluidedge.core.rows`). Whether its pcap directory is still an allowed one is
    the restore's question, not the row's."""
    if (row["interface"] is None) == (row["pcap"] is None):
        raise ValueError("destination: not exactly one of interface and pcap")
    destination = {"interface": row["interface"]} if row["pcap"] is None else {"pcap": row["pcap"]}
    target = {"ue": row["ue"], "enb": row["enb"], "sgw": row["sgw"]}
    NewInterceptModel.model_validate(
        {"name": row["name"], "target": target, "destination": destination}
    )
    if row["pcap"] is not None and not Path(row["pcap"]).is_absolute():
        raise ValueError(f"pcap {row['pcap']!r} is not an absolute path")
    created = row["created"]
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise TypeError(f"created {created!r} is not a time")
    return Intercept(
        row["name"], row["ue"], row["enb"], row["sgw"], row["interface"], row["pcap"], created
    )


class InterceptManager:
    """Intercepts by name (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        set_mirrors: SetMirrors,
        config: InterceptConfig,
        state_dir: Path,
        netns: str | None,
    ) -> None:
        self._store = store
        self._set_mirrors = set_mirrors
        self.config = config
        self.directory = state_dir / "intercepts"
        self._allowed = [Path(d) for d in config.pcap_dirs]
        self._netns = netns
        self._lock = threading.Lock()
        store.migrate("tof_intercept", MIGRATIONS)
        self._stored: dict[str, Intercept] = {
            it.name: it
            for it in rows.load(
                store,
                "tof_intercept",
                ("name", "ue", "enb", "sgw", "interface", "pcap", "created"),
                _stored_intercept,
            )
        }
        self._mirrors: dict[str, Mirror] = {}
        self._failed: dict[str, str] = {}

    def _writer(self, it: Intercept, *, create: bool) -> Writer:
        if it.pcap is not None:
            if Path(it.pcap).parent == Path(os.path.realpath(self.directory)):
                self.directory.mkdir(mode=0o700, exist_ok=True)
            return PcapWriter(Path(it.pcap), create=create)
        name = it.interface or ""
        return InterfaceWriter(
            call_in_netns(self._netns, lambda: InterfaceWriter.open_socket(name))
        )

    def _push(self) -> None:
        self._set_mirrors(list(self._mirrors.values()))

    def restore(self) -> None:
        """Re-open every stored intercept (at the daemon's start, after the data plane's)."""
        with self._lock:
            for name, it in sorted(self._stored.items()):
                try:
                    if it.pcap is not None:  # still where a request may write (config changes)
                        pcap_path(it.pcap, self.directory, self._allowed)
                    mirror = Mirror(it, self._writer(it, create=False), self.config.queue)
                except (OSError, InterceptInvalid, InterceptRefused) as exc:
                    self._failed[name] = str(exc)
                    _log.error("intercept %s: destination cannot be opened: %s", name, exc)
                    continue
                mirror.start()
                self._mirrors[name] = mirror
            try:
                self._push()
            except Exception as exc:
                _log.error("intercepts: the data plane refused them: %s", exc)
                for name in list(self._mirrors):
                    self._failed[name] = f"data plane: {exc}"
                    self._mirrors.pop(name).stop()
                self._push()

    def add(self, request: NewInterceptModel) -> Intercept:
        it = validate(request, self.directory, self._allowed)
        with self._lock:
            if it.name in self._stored:
                raise InterceptConflict(f"intercept {it.name!r} exists")
            for other in self._stored.values():
                if other.ue == it.ue:
                    raise InterceptConflict(f"UE {it.ue} is already intercepted ({other.name!r})")
            it = dataclasses.replace(it, created=time.time())
            try:
                writer = self._writer(it, create=True)
            except FileExistsError as exc:
                raise InterceptRefused(f"destination.pcap: {it.pcap} exists") from exc
            except OSError as exc:
                what = "pcap" if it.pcap is not None else "interface"
                raise InterceptRefused(f"destination.{what}: {exc.strerror or exc}") from exc
            mirror = Mirror(it, writer, self.config.queue)
            mirror.start()
            try:
                with self._store.transaction() as conn:
                    conn.execute(
                        "INSERT INTO tof_intercept (name, ue, enb, sgw, interface, pcap, created)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (it.name, it.ue, it.enb, it.sgw, it.interface, it.pcap, it.created),
                    )
                    self._mirrors[it.name] = mirror
                    self._push()
            except BaseException:
                self._mirrors.pop(it.name, None)
                self._push_quietly()
                mirror.stop()
                if it.pcap is not None:
                    Path(it.pcap).unlink(missing_ok=True)
                raise
            self._stored[it.name] = it
            self._failed.pop(it.name, None)
            return it

    def _push_quietly(self) -> None:
        try:
            self._push()
        except Exception as exc:  # the previous set: best effort after a failure
            _log.error("intercepts: restoring the previous set failed: %s", exc)

    def delete(self, name: str) -> Intercept:
        with self._lock:
            it = self._stored.get(name)
            if it is None:
                raise InterceptNotFound(f"no intercept {name!r}")
            mirror = self._mirrors.pop(name, None)
            self._push()  # copies stop here
            with self._store.transaction() as conn:
                conn.execute("DELETE FROM tof_intercept WHERE name = ?", (name,))
            del self._stored[name]
            self._failed.pop(name, None)
        if mirror is not None:
            mirror.stop()
        return it

    def _row(self, it: Intercept) -> dict[str, object]:
        out = it.to_api()
        mirror = self._mirrors.get(it.name)
        out["state"] = "active" if mirror is not None else "failed"
        out["stats"] = mirror.stats() if mirror is not None else {}
        if it.name in self._failed:
            out["error"] = self._failed[it.name]
        return out

    def list(self) -> list[dict[str, object]]:
        with self._lock:
            return [self._row(it) for _, it in sorted(self._stored.items())]

    def get(self, name: str) -> dict[str, object]:
        with self._lock:
            it = self._stored.get(name)
            if it is None:
                raise InterceptNotFound(f"no intercept {name!r}")
            return self._row(it)

    def stop(self) -> None:
        """The daemon stops: copies stop, writers finish; the intercepts stay stored."""
        with self._lock:
            mirrors = list(self._mirrors.values())
            self._mirrors.clear()
            self._push_quietly()
        for mirror in mirrors:
            mirror.stop()
