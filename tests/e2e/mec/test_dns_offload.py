"""A UE in the lab resolves an app's name through the TOF (issue 16): its query to the core
resolver's address is offloaded by the TOF service ``mec-dns`` to the platform's DNS
responder (its socket in the TOF's namespace), which answers the app's ACTIVE DNS rule with the
edge address; once the app deactivates the rule over Mp1, the same query gets the core's
answer (the responder forwards it to its upstream, a stand-in core resolver on loopback)."""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator

import dns.message
import dns.rrset
import httpx
import pytest

from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import lab_tof_section, s1_pairs, wait_s1_ready
from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.wait import scaled, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AS = "/mec_app_support/v1"
RESOLVER = "198.18.200.53"  # the core resolver the UEs ask (a PDN address)
CORE = "198.18.200.99"  # what the core says
EDGE = "198.18.50.9"  # what the app's DNS rule says

# Run in the UE's namespace: one A query to RESOLVER, the sorted answers on stdout.
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


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    return module_lab_factory(mode="tof")


@pytest.fixture
def core_resolver() -> Iterator[int]:
    """The stand-in core resolver (the responder's upstream): every name is ``CORE``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            response.answer.append(dns.rrset.from_text(query.question[0].name, 5, "IN", "A", CORE))
            sock.sendto(response.to_wire(), addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def _resolve(lab: Lab, name: str) -> str:
    done = lab.run(
        "ue1",
        [sys.executable, "-c", UE_QUERY, name, RESOLVER, str(scaled(3.0))],
        timeout=scaled(30),
    )
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr[-300:]}"


def test_a_ue_resolves_the_apps_name_at_the_edge_then_the_cores(
    lab: Lab, daemon_factory: DaemonFactory, core_resolver: int
) -> None:
    daemon = daemon_factory(
        parts={
            "tof": lab_tof_section(lab, backend="userspace"),
            "mec": {
                "dns": {
                    "netns": lab.host_ns,
                    "listen": str(lab.apps_gateway),
                    "port": 53,
                    "upstream": [f"127.0.0.1:{core_resolver}"],
                    "resolver": RESOLVER,
                }
            },
        },
    )
    client = daemon.client()
    try:
        assert wait_s1_ready(client, s1_pairs(lab), timeout=scaled(20))
        body = {
            "name": f"cache{os.getpid() % 1000}",
            "dataAddress": "198.19.0.121",
            "dnsRules": [
                {"dnsRuleId": "d1", "domainName": "cache.example", "ipAddressType": "IP_V4",
                 "ipAddress": EDGE, "ttl": 5, "state": "ACTIVE"},
            ],
        }  # fmt: skip
        made = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=body, timeout=30).json()
        app, auth = made["appInstanceId"], {"Authorization": f"Bearer {made['token']}"}
        ready = httpx.post(f"{daemon.url}{AS}/applications/{app}/confirm_ready", headers=auth,
                           json={"indication": "READY"}, timeout=30)  # fmt: skip
        assert ready.status_code == 204, ready.text

        # the first query may wait for the lab's ARP: retried within the deadline
        answer = wait_for(
            lambda: (got := _resolve(lab, "cache.example")) == EDGE and got,
            scaled(30),
            lambda: f"the edge answer (last: {_resolve(lab, 'cache.example')})",
        )
        assert answer == EDGE
        assert _resolve(lab, "elsewhere.example") == CORE  # forwarded upstream
        stats = client.get("/stats")
        assert int(stats["services"]["mec-dns"]["upPackets"]) >= 2  # through the TOF

        off = {**body["dnsRules"][0], "state": "INACTIVE"}  # type: ignore[index]
        put = httpx.put(f"{daemon.url}{AS}/applications/{app}/dns_rules/d1", headers=auth,
                        json=off, timeout=30)  # fmt: skip
        assert put.status_code == 200, put.text
        assert _resolve(lab, "cache.example") == CORE
    finally:
        client.close()
        daemon.stop()
