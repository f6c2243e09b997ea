"""Where an intercept's copies go: a bounded queue per intercept, drained by its own thread.

The data plane only appends ``(epoch ns, packet)`` to the queue (:meth:`Mirror.copy`, a length
test and a ``deque.append``); beyond ``bound`` packets waiting the copy is dropped and counted,
so a slow disk or interface never blocks or slows the data plane. The writer thread empties
the queue into a pcap file (one ``os.write`` per batch) or sends each copy on a mirror
interface (AF_PACKET, as an Ethernet frame whose MAC addresses carry no meaning).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from fluidedge.linux.packet import packet_socket
from fluidedge.linux.sockbuf import size_buffers
from fluidedge.tof.intercept.model import (
    PCAP_HEADER,
    Intercept,
    Target,
    pcap_header,
    pcap_record,
)
from fluidedge.tof.mmsg import RxRing

_log = logging.getLogger("fluidedge.tof.intercept")

_ZERO_MACS = bytes(12)
_ETHERTYPE = {4: b"\x08\x00", 6: b"\x86\xdd"}


class Writer(Protocol):
    def write(self, batch: list[tuple[int, bytes]]) -> tuple[int, OSError | None]:
        """Write ``batch``; the copies that could not be written and the last failure (a
        failure that loses the whole batch may raise instead)."""
        ...

    def close(self) -> None: ...


class PcapWriter:
    """Appends records to a pcap file: created (0600, never over an existing file) with its
    header, or, at a daemon restart, reopened and appended to when it holds our header."""

    def __init__(self, path: Path, *, create: bool) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        if create:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        else:
            fd = os.open(path, flags | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                os.write(fd, pcap_header())
            else:
                with open(path, "rb") as f:
                    head = f.read(PCAP_HEADER.size)
                if head != pcap_header():
                    raise OSError(f"{path} exists and is not a pcap this daemon writes")
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def write(self, batch: list[tuple[int, bytes]]) -> tuple[int, OSError | None]:
        os.write(self._fd, b"".join(pcap_record(p, t) for t, p in batch))
        return 0, None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class InterfaceWriter:
    """Sends copies on a mirror interface as Ethernet frames (zero MACs, IPv4/IPv6 type)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @staticmethod
    def open_socket(ifname: str) -> socket.socket:
        return packet_socket(ifname, 0)  # sends only

    def write(self, batch: list[tuple[int, bytes]]) -> tuple[int, OSError | None]:
        """Each copy is sent on its own: one refused (the interface down, its queue full)
        costs that copy only."""
        failed, last = 0, None
        for _t, packet in batch:
            try:
                self._sock.send(_ZERO_MACS + _ETHERTYPE.get(packet[0] >> 4, b"\x08\x00") + packet)
            except OSError as exc:
                failed, last = failed + 1, exc
        return failed, last

    def close(self) -> None:
        self._sock.close()


class Mirror:
    """One intercept in the data plane: its target, its bounded queue, its writer thread."""

    def __init__(self, intercept: Intercept, writer: Writer, bound: int) -> None:
        self.intercept = intercept
        self.target: Target = intercept.matcher()
        self.bound = bound
        self._queue: deque[tuple[int, bytes]] = deque()
        self._writer = writer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.copied = 0  # handed to the writer
        self.dropped = 0  # queue full (or a reader's socket full)
        # copies the fast path's program could not send (its data plane's fold: one writer)
        self.refused = 0
        self.errors = 0  # writes that failed
        self.error: str | None = None

    def copy(self, packet: bytes) -> None:
        """Called by the data plane (under its lock): queue a copy, never block."""
        if len(self._queue) >= self.bound:
            self.dropped += 1
            return
        self._queue.append((time.time_ns(), packet))

    def copy_at(self, time_ns: int, packet: bytes) -> None:
        """:meth:`copy` with a given time (a reader of kernel copies)."""
        if len(self._queue) >= self.bound:
            self.dropped += 1
            return
        self._queue.append((time_ns, packet))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"tof-intercept-{self.intercept.name}", daemon=True
        )
        self._thread.start()

    def _drain(self) -> int:
        queue = self._queue
        batch: list[tuple[int, bytes]] = []
        while queue and len(batch) < 1024:
            batch.append(queue.popleft())
        if batch:
            try:
                failed, exc = self._writer.write(batch)
            except OSError as whole:
                failed, exc = len(batch), whole
            self.copied += len(batch) - failed
            self.errors += failed
            if exc is not None:
                if self.error is None:
                    _log.warning("intercept %s: write failed: %s", self.intercept.name, exc)
                self.error = str(exc)
        return len(batch)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._drain():
                self._stop.wait(0.01)

    def stop(self) -> None:
        """Write what is queued, then close (the data plane no longer copies to it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        while self._drain():
            pass
        self._writer.close()

    def stats(self) -> dict[str, object]:
        return {
            "copied": self.copied,
            "queued": len(self._queue),
            "dropped": self.dropped + self.refused,
            "errors": self.errors,
            "error": self.error,
        }


class FrameReader:
    """Reads the kernel's copies from an internal interface (AF_PACKET) into a mirror: the fast
    path's pcap destinations (the program clone-redirects copies to a veth whose peer this
    reads). Frames carry a 14-byte Ethernet header, removed; kernel drops at the socket's full
    receive queue are counted in the mirror's ``dropped``."""

    def __init__(self, sock: socket.socket, mirror: Mirror, drops: Callable[[], int]) -> None:
        self._sock = sock
        self._mirror = mirror
        self._drops = drops
        self._ring = RxRing(sock.fileno(), 64, 65536)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"tof-intercept-rx-{mirror.intercept.name}", daemon=True
        )

    @staticmethod
    def open_socket(ifname: str) -> socket.socket:
        """``ifname``'s frames and nothing else (``fluidedge.linux.packet``: a socket hooked
        before its bind would put other interfaces' packets into the intercept)."""

        def setup(sock: socket.socket) -> None:
            size_buffers(sock, receive=4 << 20)
            sock.setblocking(False)

        return packet_socket(ifname, setup=setup)

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> int:
        """Copy what the socket holds (up to a batch, one recvmmsg) into the mirror."""
        ring, copy = self._ring, self._mirror.copy_at
        n = ring.receive()
        now = time.time_ns()
        for i in range(n):
            length = ring.length(i)
            if length > 14 and ring.copy(i, 12, 14) in (b"\x08\x00", b"\x86\xdd"):
                copy(now, ring.copy(i, 14, length))
        return n

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        next_drops = time.monotonic() + 0.5
        while not self._stop.is_set():
            try:
                if not self._read():
                    poller.poll(100)
                if time.monotonic() >= next_drops:  # the kernel's count of a full socket
                    self._mirror.dropped += self._drops()
                    next_drops = time.monotonic() + 0.5
            except OSError:
                return

    def stop(self) -> None:
        """Read what the socket holds, then close it."""
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            while self._read():
                pass
        with contextlib.suppress(OSError):
            self._mirror.dropped += self._drops()
        self._sock.close()
