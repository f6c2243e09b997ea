"""An emulated eNodeB or SGW user plane: TUN on one side, GTP-U over UDP 2152 on the other.

Run by the lab as ``python -m fluidedge.lab.node SPEC.json`` inside the node's namespace. The
spec (written by :mod:`fluidedge.lab.topology`) lists the node's bearers:

- eNB: packets the kernel routes into the TUN come from UEs (policy route ``iif <ue>``); each
  is encapsulated with its bearer's *uplink* TEID (optionally with a PDU Session Container, UL,
  QFI) toward the bearer's SGW. G-PDUs received on a known *downlink* TEID are decapsulated and
  written to the TUN; the kernel routes them to the UE's port.
- SGW: G-PDUs on a known uplink TEID are decapsulated into the TUN, and the kernel routes them
  to the PDN; packets the kernel routes into the TUN (toward the UE pool) are encapsulated with
  the downlink TEID of the bearer owning the destination UE, toward that bearer's eNB.

SIGHUP makes a node re-read its bearers from the spec file: tests rewrite it to emulate a
re-attach (the core handing out new or re-used TEIDs to other UEs). Both answer Echo Requests
and send an Error Indication for a G-PDU on an unknown TEID. The eNB
also sends Echo Requests to its SGWs and keeps a line-echo TCP connection to its MME-like peer,
so that non-GTP traffic crosses the S1 segment. Counters go to a JSON stats file twice a second
(the lab's ``status`` and live table read it); its first write also says "ready".

Kept free of heavy imports: it starts once per node on every ``lab up``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from fluidedge.codec.errors import CodecError
from fluidedge.codec.gtpu import (
    GTPU_PORT,
    PDU_TYPE_UL,
    EchoRequest,
    EchoResponse,
    ErrorIndication,
    GPdu,
    PduSessionContainer,
    decode,
    echo_request,
    echo_response,
    encode_gpdu,
    error_indication,
)
from fluidedge.linux.sockbuf import size_buffers

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
STATS_PERIOD = 0.5
MME_KEEPALIVE_PERIOD = 1.0


def open_tun(name: str) -> int:
    """Attach to the (persistent) TUN device ``name``; returns a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


@dataclass
class BearerCounters:
    ul_packets: int = 0
    ul_bytes: int = 0
    dl_packets: int = 0
    dl_bytes: int = 0


@dataclass
class Counters:
    gtpu_rx: int = 0
    gtpu_tx: int = 0
    echo_request_rx: int = 0
    echo_request_tx: int = 0
    echo_response_rx: int = 0
    echo_response_tx: int = 0
    error_indication_rx: int = 0
    error_indication_tx: int = 0
    unknown_teid: int = 0
    malformed: int = 0
    tun_unroutable: int = 0
    send_errors: int = 0
    other_rx: int = 0
    mme_connected: bool = False
    mme_tx: int = 0
    mme_rx: int = 0
    bearers: dict[str, BearerCounters] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeBearer:
    ue: str
    ue_address: bytes
    peer: str  # the other end of the tunnel: SGW (on an eNB) or eNB (on an SGW)
    tx_teid: int  # TEID we put on G-PDUs we send
    rx_teid: int  # TEID we accept on G-PDUs we receive
    extensions: tuple[PduSessionContainer, ...]


class Node:
    """One eNB or SGW user plane; :meth:`run` until SIGTERM."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.role: str = spec["role"]
        self.name: str = spec["name"]
        self.address: str = spec["address"]
        self.tun_name: str = spec["tun"]
        self.echo_peers: list[str] = list(spec["echo_peers"])
        self.echo_interval: float = float(spec["echo_interval"])
        mme = spec.get("mme")
        self.mme: tuple[str, int] | None = None if mme is None else (str(mme[0]), int(mme[1]))
        self.stats_path = Path(spec["stats_path"])
        self.counters = Counters()
        self.by_address: dict[bytes, NodeBearer] = {}
        self.by_rx_teid: dict[int, NodeBearer] = {}
        self.set_bearers(spec["bearers"])
        self.spec_path: Path | None = None
        self.reload = threading.Event()
        self.reloads = 0
        self.stop = threading.Event()
        self.started = time.time()
        self.echo_seq = 0

    def set_bearers(self, bearers: list[dict[str, Any]]) -> None:
        """Install the bearer table (at start, and on SIGHUP from the spec file: a re-attach,
        new TEIDs or UEs, as a real core hands them out; counters of known UEs are kept)."""
        by_address: dict[bytes, NodeBearer] = {}
        by_rx_teid: dict[int, NodeBearer] = {}
        enb = self.role == "enb"
        for raw in bearers:
            exts: tuple[PduSessionContainer, ...] = ()
            if enb and raw["pdu_session_container"]:
                exts = (PduSessionContainer(pdu_type=PDU_TYPE_UL, qfi=int(raw["qfi"])),)
            b = NodeBearer(
                ue=raw["ue"],
                ue_address=IPv4Address(raw["ue_address"]).packed,
                peer=raw["sgw_address"] if enb else raw["enb_address"],
                tx_teid=int(raw["ul_teid"] if enb else raw["dl_teid"]),
                rx_teid=int(raw["dl_teid"] if enb else raw["ul_teid"]),
                extensions=exts,
            )
            by_address[b.ue_address] = b
            if raw.get("ue_address6"):
                by_address[IPv6Address(raw["ue_address6"]).packed] = b
            by_rx_teid[b.rx_teid] = b
            self.counters.bearers.setdefault(b.ue, BearerCounters())
        self.by_address, self.by_rx_teid = by_address, by_rx_teid

    # --- packet paths ------------------------------------------------------------------
    def from_tun(self, packet: bytes) -> None:
        """A packet the kernel routed into the TUN: encapsulate toward the right peer."""
        version = packet[0] >> 4 if packet else 0
        if version == 4 and len(packet) >= 20:
            key = packet[12:16] if self.role == "enb" else packet[16:20]
        elif version == 6 and len(packet) >= 40:
            key = packet[8:24] if self.role == "enb" else packet[24:40]
        else:
            self.counters.tun_unroutable += 1
            return
        bearer = self.by_address.get(key)
        if bearer is None:
            self.counters.tun_unroutable += 1
            return
        datagram = encode_gpdu(bearer.tx_teid, packet, extensions=bearer.extensions)
        if not self._send(datagram, (bearer.peer, GTPU_PORT)):
            return
        self.counters.gtpu_tx += 1
        c = self.counters.bearers[bearer.ue]
        if self.role == "enb":
            c.ul_packets += 1
            c.ul_bytes += len(packet)
        else:
            c.dl_packets += 1
            c.dl_bytes += len(packet)

    def _send(self, datagram: bytes, address: tuple[str, int]) -> bool:
        """Send on the GTP-U socket; an unreachable peer (e.g. a forged source) is counted.

        A G-PDU may come from any address (fuzzers, misrouted peers); answering it must never
        take the node down.
        """
        try:
            self.udp.sendto(datagram, address)
        except OSError:
            self.counters.send_errors += 1
            return False
        return True

    def from_udp(self, datagram: bytes, sender: tuple[str, int]) -> None:
        """A datagram on port 2152: G-PDU, echo, error indication..."""
        self.counters.gtpu_rx += 1
        try:
            msg = decode(datagram)
        except CodecError:
            self.counters.malformed += 1
            return
        if isinstance(msg, GPdu):
            bearer = self.by_rx_teid.get(msg.header.teid)
            if bearer is None:
                self.counters.unknown_teid += 1
                reply = error_indication(
                    msg.header.teid, IPv4Address(self.address), udp_port=sender[1]
                )
                if self._send(reply, (sender[0], GTPU_PORT)):
                    self.counters.error_indication_tx += 1
                return
            payload = bytes(msg.payload)
            try:
                os.write(self.tun, payload)
            except OSError:
                self.counters.tun_unroutable += 1
                return
            c = self.counters.bearers[bearer.ue]
            if self.role == "enb":
                c.dl_packets += 1
                c.dl_bytes += len(payload)
            else:
                c.ul_packets += 1
                c.ul_bytes += len(payload)
        elif isinstance(msg, EchoRequest):
            self.counters.echo_request_rx += 1
            if self._send(echo_response(msg), sender):
                self.counters.echo_response_tx += 1
        elif isinstance(msg, EchoResponse):
            self.counters.echo_response_rx += 1
        elif isinstance(msg, ErrorIndication):
            self.counters.error_indication_rx += 1
        else:
            self.counters.other_rx += 1

    def send_echo_requests(self) -> None:
        for peer in self.echo_peers:
            self.echo_seq = (self.echo_seq + 1) & 0xFFFF
            if self._send(echo_request(self.echo_seq), (peer, GTPU_PORT)):
                self.counters.echo_request_tx += 1

    # --- MME-like control connection ---------------------------------------------------
    def mme_loop(self) -> None:
        """Keep a TCP line-echo connection to the MME peer (non-GTP traffic over S1)."""
        if self.mme is None:
            return
        seq = 0
        while not self.stop.is_set():
            try:
                with socket.create_connection(
                    self.mme, timeout=2.0, source_address=(self.address, 0)
                ) as conn:
                    self.counters.mme_connected = True
                    reader = conn.makefile("rb")
                    while not self.stop.is_set():
                        seq += 1
                        conn.sendall(f"keepalive {self.name} {seq}\n".encode())
                        self.counters.mme_tx += 1
                        if not reader.readline():
                            break
                        self.counters.mme_rx += 1
                        self.stop.wait(MME_KEEPALIVE_PERIOD)
            except OSError:
                pass
            self.counters.mme_connected = False
            self.stop.wait(MME_KEEPALIVE_PERIOD)

    # --- stats -------------------------------------------------------------------------
    def write_stats(self) -> None:
        c = self.counters
        doc = {
            "pid": os.getpid(),
            "role": self.role,
            "name": self.name,
            "address": self.address,
            "started": self.started,
            "updated": time.time(),
            "counters": {k: v for k, v in vars(c).items() if k != "bearers"},
            "reloads": self.reloads,
            "bearers": {ue: vars(bc) for ue, bc in c.bearers.items()},
        }
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.stats_path)

    # --- main loop ---------------------------------------------------------------------
    def run(self) -> None:
        self.tun = open_tun(self.tun_name)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        size_buffers(self.udp, receive=1 << 21)
        self.udp.bind((self.address, GTPU_PORT))
        self.udp.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(self.tun, selectors.EVENT_READ, "tun")
        sel.register(self.udp, selectors.EVENT_READ, "udp")
        threading.Thread(target=self.mme_loop, name="mme", daemon=True).start()
        self.write_stats()  # doubles as the readiness signal
        next_stats = time.monotonic() + STATS_PERIOD
        # First echo at once: the answers also teach the S1 bridges where each SGW lives.
        next_echo = time.monotonic()
        while not self.stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                if key.data == "tun":
                    for _ in range(64):
                        try:
                            packet = os.read(self.tun, 65535)
                        except BlockingIOError:
                            break
                        self.from_tun(packet)
                else:
                    for _ in range(64):
                        try:
                            datagram, sender = self.udp.recvfrom(65535)
                        except BlockingIOError:
                            break
                        except OSError:  # e.g. ICMP port unreachable reported on the socket
                            continue
                        self.from_udp(datagram, sender)
            if self.reload.is_set() and self.spec_path is not None:
                self.reload.clear()
                with contextlib.suppress(OSError, ValueError, KeyError):
                    self.set_bearers(json.loads(self.spec_path.read_text())["bearers"])
                    self.reloads += 1
                self.write_stats()
            now = time.monotonic()
            if self.echo_interval and self.echo_peers and now >= next_echo:
                with contextlib.suppress(OSError):
                    self.send_echo_requests()
                next_echo = now + self.echo_interval
            if now >= next_stats:
                self.write_stats()
                next_stats = now + STATS_PERIOD
        self.write_stats()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m fluidedge.lab.node SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    node = Node(spec)
    node.spec_path = Path(argv[1])
    signal.signal(signal.SIGHUP, lambda *_: node.reload.set())  # re-read the bearers
    signal.signal(signal.SIGTERM, lambda *_: node.stop.set())
    signal.signal(signal.SIGINT, lambda *_: node.stop.set())
    node.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
