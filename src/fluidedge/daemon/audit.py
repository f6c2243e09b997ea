"""The audit log: one JSON line per mutating call (who, what, result), rotated by size.

Who: the peer (``ip:port``, or ``unix`` for the Unix socket) and what it presented (``token``,
``none`` or ``invalid-token``; the token itself is never written). What: method, path and the
``name`` of the object in a JSON body when there is one. Result: the HTTP status and the time
taken. Refused calls (401, 400, 413...) are logged too: an audit log is most useful for what
was refused. Files are created 0600 (they name the objects of the node); rotation keeps
``audit_backups`` older files of at most ``audit_max_bytes`` each (``audit.log.1``...).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from pathlib import Path
from typing import Any, TextIO


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """A rotating handler whose files are created 0600 whatever the umask."""

    def _open(self) -> TextIO:  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")


class AuditLog:
    """Appends audit records to ``path`` (rotated); a write failure never fails the request."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self._logger = logging.Logger(f"fluidedge.audit.{path}", level=logging.INFO)
        self._logger.propagate = False
        self._handler = _PrivateRotatingHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(self._handler)

    def record(  # noqa: PLR0917 (one call site, a flat record)
        self,
        peer: str,
        presented: str,
        method: str,
        path: str,
        name: str | None,
        status: int,
        seconds: float,
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
        self._logger.info(json.dumps(entry, separators=(",", ":")))

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


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
