"""The ME platform end to end (issue 16's first scenario), in the lab with the userspace TOF:
an app deployed as an instance (data interface on the lab's apps network, platform interface on
the platform network, the tenant's security groups) confirms ready over Mp1 from inside its
instance with the token it finds there; a UE resolves the app's name (DNS rule, offloaded to
the platform's responder) and its HTTP reaches the app through the TOF (traffic rule); the app
deactivates both rules; the UE then gets the core's answer (the lab's PDN DNS server, which the
responder asks upstream) and reaches the core's server."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.lab.lab import Lab
from fluidedge.secgroups.nft import table_name
from fluidedge.tof.launch import lab_instances_section, lab_tof_section, s1_pairs, wait_s1_ready
from tests.fixtures.daemon import TOKEN, DaemonFactory, purge_instances_state
from tests.fixtures.dns_query import lab_query
from tests.fixtures.wait import scaled, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AS = "/mec_app_support/v1"
NAME = "video.edge.example"  # the app's name; the core's zone has it too (the PDN's server)
SERVICE_IP = "198.18.50.9"  # the app's name resolves here; the traffic rule offloads it
APP_IP = "198.19.0.122"
TAG = os.getpid() % 10000
PLAT_NET, PLAT_BR = f"mecq{TAG}", f"fem3q{TAG}"
PLAT = f"10.232.{TAG % 200}"


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    # the core's zone names the app's name too: the PDN's web server answers it in the core
    return module_lab_factory(mode="tof", pdn={"dns": {"names": {NAME: ["198.18.200.10"]}}})


def ue_resolve(lab: Lab, name: str) -> str:
    """The addresses ue1 gets for ``name`` from the core's resolver (the PDN's DNS server)."""
    return lab_query(lab, "ue1", name, str(lab.pdn_dns_address)).removeprefix("NOERROR ")


def _in_app(pid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a host tool in the app instance's network namespace."""
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip


def _mp1(pid: int, token: str, method: str, url: str, body: dict[str, Any]) -> int:
    """An Mp1 call made from inside the app's instance: its HTTP status."""
    done = _in_app(pid, "curl", "-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                   "-X", method, "-H", f"Authorization: Bearer {token}",
                   "-H", "Content-Type: application/json", "-d", json.dumps(body), url)  # fmt: skip
    return int(done.stdout or 0)


def _get(lab: Lab, address: str) -> str:
    done = lab.run("ue1", ["curl", "-s", "-m", str(scaled(3.0)), f"http://{address}/"])
    return done.stdout.strip() if done.returncode == 0 else ""


def test_a_deployed_app_is_found_and_reached_by_a_ue_then_hands_back_to_the_core(
    lab: Lab, daemon_factory: DaemonFactory
) -> None:
    core = str(lab.pdn_address)  # the core's answer for the app's name: the PDN's web server
    resolver = str(lab.pdn_dns_address)
    instances = lab_instances_section(lab, pool_scale=0, builtin_templates=False)
    instances["networks"] = {  # type: ignore[index]
        **instances["networks"],  # type: ignore[dict-item]
        PLAT_NET: {"bridge": PLAT_BR, "subnet": f"{PLAT}.0/24"},
    }
    daemon = daemon_factory(
        parts={
            "instances": {**instances, "memory_mb": 2048},
            "secgroups": {},
            "tof": lab_tof_section(lab, backend="userspace"),
            "mec": {
                "platform_network": PLAT_NET,
                "platform_address": f"{PLAT}.1/24",
                "mp1_port": 20000 + TAG % 20000,
                "allow_plain_http": True,  # the busybox apps' wget does not verify TLS
                # no data_ingress: the default lets the TOF's ue_pools (the lab's UEs) in
                "dns": {
                    "netns": lab.host_ns,
                    "listen": str(lab.apps_gateway),
                    "upstream": [f"{resolver}:53"],  # the core's resolver, by the lab's route
                    "upstream_netns": lab.host_ns,
                    "resolver": resolver,
                },
            },
        },
    )
    client = daemon.client()
    try:
        client.post("/v1/templates", {
            "name": "mecweb",
            "command": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/.fe/www"],
            "files": {"www/index.html": "edge app {name}\n"},
            "capabilities": ["CAP_NET_BIND_SERVICE"],
            "readiness": {"kind": "tcp", "port": 80},
            "pool": {"size": 0},
        })  # fmt: skip
        prefix = lab.apps_subnet.split("/")[1]
        traffic = {"trafficRuleId": "web", "filterType": "FLOW", "priority": 1,
                   "trafficFilter": [{"dstAddress": [f"{SERVICE_IP}/32"]}],
                   "action": "FORWARD_DECAPSULATED", "state": "ACTIVE"}  # fmt: skip
        name_rule = {"dnsRuleId": "name", "domainName": NAME,
                     "ipAddressType": "IP_V4", "ipAddress": SERVICE_IP, "ttl": 5,
                     "state": "ACTIVE"}  # fmt: skip
        body = {
            "name": "video",
            "deploy": {
                "template": "mecweb",
                "data": {"network": "apps", "address": f"{APP_IP}/{prefix}",
                         "gateway": str(lab.apps_gateway)},
            },
            "trafficRules": [traffic],
            "dnsRules": [name_rule],
        }  # fmt: skip
        made = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=body, timeout=180)
        assert made.status_code == 201, made.text
        app = made.json()
        pid = client.get(f"/v1/instances/{app['instance']}")["pid"]
        token = Path(f"/proc/{pid}/root/.fe/mec/token").read_text()
        base = f"{app['mp1Url']}{AS}/applications/{app['appInstanceId']}"
        assert wait_s1_ready(client, s1_pairs(lab), timeout=scaled(20))

        # Before confirm_ready nothing is offloaded: the name is the core's, from its server.
        before = lab.pdn_dns_stats()["answered"]
        assert ue_resolve(lab, NAME) == core
        assert lab.pdn_dns_stats()["answered"] == before + 1
        assert _mp1(pid, token, "POST", f"{base}/confirm_ready", {"indication": "READY"}) == 204

        found = wait_for(
            lambda: (got := ue_resolve(lab, NAME)) == SERVICE_IP and got,
            scaled(30),
            "the UE resolving the app's name to its service address",
        )
        assert found == SERVICE_IP
        page = wait_for(lambda: _get(lab, found), scaled(30), "the app's page through the TOF")
        assert page == f"edge app {app['instance']}"

        # The app hands its users back to the core: both rules deactivated over Mp1.
        off = {**name_rule, "state": "INACTIVE"}
        assert _mp1(pid, token, "PUT", f"{base}/dns_rules/name", off) == 200
        assert _mp1(pid, token, "PUT", f"{base}/traffic_rules/web",
                    {**traffic, "state": "INACTIVE"}) == 200  # fmt: skip
        before = lab.pdn_dns_stats()["answered"]
        again = ue_resolve(lab, NAME)
        assert again == core
        assert lab.pdn_dns_stats()["answered"] == before + 1  # the core's server answered
        assert _get(lab, again).startswith(f"pdn {core}")
        assert _get(lab, SERVICE_IP) == ""  # no longer offloaded: nothing in the core there

        gone = httpx.delete(f"{daemon.url}/v1/apps/{app['appInstanceId']}", headers=ADMIN,
                            timeout=60)  # fmt: skip
        assert gone.status_code == 200, gone.text
        assert not [i for i in client.get("/v1/instances") if i["name"] == app["instance"]]
    finally:
        client.close()
        daemon.stop()
        purge_instances_state(Path(daemon.config["state_dir"]))
        for net in ("apps", PLAT_NET):
            for family in ("bridge", "inet"):
                netns = ["ip", "netns", "exec", lab.host_ns] if net == "apps" else []
                subprocess.run([*netns, "nft", "delete", "table", family, table_name(net)],
                               capture_output=True, check=False)  # fmt: skip
        subprocess.run(["ip", "link", "del", PLAT_BR], capture_output=True, check=False)
