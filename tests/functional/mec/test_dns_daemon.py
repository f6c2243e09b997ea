"""The DNS responder in a real daemon (``[mec.dns]``): an app's ACTIVE DNS rule is answered
once the app is READY, its deactivation over Mp1 hands the name back to the core resolver (a
fake one on loopback) before the Mp1 answer, other names are forwarded, the TOF gets the
service that offloads the UEs' queries for the core resolver, and a restart restores it all."""

from __future__ import annotations

import functools
import os
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.rrset
import httpx
import pytest

from fluidedge.linux import netns
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import run
from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.dns_stub import stub_resolver
from tests.fixtures.wait import wait_until
from tests.functional.mec.conftest import up

pytestmark = [pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AS = "/mec_app_support/v1"
CORE = "192.0.2.1"


# An app whose one DNS rule (ACTIVE) names cache.example 198.18.0.5.
CACHE_APP: dict[str, Any] = {
    "name": "cache",
    "dataAddress": "10.0.2.10",
    "dnsRules": [
        {"dnsRuleId": "d1", "domainName": "cache.example", "ipAddressType": "IP_V4",
         "ipAddress": "198.18.0.5", "ttl": 30, "state": "ACTIVE"},
    ],
}  # fmt: skip


@pytest.fixture
def core_resolver() -> Iterator[int]:
    """A fake core resolver on loopback: every name is ``CORE``."""
    with stub_resolver(CORE) as port:
        yield port


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def resolve(port: int, name: str, host: str = "127.0.0.1") -> list[str]:
    query = dns.message.make_query(name, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.to_wire(), (host, port))
        answer = dns.message.from_wire(sock.recvfrom(4096)[0])
    assert answer.id == query.id
    return sorted(r.to_text() for rrset in answer.answer for r in rrset)


def test_dns_rules_answered_deactivated_forwarded_offloaded_restored(
    daemon_factory: DaemonFactory, core_resolver: int
) -> None:
    port = _free_udp_port()
    parts: dict[str, dict[str, Any]] = {
        "tof": {"backend": "none"},
        "mec": {
            "dns": {
                "listen": "127.0.0.1",
                "port": port,
                "upstream": [f"127.0.0.1:{core_resolver}"],
                "timeout": 1.0,
            }
        },
    }
    daemon = up(daemon_factory, parts)
    body = CACHE_APP
    created = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=body, timeout=30).json()
    app = created["appInstanceId"]
    auth = {"Authorization": f"Bearer {created['token']}"}
    assert resolve(port, "cache.example") == [CORE]  # not READY yet: the core answers
    ready = httpx.post(f"{daemon.url}{AS}/applications/{app}/confirm_ready", headers=auth,
                       json={"indication": "READY"}, timeout=30)  # fmt: skip
    assert ready.status_code == 204, ready.text
    assert resolve(port, "cache.example") == ["198.18.0.5"]
    assert resolve(port, "other.example") == [CORE]

    rule_url = f"{daemon.url}{AS}/applications/{app}/dns_rules/d1"
    off = {**body["dnsRules"][0], "state": "INACTIVE"}  # type: ignore[index]
    assert httpx.put(rule_url, headers=auth, json=off, timeout=30).status_code == 200
    assert resolve(port, "cache.example") == [CORE]  # right after the answer
    on = {**off, "state": "ACTIVE", "ipAddress": "198.18.0.9"}
    assert httpx.put(rule_url, headers=auth, json=on, timeout=30).status_code == 200
    assert resolve(port, "cache.example") == ["198.18.0.9"]

    daemon.restart()
    assert resolve(port, "cache.example") == ["198.18.0.9"]
    metrics = httpx.get(f"{daemon.url}/metrics", headers=ADMIN, timeout=30).text
    assert 'fluidedge_mec_dns_queries_total{outcome="answered"} 1' in metrics
    assert httpx.delete(f"{daemon.url}/v1/apps/{app}", headers=ADMIN, timeout=30).is_success
    assert resolve(port, "cache.example") == [CORE]


def test_the_core_resolver_is_offloaded_to_the_responder(
    daemon_factory: DaemonFactory, core_resolver: int
) -> None:
    listen = f"127.0.53.{os.getpid() % 250 + 1}"  # port 53 (the TOF keeps the port): ours
    parts: dict[str, dict[str, Any]] = {
        "tof": {"backend": "none"},
        "mec": {
            "dns": {
                "listen": listen,
                "port": 53,
                "upstream": [f"127.0.0.1:{core_resolver}"],
                "resolver": "10.45.0.53",
            }
        },
    }
    daemon = up(daemon_factory, parts)
    services = httpx.get(f"{daemon.url}/service", headers=ADMIN, timeout=30).json()
    assert {s["name"]: (s["serviceIP"], s["applicationIP"]) for s in services} == {
        "mec-dns": ("10.45.0.53", listen)
    }
    assert resolve(53, "anything.example", listen) == [CORE]


@pytest.mark.root
def test_a_responder_whose_namespace_is_not_there_yet_waits_for_it(
    daemon_factory: DaemonFactory, core_resolver: int
) -> None:
    """After a reboot the responder's namespace (the TOF's) and its listen address are made
    again by the operator, maybe after the daemon's start: the start waits for them instead of
    being refused, the rules declared meanwhile are answered once the responder runs."""
    name = f"fe-dnsw-{secrets.token_hex(3)}"
    listen = "10.77.53.1"
    parts: dict[str, dict[str, Any]] = {
        "tof": {"backend": "none"},
        "mec": {
            "platform_check_interval": 0.2,
            "dns": {
                "listen": listen,
                "port": 53,
                "netns": name,
                "upstream": [f"127.0.0.1:{core_resolver}"],
                "timeout": 1.0,
            },
        },
    }
    daemon = up(daemon_factory, parts)  # used to exit: "config [mec.dns]: ... does not exist"
    try:
        health = httpx.get(f"{daemon.url}/healthz", timeout=30).json()
        gone = f"the DNS responder: network namespace {name!r} does not exist"
        assert (health["status"], health["waiting"]) == ("degraded", {"mec": gone})
        created = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=CACHE_APP, timeout=30)
        app = created.json()
        auth = {"Authorization": f"Bearer {app['token']}"}
        ready = httpx.post(
            f"{daemon.url}{AS}/applications/{app['appInstanceId']}/confirm_ready",
            headers=auth,
            json={"indication": "READY"},
            timeout=30,
        )
        assert ready.status_code == 204, ready.text

        netns.create(name)  # the operator's set-up: the namespace, then the address
        absent = f"the DNS responder: address {listen} is not in namespace {name}"

        def waiting() -> object:
            return httpx.get(f"{daemon.url}/healthz", timeout=30).json()["waiting"]

        assert wait_until(lambda: waiting() == {"mec": absent}, timeout=10), waiting()
        run(["ip", "-n", name, "addr", "add", f"{listen}/32", "dev", "lo"])
        assert wait_until(lambda: waiting() == {}, timeout=10), waiting()
        ask = functools.partial(call_in_netns, name)
        assert ask(lambda: resolve(53, "cache.example", listen)) == ["198.18.0.5"]
        assert ask(lambda: resolve(53, "other.example", listen)) == [CORE]  # forwarded
        log = daemon.log()
        assert log.count("event=mec_dns_waiting") == 2
        assert "event=mec_dns_started" in log
    finally:
        daemon.stop()
        netns.delete(name)
