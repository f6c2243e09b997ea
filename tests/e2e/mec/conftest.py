"""Helpers of the ME platform's e2e tests: a stand-in core resolver on loopback, and a DNS
query from a lab UE."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator

import dns.message
import dns.rrset
import pytest

from fluidedge.lab.lab import Lab
from tests.fixtures.wait import scaled

# Run in the UE's namespace: one A query to argv[2]:53, the sorted answers on stdout.
UE_QUERY = """
import socket, sys
import dns.message
q = dns.message.make_query(sys.argv[1], "A")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]))
s.sendto(q.to_wire(), (sys.argv[2], 53))
a = dns.message.from_wire(s.recvfrom(4096)[0])
print(" ".join(sorted(r.to_text() for rr in a.answer for r in rr)))
"""


def ue_resolve(lab: Lab, name: str, resolver: str, ue: str = "ue1") -> str:
    """What ``ue`` gets for ``name`` from ``resolver`` (``failed: ...`` when nothing)."""
    done = lab.run(
        ue, [sys.executable, "-c", UE_QUERY, name, resolver, str(scaled(3.0))], timeout=scaled(30)
    )
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr[-300:]}"


@pytest.fixture
def stub_resolver() -> Iterator[Callable[[str], int]]:
    """``stub_resolver(address)`` -> the port of a UDP resolver on loopback answering every
    name with ``address`` (the platform's upstream: the core's resolver)."""
    stop = threading.Event()
    started: list[tuple[socket.socket, threading.Thread]] = []

    def start(address: str) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, addr = sock.recvfrom(4096)
                except TimeoutError:
                    continue
                query = dns.message.from_wire(data)
                response = dns.message.make_response(query)
                name = query.question[0].name
                response.answer.append(dns.rrset.from_text(name, 5, "IN", "A", address))
                sock.sendto(response.to_wire(), addr)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        started.append((sock, thread))
        port: int = sock.getsockname()[1]
        return port

    try:
        yield start
    finally:
        stop.set()
        for sock, thread in started:
            thread.join(timeout=5)
            sock.close()
