"""Where closed usage records go: an IPFIX collector (UDP/TCP), a bounded spool, JSON Lines.

The I/O edge of accounting (one thread, :class:`Exporter`); the encoding is :mod:`.ipfix`'s and
the decisions are :mod:`.policy`'s. On disk, under ``state_dir/accounting`` (0700 directories,
0600 files):

- ``spool/``: records the collector could not take (down, refused, unreachable), as JSON
  Lines, oldest file first; bounded by ``spool_max_bytes`` — records beyond it are dropped and
  counted (``spoolDropped``). When the collector answers again the spool is sent first, in
  order, then new records.
- ``records/usage.jsonl``: every record, one JSON object a line, rotated past ``max_bytes`` to
  ``usage-<UTC time to the nanosecond>-<n>.jsonl`` (``keep`` rotated files; names sort in
  rotation order).
- ``open.json``: the restart marker, rewritten every ``checkpoint_interval``: who had an open
  record at that instant. A graceful stop closes every record (trigger ``shutdown``), exports
  them and removes it. If it is still there at start, the previous process died (kill -9): its
  counters since the last report are gone, and the first records of the new process say so
  (trigger ``lost``, ``lost: true``): one per record listed, and one for the node covering
  the time from the marker's last write to the restart (records opened in between).

UDP and TCP carry no acknowledgement: a message sent as the collector dies may be lost
without an error (docs/accounting.md). A send that fails (ICMP port unreachable reported on the
connected UDP socket, TCP refused or reset) spools the records it carried (over TCP, the part
of them sent before the failure may then reach the collector twice).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from fluidedge.tof.accounting import policy
from fluidedge.tof.accounting.config import AccountingConfig, IpfixConfig, JsonlConfig
from fluidedge.tof.accounting.ipfix import Encoder
from fluidedge.tof.accounting.usage import UsageRecord

_log = logging.getLogger("fluidedge.tof.accounting")
SPOOL_FILE_BYTES = 1_000_000  # a spool file is sent (and removed) as one unit


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _open_private(path: Path, mode: str = "a") -> int:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    return os.open(path, flags, 0o600)


def _lines(records: Iterable[UsageRecord]) -> bytes:
    return b"".join(
        json.dumps(r.to_json(), separators=(",", ":")).encode() + b"\n" for r in records
    )


class Spool:
    """Bounded on-disk queue of records (JSON Lines files ``spool-<n>.jsonl``, oldest first)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = _private_dir(directory)
        self.max_bytes = max_bytes
        self.dropped = 0
        files = self.files()
        self._next = int(files[-1].stem.split("-")[1]) + 1 if files else 0

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("spool-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def __bool__(self) -> bool:
        return bool(self.files())

    def put(self, records: list[UsageRecord]) -> None:
        data = _lines(records)
        used = self.size()
        if used + len(data) > self.max_bytes:
            keep: list[UsageRecord] = []
            room = self.max_bytes - used
            for r in records:
                line = _lines([r])
                if len(line) > room:
                    self.dropped += 1
                    continue
                room -= len(line)
                keep.append(r)
            data = _lines(keep)
        if not data:
            return
        files = self.files()
        target = files[-1] if files and files[-1].stat().st_size < SPOOL_FILE_BYTES else None
        if target is None:
            target = self.dir / f"spool-{self._next:09d}.jsonl"
            self._next += 1
        fd = _open_private(target)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def oldest(self) -> tuple[Path, list[UsageRecord]] | None:
        """The oldest file and its records (a new file takes later puts); None if empty."""
        files = self.files()
        if not files:
            return None
        path = files[0]
        if path == files[-1]:
            self._next = max(self._next, int(path.stem.split("-")[1]) + 1)
        records = [
            UsageRecord.from_json(json.loads(line))
            for line in path.read_bytes().splitlines()
            if line.strip()
        ]
        return path, records


class JsonlSink:
    """``usage.jsonl`` in ``directory``, rotated by size (see the module docstring)."""

    def __init__(self, directory: Path, config: JsonlConfig) -> None:
        self.dir = _private_dir(directory)
        self.config = config
        self.path = self.dir / "usage.jsonl"
        self.written = 0

    def write(self, records: list[UsageRecord]) -> None:
        if not records:
            return
        fd = _open_private(self.path)
        try:
            os.write(fd, _lines(records))
        finally:
            os.close(fd)
        self.written += len(records)
        if self.path.stat().st_size >= self.config.max_bytes:
            # Names sort in rotation order: a nanosecond stamp, fixed width. A per-second stamp
            # with a reused counter named a newer file before an older one when rotations came
            # faster than one a second (the counter restarted once the older name was
            # deleted), and file mtimes can tie, so the oldest is found by name.
            now = time.time_ns()
            second = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000))
            stamp = f"{second}.{now % 1_000_000_000:09d}"
            n = 0
            while (target := self.dir / f"usage-{stamp}-{n:03d}.jsonl").exists():
                n += 1
            self.path.rename(target)
            rotated = sorted(self.dir.glob("usage-*.jsonl"))
            for old in rotated[: max(0, len(rotated) - self.config.keep)]:
                old.unlink(missing_ok=True)


class IpfixSender:
    """One connection to the collector; templates at connect and every refresh (UDP)."""

    def __init__(self, config: IpfixConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.encoder = Encoder(
            config.observation_domain, config.enterprise_number, config.max_message
        )
        self.sock: socket.socket | None = None
        self._templates_at = 0.0
        self.counters: Counter[str] = Counter()
        self.retry_at = 0.0

    def _connect(self) -> socket.socket:
        host, port = self.config.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if self.config.transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(family, kind)
        try:
            sock.settimeout(2.0)
            sock.connect((host, port))
        except OSError:
            sock.close()
            raise
        self._templates_at = 0.0  # a new stream starts with the templates (§8)
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, records: list[UsageRecord]) -> bool:
        """Send ``records``; False (and the connection dropped) when the collector failed."""
        now = self.clock()
        if now < self.retry_at:
            return False
        seq = self.encoder.sequence
        try:
            if self.sock is None:
                self.sock = self._connect()
                self.counters["connects"] += 1
            udp = self.config.transport == "udp"
            refresh = now - self._templates_at >= self.config.template_refresh
            if not udp:
                refresh = self._templates_at == 0.0
            messages = self.encoder.messages(records, int(now), with_templates=refresh)
            for message in messages:
                self.sock.sendall(message)
                error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, os.strerror(error))
            if refresh:
                self._templates_at = now
                self.counters["template_sends"] += 1
        except OSError as exc:
            self.encoder.sequence = seq  # the records go to the spool, not to the stream
            self.counters[f"send_error_{type(exc).__name__}"] += 1
            self.close()
            self.retry_at = now + 1.0
            return False
        self.counters["messages"] += len(messages)
        self.counters["records"] += len(records)
        return True


class Exporter:
    """The export thread: takes closed records, writes JSON Lines, sends IPFIX or spools.

    ``take`` returns the closed records (the data plane's :meth:`Accountant.drain`, under its
    lock); ``identities`` who has an open record (for the restart marker).
    """

    def __init__(
        self,
        config: AccountingConfig,
        directory: Path,
        take: Callable[[], list[UsageRecord]],
        identities: Callable[[], list[dict[str, object]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.dir = _private_dir(directory)
        self.take = take
        self.identities = identities
        self.clock = clock
        self.marker = self.dir / "open.json"
        self.jsonl = JsonlSink(self.dir / "records", config.jsonl) if config.jsonl else None
        self.sender = IpfixSender(config.ipfix, clock) if config.ipfix else None
        self.spool = Spool(self.dir / "spool", config.spool_max_bytes) if config.ipfix else None
        self.lost: list[UsageRecord] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._checkpoint_at = 0.0
        self._io = threading.Lock()
        self._round = threading.Lock()  # one pump at a time: a second would re-send _held
        self.errors: Counter[str] = Counter()  # rounds that failed (the thread goes on)
        self._held: list[UsageRecord] = []  # records of a failed round, retried
        self.max_held = 1_000_000
        self.held_dropped = 0

    # ------------------------------------------------------------------ restart semantics

    def recover(self) -> list[UsageRecord]:
        """The ``lost`` records for a marker a killed process left (module docstring)."""
        if not self.marker.exists():
            return []
        try:
            state = json.loads(self.marker.read_text())
            at = float(state["at"])
            rows = list(state["open"])
        except (OSError, ValueError, KeyError, TypeError):
            at, rows = 0.0, []
        now = self.clock()
        out = [
            UsageRecord(
                ue=str(row["ue"]),
                enb=str(row["enb"]),
                sgw=str(row["sgw"]),
                uplink_teid=row.get("uplink_teid"),
                downlink_teid=row.get("downlink_teid"),
                service=str(row["service"]),
                service_ip=str(row["service_ip"]),
                uplink_packets=0,
                uplink_bytes=0,
                downlink_packets=0,
                downlink_bytes=0,
                first=float(row["first"]),
                last=at,
                closed=now,
                trigger=policy.LOST,
                reason="daemon_killed",
                lost=True,
            )
            for row in rows
        ]
        out.append(
            UsageRecord(
                ue="",
                enb="",
                sgw="",
                uplink_teid=None,
                downlink_teid=None,
                service="",
                service_ip="",
                uplink_packets=0,
                uplink_bytes=0,
                downlink_packets=0,
                downlink_bytes=0,
                first=at or now,
                last=now,
                closed=now,
                trigger=policy.LOST,
                reason="daemon_killed",
                lost=True,
            )
        )
        self.marker.unlink(missing_ok=True)
        return out

    def checkpoint(self) -> None:
        """Rewrite the restart marker (atomically: a temporary file renamed over it)."""
        state = {"at": round(self.clock(), 3), "open": self.identities()}
        tmp = self.dir / "open.json.tmp"
        fd = _open_private(tmp, "w")
        try:
            os.write(fd, json.dumps(state, separators=(",", ":")).encode())
        finally:
            os.close(fd)
        tmp.replace(self.marker)

    # ------------------------------------------------------------------ the thread

    def start(self) -> None:
        self.deliver(self.recover())
        self.checkpoint()
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="tof-accounting", daemon=True)
        self._thread.start()

    def stop(self, final: list[UsageRecord]) -> None:
        """Stop the thread, export ``final`` (the records a shutdown closed), drop the marker."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._round:  # a thread that outlived the join finishes its round first
            self.deliver(self._held + self.take() + final)
            self._held = []
            self.flush_spool()
        if self.sender is not None:
            self.sender.close()
        self.marker.unlink(missing_ok=True)

    def _main(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.pump()
            except OSError as exc:  # disk full, state dir gone: counted, retried next round
                self.errors[f"{type(exc).__name__}"] += 1
                _log.warning("usage export: %s", exc)

    def pump(self) -> None:
        """One round: new records out, the spool retried, the marker refreshed when due."""
        with self._round:
            records = self._held + self.take()
            try:
                self.deliver(records)
            except OSError:
                # Kept for the next round (bounded): a disk error loses nothing it can keep. A
                # retried batch whose JSON Lines write succeeded may be written there twice.
                self._held = records[-self.max_held :]
                self.held_dropped += len(records) - len(self._held)
                raise
            # Only now: "held" counts a failed round's records until they are written, never
            # zero while they are still on their way (a reader of /stats would take them as
            # delivered).
            self._held = []
            self.flush_spool()
            now = self.clock()
            if now >= self._checkpoint_at:
                self._checkpoint_at = now + self.config.checkpoint_interval
                self.checkpoint()

    def deliver(self, records: list[UsageRecord]) -> None:
        if not records:
            return
        with self._io:
            if self.jsonl is not None:
                self.jsonl.write(records)
            if self.sender is None or self.spool is None:
                return
            if self.spool or not self.sender.send(records):
                self.spool.put(records)

    def flush_spool(self) -> None:
        with self._io:
            if self.sender is None or self.spool is None:
                return
            while (oldest := self.spool.oldest()) is not None:
                path, records = oldest
                if records and not self.sender.send(records):
                    return
                path.unlink(missing_ok=True)

    def stats(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.sender is not None:
            out["ipfix"] = dict(self.sender.counters)
        if self.spool is not None:
            out["spool"] = {
                "bytes": self.spool.size(),
                "files": len(self.spool.files()),
                "dropped": self.spool.dropped,
            }
        if self.jsonl is not None:
            out["jsonl"] = {"written": self.jsonl.written}
        out["errors"] = dict(self.errors)
        out["held"] = {"records": len(self._held), "dropped": self.held_dropped}
        return out
