"""The lab's servers: PDN host (HTTP, UDP echo, DNS), edge apps (HTTP), MME-like peers (TCP
echo).

Run as ``python -m fluidedge.lab.services SPEC.json`` inside a lab namespace. The HTTP body
names the server (``pdn <addr>`` or ``edge-app <name> <addr>``) and the client address it saw,
so a test can tell who answered and whether NAT happened on the way. The DNS server answers
the lab zone (:mod:`fluidedge.lab.dns`) over UDP and keeps its counters in a JSON file, written
before each answer is sent (so a client that has its answer sees it counted).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fluidedge.lab.dns import OUTCOMES, Zone, respond

ANY = "0.0.0.0"  # noqa: S104 - inside a lab namespace: the namespace is the boundary
ANY6 = "::"


def _client(address: str) -> str:
    """The client's address as it sent it (dual-stack sockets show IPv4 as ::ffff:a.b.c.d)."""
    return address.removeprefix("::ffff:")


def _dual_stack(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)


class _Http(ThreadingHTTPServer):
    """Serves IPv4 and IPv6 on one dual-stack socket when the namespace has IPv6."""

    daemon_threads = True
    allow_reuse_address = True
    body_prefix = ""

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            _dual_stack(self.socket)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    server: _Http
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        client = _client(str(self.client_address[0]))
        body = f"{self.server.body_prefix} client {client} path {self.path}\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


class _LineEcho(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class _TcpEcho(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _udp_echo(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(data, peer)


class _DnsServer:
    """The PDN's DNS server: one thread per socket (IPv4, and IPv6 when dual-stack)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.zone = Zone.from_json(spec["zone"])
        self.stats = Path(str(spec["stats_path"]))
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.lock = threading.Lock()
        port = int(spec["port"])
        self.sockets = [_bound(socket.AF_INET, str(spec["address"]), port)]
        if spec.get("address6"):
            self.sockets.append(_bound(socket.AF_INET6, str(spec["address6"]), port))
        self._write()

    def start(self) -> None:
        for sock in self.sockets:
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                continue
            try:
                outcome, answer = respond(data, self.zone)
            except Exception:
                outcome, answer = "dropped", None
            with self.lock:
                self.counts[outcome] += 1
                self._write()
            if answer is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(answer, peer)

    def _write(self) -> None:
        tmp = self.stats.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.counts))
        os.replace(tmp, self.stats)


def _bound(family: socket.AddressFamily, address: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((address, port))
    return sock


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m fluidedge.lab.services SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    six = bool(spec.get("ipv6"))
    if spec.get("http_port"):
        if six:
            _Http.address_family = socket.AF_INET6
        http = _Http((ANY6 if six else ANY, int(spec["http_port"])), _Handler)
        http.body_prefix = str(spec["http_body"])
        threading.Thread(target=http.serve_forever, daemon=True).start()
    if spec.get("udp_echo_port"):
        udp = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)
        if six:
            _dual_stack(udp)
        udp.bind((ANY6 if six else ANY, int(spec["udp_echo_port"])))
        threading.Thread(target=_udp_echo, args=(udp,), daemon=True).start()
    if spec.get("tcp_echo_port"):
        tcp = _TcpEcho((ANY, int(spec["tcp_echo_port"])), _LineEcho)
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
    if spec.get("dns"):
        _DnsServer(spec["dns"]).start()
    Path(spec["ready_path"]).write_text("ready\n")
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
