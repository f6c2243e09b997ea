"""Rows of the store that cannot be read back: set aside, named, and the rest loads.

Why: a row can be damaged while the database file is sound. An operator's ``sqlite3`` edit, a
script, a bit flipped on a disk without checksums or a fault of an older release leave a row
whose JSON does not parse, or parses into something the part refuses (an address that is not
one, a field missing). ``PRAGMA quick_check`` passes; the part's decode raises. Before this
module, that one row stopped the daemon's start with a traceback, and with it every other
service, instance and rule the node declares.

So each part reads its tables through :func:`load`. A row whose decode raises one of
:data:`DAMAGE` is **set aside**: in one transaction it is copied into ``store_set_aside``
(its table, its key, every column as JSON, the reason, the time) and deleted from its table.
It is logged at error level with its table and key (event ``row_set_aside``), counted in
``/healthz`` (``set_aside_rows``) and listed by ``fluidedge state set-aside``; the part
starts with the other rows. Nothing is lost: the operator reads the row there and declares
the object again. Its key is free meanwhile, so declaring it again is not a conflict.

What is *not* set aside: a table of two or more rows of which every one fails. That is not
damage to a row but a store of another release, or a fault of ours. Setting aside a whole
table would empty the node on purpose, so the start is refused instead
(:class:`~fluidedge.core.store.StoreDamaged`, first row named), as for a damaged file.

Tables and columns are the code's own constants (checked to be identifiers); no row's content
ever becomes SQL.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fluidedge.core.errors import CoreError
from fluidedge.core.store import RECOVERY, Store, StoreDamaged
from fluidedge.errors import NotFoundError

__all__ = [
    "DAMAGE",
    "SetAside",
    "SetAsideNotFound",
    "count",
    "drop",
    "json_object",
    "listing",
    "load",
    "set_aside_by_key",
    "stored",
]

log = logging.getLogger("fluidedge.core.rows")

T = TypeVar("T")

#: What a decode raises on a row it cannot read. ``json.JSONDecodeError`` and pydantic's
#: ``ValidationError`` are ``ValueError``\ s; ``KeyError``/``IndexError`` are a field missing;
#: ``TypeError``/``AttributeError`` a value of the wrong JSON type (a list for an object).
DAMAGE: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
)

TABLE = "store_set_aside"
MIGRATIONS = [
    f"""
    CREATE TABLE {TABLE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        row TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL
    )
    """,
]


class SetAsideNotFound(CoreError, NotFoundError):
    """No row set aside has that id (404)."""


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_REASON_LIMIT = 500


@dataclass(frozen=True)
class SetAside:
    """A row set aside: where it was, which it was, what it held and why it was refused."""

    id: int
    source: str
    key: str
    row: dict[str, Any]
    reason: str
    at: str


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"store rows: {name!r} is not a table or column name")
    return name


def _reason(exc: BaseException) -> str:
    """One line saying why: the exception's class and message (pydantic's, which spans
    lines, folded), bounded."""
    text = " ".join(str(exc).split()) or "(no message)"
    name = type(exc).__name__
    line = f"{name}: {text}" if name not in text else text
    return line if len(line) <= _REASON_LIMIT else line[: _REASON_LIMIT - 3] + "..."


def _key(row: sqlite3.Row, key: Sequence[str]) -> str:
    return "/".join(str(row[column]) for column in key)


def json_object(row: sqlite3.Row, column: str, *keys: str) -> dict[str, Any]:
    """Column ``column`` of ``row`` as the JSON object it must hold (TypeError or ValueError
    otherwise), whose ``keys`` hold what the row's columns of those names hold: a part keys
    what it loads by the document's fields, and two rows must not make one object."""
    text = row[column]
    if not isinstance(text, str):
        raise TypeError(f"{column} is {type(text).__name__}, not text")
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise TypeError(f"{column} is a JSON {type(doc).__name__}, not an object")
    for key in keys:
        if doc.get(key) != row[key]:
            raise ValueError(f"{column}'s {key} {doc.get(key)!r} is not its row's {row[key]!r}")
    return doc


def load(
    store: Store,
    table: str,
    columns: Sequence[str],
    decode: Callable[[sqlite3.Row], T],
    *,
    key: Sequence[str] = ("name",),
    order: Sequence[str] = (),
    on_set_aside: Callable[[sqlite3.Row], None] | None = None,
) -> list[T]:
    """``decode`` of every row of ``table`` (``columns`` selected, in ``order``); a row it
    cannot read is set aside (see the module docstring), passed to ``on_set_aside`` (a part
    that must act for what the row held: close a port) and left out of the result.

    Raises :class:`StoreDamaged` when every row of two or more fails."""
    names = [_identifier(c) for c in (*columns, *key, *order)]
    selected = list(dict.fromkeys(names[: len(columns)] + list(key)))
    sql = f"SELECT rowid AS rowid_, {', '.join(selected)} FROM {_identifier(table)}"  # noqa: S608 (identifiers checked above; values never interpolated)
    if order:
        sql += " ORDER BY " + ", ".join(order)
    rows = store.query(sql)
    decoded: list[T] = []
    failed: list[tuple[sqlite3.Row, BaseException]] = []
    for row in rows:
        try:
            decoded.append(decode(row))
        except DAMAGE as exc:
            failed.append((row, exc))
    if not failed:
        return decoded
    if len(failed) == len(rows) and len(rows) >= 2:
        first, error = failed[0]
        raise StoreDamaged(
            f"refusing to start: not one of the {len(rows)} rows of table {table} can be "
            f"read (the first, {_key(first, key)}: {_reason(error)}). A store written by "
            f"another release, or a fault of this one: nothing was set aside.\n{RECOVERY}"
        ) from error
    for row, error in failed:
        _set_aside(store, table, row, _key(row, key), _reason(error))
        if on_set_aside is not None:
            on_set_aside(row)
    return decoded


def set_aside_by_key(
    store: Store,
    table: str,
    key_columns: Sequence[str],
    key_values: Sequence[object],
    reason: str,
) -> bool:
    """Set aside the row of ``table`` whose ``key_columns`` hold ``key_values``, as
    :func:`load` sets aside one it cannot decode; whether there was one.

    For a row that decodes alone but that the part refuses once the rest is loaded: it names
    a row that was set aside (a chain's group that is gone). Only the part knows, after
    :func:`load`; left in place, its start would stop on it."""
    names = [_identifier(c) for c in key_columns]
    if len(names) != len(key_values) or not names:
        raise ValueError(f"store rows: key {names} does not match values {list(key_values)}")
    where = " AND ".join(f"{name} = ?" for name in names)
    found = store.query(
        f"SELECT rowid AS rowid_, * FROM {_identifier(table)} WHERE {where}",  # noqa: S608 (identifiers checked above; values bound)
        tuple(key_values),
    )
    if not found:
        return False
    _set_aside(store, table, found[0], _key(found[0], names), reason)
    return True


def _set_aside(store: Store, table: str, row: sqlite3.Row, key: str, reason: str) -> None:
    content = {name: row[name] for name in row.keys() if name != "rowid_"}  # noqa: SIM118 (sqlite3.Row)
    store.migrate("set_aside", MIGRATIONS)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with store.transaction() as conn:
        conn.execute(
            f"INSERT INTO {TABLE} (source, key, row, reason, at) VALUES (?, ?, ?, ?, ?)",  # noqa: S608 (a constant)
            (table, key, json.dumps(content, default=repr), reason, stamp),
        )
        conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (row["rowid_"],))  # noqa: S608 (checked identifier)
    log.error(
        "store: row %s of table %s set aside (%s): kept in %s, the rest loads "
        "(fluidedge state set-aside lists it; declare it again to restore it)",
        key,
        table,
        reason,
        TABLE,
        extra={"part": "daemon", "event": "row_set_aside", "ids": f"{table},{key}"},
    )


def _has_table(store: Store) -> bool:
    return bool(
        store.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
    )


def count(store: Store) -> int:
    """How many rows are set aside (0 when none ever was)."""
    if not _has_table(store):
        return 0
    return int(store.query(f"SELECT count(*) FROM {TABLE}")[0][0])  # noqa: S608 (a constant)


def _listed(found: Iterable[Sequence[Any]]) -> list[SetAside]:
    out = []
    for ident, source, key, row, reason, at in found:
        try:
            content = json.loads(row)
        except ValueError:
            content = {"unreadable": row}
        out.append(SetAside(int(ident), source, key, content, reason, at))
    return out


_SELECT = f"SELECT id, source, key, row, reason, at FROM {TABLE}"  # noqa: S608 (a constant)


def listing(conn: sqlite3.Connection) -> list[SetAside]:
    """The rows set aside, oldest first, read on ``conn`` (the offline command opens the store
    read-only: it does not need the daemon stopped)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).fetchone()
    if exists is None:
        return []
    return _listed(conn.execute(_SELECT + " ORDER BY id"))


def stored(store: Store) -> list[SetAside]:
    """The rows set aside, oldest first (the daemon's own reading: ``GET
    /v1/store/set-aside``)."""
    if not _has_table(store):
        return []
    return _listed(store.query(_SELECT + " ORDER BY id"))


def drop(store: Store, ident: int) -> SetAside:
    """Forget the row set aside as ``ident`` (the operator has declared its object again, or
    decided it is gone); what it held. :class:`SetAsideNotFound` if there is none."""
    found = _listed(store.query(_SELECT + " WHERE id = ?", (ident,))) if _has_table(store) else []
    if not found:
        raise SetAsideNotFound(f"no row set aside has id {ident}")
    with store.transaction() as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE id = ?", (ident,))  # noqa: S608 (a constant)
    log.info(
        "store: row %s of table %s set aside as #%d dropped",
        found[0].key,
        found[0].source,
        ident,
        extra={"part": "daemon", "event": "set_aside_dropped", "ids": f"{found[0].source},{ident}"},
    )
    return found[0]
