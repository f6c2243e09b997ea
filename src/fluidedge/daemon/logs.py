"""Structured logs: every record carries level, part, event and the ids it is about.

Under systemd (``JOURNAL_STREAM`` set and the journal socket present) records go to the journal
through its native protocol, as fields: ``PRIORITY``, ``MESSAGE``, ``SYSLOG_IDENTIFIER``,
``FLUIDEDGE_PART``, ``FLUIDEDGE_EVENT``, ``FLUIDEDGE_IDS`` (``journalctl -u fluidedge
FLUIDEDGE_EVENT=orphan_found`` selects on them). Elsewhere they are one logfmt line each on
stderr (``level=warning part=instances event=orphan_found ids=fe0123456789 msg="..."``).

Callers log with ``extra={"part": ..., "event": ..., "ids": ...}``; without them the part is
the logger's second name component and the event is ``log``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")

# syslog priorities (journal PRIORITY field) by logging level
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def fields_of(record: logging.LogRecord) -> dict[str, str]:
    """The structured fields of a record: level, part, event, ids, message."""
    parts = record.name.split(".")
    part = str(getattr(record, "part", parts[1] if len(parts) > 1 else parts[0]))
    return {
        "level": record.levelname.lower(),
        "part": part,
        "event": str(getattr(record, "event", "log")),
        "ids": str(getattr(record, "ids", "")),
        "msg": record.getMessage(),
    }


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def logfmt(record: logging.LogRecord) -> str:
    """One logfmt line (empty fields left out)."""
    return " ".join(f"{k}={_quote(v)}" for k, v in fields_of(record).items() if v)


def journal_datagram(record: logging.LogRecord, identifier: str = "fluidedge") -> bytes:
    """The journal's native protocol: ``KEY=value`` lines; values with a newline are sent as
    ``KEY\\n<64-bit little-endian length><value>\\n``."""
    fields = fields_of(record)
    entries = {
        "MESSAGE": fields["msg"],
        "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
        "SYSLOG_IDENTIFIER": identifier,
        "FLUIDEDGE_PART": fields["part"],
        "FLUIDEDGE_EVENT": fields["event"],
        "FLUIDEDGE_IDS": fields["ids"],
        "CODE_FILE": record.pathname,
        "CODE_LINE": str(record.lineno),
    }
    out = bytearray()
    for key, value in entries.items():
        data = value.encode()
        if b"\n" in data:
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Send records to the journal's native socket (``sock_path``).

    A closed handler opens a new socket on its next record: ``logging.config.dictConfig``
    closes every existing handler (``logging.shutdown``) but leaves it on the loggers it does
    not configure, and uvicorn runs one when its ``Config`` is built, after the daemon set
    this handler up. Its socket was closed then, and every later record failed with EBADF:
    under systemd the daemon's own log reached the journal only as "Logging error"
    tracebacks (found in the VM tier's systemd payload)."""

    def __init__(self, sock_path: Path = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.sock_path = sock_path
        self._sock = self._open()

    @staticmethod
    def _open() -> socket.socket:
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._sock.fileno() == -1:  # closed by a logging reconfiguration
                self._sock = self._open()
            self._sock.sendto(journal_datagram(record), str(self.sock_path))
        except OSError:
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        super().close()


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return logfmt(record)


def setup_logging(level: str = "info") -> logging.Handler:
    """Route the ``fluidedge`` loggers to the journal (under systemd) or stderr (logfmt)."""
    if os.environ.get("JOURNAL_STREAM") and JOURNAL_SOCKET.exists():
        handler: logging.Handler = JournalHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger("fluidedge")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    root.propagate = False
    return handler
