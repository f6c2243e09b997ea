"""A UE in the lab resolves an app's name through the TOF (issue 16): its query to the core's
resolver (the PDN's DNS server, ``[pdn.dns]``) is offloaded by the TOF service ``mec-dns`` to
the platform's DNS responder (its socket in the TOF's namespace), which answers the app's
ACTIVE DNS rule with the edge address; every other name, and the app's name once the app
deactivates the rule over Mp1, is the core's answer: the responder asks the PDN's DNS server,
from the TOF's namespace over the one route the lab gives it to the PDN (the PDN server's own
counters prove where each answer came from). A query over TCP is offloaded and answered the
same way."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import httpx
import pytest

from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import lab_tof_section, s1_pairs, wait_s1_ready
from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.dns_query import lab_query
from tests.fixtures.wait import scaled, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AS = "/mec_app_support/v1"
NAME = "www.pdn.example"  # a name of the core's zone (the PDN's web server) the app takes over
EDGE = "198.18.50.9"  # what the app's DNS rule says


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    return module_lab_factory(mode="tof")


def _forwarded(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = re.search(r'fluidedge_mec_dns_queries_total\{outcome="forwarded"\} (\d+)', text)
    assert found, "the responder's counters in /metrics"
    return int(found.group(1))


def test_a_ue_resolves_the_apps_name_at_the_edge_then_the_cores(
    lab: Lab, daemon_factory: DaemonFactory
) -> None:
    resolver, core = str(lab.pdn_dns_address), str(lab.pdn_address)
    daemon = daemon_factory(
        parts={
            "tof": lab_tof_section(lab, backend="userspace"),
            "mec": {
                "dns": {
                    "netns": lab.host_ns,
                    "listen": str(lab.apps_gateway),
                    "port": 53,
                    "upstream": [f"{resolver}:53"],  # the same server, reached by the lab's route
                    "upstream_netns": lab.host_ns,
                    "resolver": resolver,
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
                {"dnsRuleId": "d1", "domainName": NAME, "ipAddressType": "IP_V4",
                 "ipAddress": EDGE, "ttl": 5, "state": "ACTIVE"},
            ],
        }  # fmt: skip
        made = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=body, timeout=30).json()
        app, auth = made["appInstanceId"], {"Authorization": f"Bearer {made['token']}"}

        # INSTANTIATED: the rule is not the platform's yet, the core answers (through the TOF,
        # the responder and its upstream)
        before = lab.pdn_dns_stats()
        core_answer = wait_for(
            lambda: (got := lab_query(lab, "ue1", NAME, resolver)) == f"NOERROR {core}" and got,
            scaled(30),
            lambda: f"the core's answer (last: {lab_query(lab, 'ue1', NAME, resolver)})",
        )  # the first query may wait for the lab's ARP: retried within the deadline
        assert core_answer == f"NOERROR {core}"
        assert lab.pdn_dns_stats()["answered"] > before["answered"]  # the PDN's server said so
        assert _forwarded(daemon.url) >= 1

        ready = httpx.post(f"{daemon.url}{AS}/applications/{app}/confirm_ready", headers=auth,
                           json={"indication": "READY"}, timeout=30)  # fmt: skip
        assert ready.status_code == 204, ready.text
        before = lab.pdn_dns_stats()
        assert lab_query(lab, "ue1", NAME, resolver) == f"NOERROR {EDGE}"
        assert lab_query(lab, "ue3", NAME.upper(), resolver) == f"NOERROR {EDGE}"
        # over TCP (a client's retry after a truncated answer): the offload carries it too
        assert lab_query(lab, "ue1", NAME, resolver, tcp=True) == f"NOERROR {EDGE}"
        assert lab.pdn_dns_stats() == before  # answered at the edge: the core never saw them
        # another name: the core's answer, from the PDN's server
        assert lab_query(lab, "ue2", "pdn.example", resolver) == f"NOERROR {core}"
        assert lab_query(lab, "ue2", "elsewhere.example", resolver) == "NXDOMAIN"
        after = lab.pdn_dns_stats()
        assert (after["answered"], after["nxdomain"]) == (
            before["answered"] + 1, before["nxdomain"] + 1,
        )  # fmt: skip
        stats = client.get("/stats")
        assert int(stats["services"]["mec-dns"]["upPackets"]) >= 5  # through the TOF

        off = {**body["dnsRules"][0], "state": "INACTIVE"}  # type: ignore[index]
        put = httpx.put(f"{daemon.url}{AS}/applications/{app}/dns_rules/d1", headers=auth,
                        json=off, timeout=30)  # fmt: skip
        assert put.status_code == 200, put.text
        before = lab.pdn_dns_stats()
        assert lab_query(lab, "ue1", NAME, resolver) == f"NOERROR {core}"
        assert lab.pdn_dns_stats()["answered"] == before["answered"] + 1
    finally:
        client.close()
        daemon.stop()
