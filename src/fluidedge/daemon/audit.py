"""The audit log: one JSON line per mutating call (who, what, result), rotated by size.

Who: the peer (``ip:port``, or ``unix`` for the Unix socket) and what it presented (``token``,
``none``, ``tenant-token`` with the ``tenant`` named, or ``invalid-token``; a token itself is never
written, a tenant token created or revoked is named by its ``token_id``). What: method, path and the
``name`` of the object in a JSON body when there is one. Result: the HTTP status and the time
taken. Refused calls (401, 400, 413...) are logged too: an audit log is most useful for what
was refused. Files are created 0600 (they name the objects of the node); rotation keeps
``audit_backups`` older files of at most ``audit_max_bytes`` each (``audit.log.1``...).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

_log = logging.getLogger("fluidedge.daemon")


class AuditLog:
    """Appends audit records to ``path``, rotated by size; a write failure never fails the
    request (it is reported once per failure streak on the daemon's log).

    One ``os.write`` of one line per record on an ``O_APPEND`` descriptor (a few microseconds):
    the ``logging`` machinery (record objects, caller lookup, handler locks) costs a hundred
    times more, on every mutating call.
    """

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._failing = False
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        return fd

    def _rotate(self) -> None:
        os.close(self._fd)
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fd = self._open()
        self._size = 0

    def record(  # noqa: PLR0917 (one call site, a flat record)
        self,
        peer: str,
        presented: str,
        method: str,
        path: str,
        name: str | None,
        status: int,
        seconds: float,
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "peer": peer,
            "auth": presented,
            "method": method,
            "path": path,
            "status": status,
            "ms": round(seconds * 1000, 3),
        }
        if name is not None:
            entry["name"] = name
        if extra:
            entry.update({k: v for k, v in extra.items() if k not in entry})
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                if self._size and self._size + len(line) > self.max_bytes:
                    self._rotate()
                os.write(self._fd, line)
                self._size += len(line)
                self._failing = False
            except OSError as exc:
                if not self._failing:
                    _log.error("audit log %s: cannot write: %s", self.path, exc.strerror)
                self._failing = True

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


def body_name(body: bytes) -> str | None:
    """The top-level ``name`` of a small JSON object body, if any (for the audit record)."""
    if not body or len(body) > 65536 or body[:1] != b"{":
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name[:128] if isinstance(name, str) else None
