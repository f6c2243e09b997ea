"""One-way latency probes sent through the lab while the generator loads it (RFC 2544 §26.2).

RFC 2544 measures latency with tagged frames inside the test stream at the throughput rate. The
lab's generator counts frames but does not timestamp them, so a :class:`LatencyProbe` adds its
own: G-PDUs built like the generator's (same bearer, size, DSCP mark, so they are counted and
forwarded the same way) whose IPv4 identification is a probe sequence number, sent from the RAN
namespace through an AF_PACKET socket, and caught at the far side (an SGW's S1 interface, or the
edge app's interface when the TOF offloads) by an AF_PACKET socket with kernel receive
timestamps (``SO_TIMESTAMPNS``). Packet taps run before the ingress hook where the lab's sinks
drop generator traffic, so the probes are seen. Both ends read CLOCK_REALTIME on the same host:
latency = kernel receive time - the sender's clock just before ``send``. Probes lost under load
simply have no sample (loss is what the throughput trial counts).
"""

from __future__ import annotations

import contextlib
import ctypes
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.sockbuf import size_buffers

SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
PROBE_IDENT_BASE = 40000  # the generator's frames use IPv4 identification 0..11
PROBE_COUNT = 64


def probe_ident(seq: int) -> int:
    return PROBE_IDENT_BASE + seq % (65536 - PROBE_IDENT_BASE)


def ipv4_ident(frame: bytes) -> int | None:
    """IPv4 identification of an untagged Ethernet/IPv4 frame (the first IP header)."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    return int(struct.unpack_from("!H", frame, 18)[0])


SO_ATTACH_FILTER = 26
# Classic BPF: accept IPv4 frames whose identification is a probe's, drop the rest in the
# kernel. The receiving socket sees every frame of the load too; without this, a receiver
# thread starved on a loaded host lets its buffer overflow with load frames and loses probes.
_PROBE_FILTER = (
    (0x28, 0, 0, 12),  # ldh [12]            ethertype
    (0x15, 0, 3, 0x0800),  # jeq #0x800, else drop
    (0x28, 0, 0, 18),  # ldh [18]            IPv4 identification
    (0x35, 0, 1, PROBE_IDENT_BASE),  # jge #base, else drop
    (0x06, 0, 0, 0x40000),  # ret #262144      accept
    (0x06, 0, 0, 0),  # ret #0                drop
)


def attach_probe_filter(sock: socket.socket) -> None:
    """Attach :data:`_PROBE_FILTER` to an AF_PACKET socket (``SO_ATTACH_FILTER``)."""
    program = b"".join(struct.pack("HBBI", *insn) for insn in _PROBE_FILTER)
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(_PROBE_FILTER), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class LatencyProbe:
    """Send ``count`` probes over ``duration_s`` (after ``delay_s``) and time their arrival."""

    def __init__(
        self,
        *,
        send_netns: str,
        send_ifname: str,
        recv_netns: str,
        recv_ifname: str,
        make_frame: Callable[[int], bytes],
    ) -> None:
        self.send_netns = send_netns
        self.send_ifname = send_ifname
        self.recv_netns = recv_netns
        self.recv_ifname = recv_ifname
        self.make_frame = make_frame
        self.sent_at: dict[int, int] = {}
        self.received_at: dict[int, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._send_sock: socket.socket | None = None
        self._recv_sock: socket.socket | None = None

    def _open(self) -> None:
        def sender() -> socket.socket:
            return packet_socket(self.send_ifname, 0)

        def setup(sock: socket.socket) -> None:
            attach_probe_filter(sock)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            size_buffers(sock, receive=4 << 20)
            sock.setblocking(False)

        def receiver() -> socket.socket:  # the receive side's probes, not the sender's
            return packet_socket(self.recv_ifname, setup=setup)

        self._send_sock = call_in_netns(self.send_netns, sender)
        self._recv_sock = call_in_netns(self.recv_netns, receiver)

    def start(self, *, delay_s: float, duration_s: float, count: int = PROBE_COUNT) -> None:
        self._open()
        frames = [(probe_ident(i), self.make_frame(probe_ident(i))) for i in range(count)]
        receive = threading.Thread(target=self._receive, name="probe-rx", daemon=True)
        send = threading.Thread(
            target=self._send, args=(frames, delay_s, duration_s), name="probe-tx", daemon=True
        )
        self._threads = [receive, send]
        receive.start()
        send.start()

    def _send(self, frames: list[tuple[int, bytes]], delay_s: float, duration_s: float) -> None:
        sock = self._send_sock
        if sock is None or not frames:
            return
        if self._stop.wait(delay_s):
            return
        gap = duration_s / len(frames)
        for ident, frame in frames:
            self.sent_at[ident] = time.time_ns()
            with contextlib.suppress(OSError):
                sock.send(frame)
            if self._stop.wait(gap):
                return

    def _receive(self) -> None:
        sock = self._recv_sock
        if sock is None:
            return
        wanted = set(range(PROBE_IDENT_BASE, 65536))
        while not self._stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            while True:
                try:
                    data, ancillary, _flags, address = sock.recvmsg(2048, 64)
                except BlockingIOError:
                    break
                except OSError:
                    return
                if address[2] == socket.PACKET_OUTGOING:
                    continue
                ident = ipv4_ident(data)
                if ident is None or ident not in wanted or ident in self.received_at:
                    continue
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                        seconds, nanos = struct.unpack("qq", value[:16])
                        self.received_at[ident] = seconds * 1_000_000_000 + nanos

    def stop(self) -> tuple[float, ...]:
        """Stop both threads; latencies (µs) of the probes that arrived, in send order."""
        time.sleep(0.05)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in (self._send_sock, self._recv_sock):
            if sock is not None:
                sock.close()
        self._send_sock = self._recv_sock = None
        return tuple(
            (self.received_at[ident] - sent) / 1000.0
            for ident, sent in sorted(self.sent_at.items())
            if ident in self.received_at and self.received_at[ident] >= sent
        )
