"""Helpers of the ME platform's e2e tests: a stand-in core resolver on loopback, and a DNS
query from a lab UE."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import pytest

from fluidedge.lab.lab import Lab
from tests.fixtures import dns_stub
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
    with contextlib.ExitStack() as stack:

        def start(address: str) -> int:
            return stack.enter_context(dns_stub.stub_resolver(address))

        yield start
