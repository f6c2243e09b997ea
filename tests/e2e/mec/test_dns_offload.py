"""A UE in the lab resolves an app's name through the TOF (issue 16): its query to the core
resolver's address is offloaded by the TOF service ``mec-dns`` to the platform's DNS
responder (its socket in the TOF's namespace), which answers the app's ACTIVE DNS rule with the
edge address; once the app deactivates the rule over Mp1, the same query gets the core's
answer (the responder forwards it to its upstream, a stand-in core resolver on loopback)."""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx
import pytest

from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import lab_tof_section, s1_pairs, wait_s1_ready
from tests.e2e.mec.conftest import ue_resolve
from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.wait import scaled, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AS = "/mec_app_support/v1"
RESOLVER = "198.18.200.53"  # the core resolver the UEs ask (a PDN address)
CORE = "198.18.200.99"  # what the core says
EDGE = "198.18.50.9"  # what the app's DNS rule says


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    return module_lab_factory(mode="tof")


def _resolve(lab: Lab, name: str) -> str:
    return ue_resolve(lab, name, RESOLVER)


def test_a_ue_resolves_the_apps_name_at_the_edge_then_the_cores(
    lab: Lab, daemon_factory: DaemonFactory, stub_resolver: Callable[[str], int]
) -> None:
    core_resolver = stub_resolver(CORE)
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
