"""Offloaded UE traffic meets the app port's security groups (issue 13): a UE's HTTP request,
offloaded by the TOF to an instance on the apps network, is dropped while the instance's group
has no rule for it, answered once a rule allows it, and dropped again when the rule goes. On
the userspace TOF the offloaded packets reach the apps bridge from the host's side; on the fast
path ``filter_offloaded`` (on by default with ``[secgroups]``) sends them through the host's
routing and hooks instead of the program's redirect, so the same rules apply."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import lab_instances_section, lab_tof_section, s1_pairs, wait_s1_ready
from tests.e2e.instances.conftest import purge_daemon
from tests.fixtures.daemon import DaemonFactory, wait_pools
from tests.fixtures.wait import scaled, wait_for

pytestmark = pytest.mark.root

SERVICE_IP = "198.18.50.7"
APP_IP = "198.19.0.120"  # in the lab's apps subnet, outside the on-demand tests' pools
HTTP = {
    "id": "http",
    "direction": "ingress",
    "protocol": "tcp",
    "port_range_min": 80,
    "port_range_max": 80,
}


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    return module_lab_factory(mode="tof")


def _get(lab: Lab, timeout: float = 3.0) -> str:
    """What ``curl http://SERVICE_IP/`` from ue1 gets ("" when dropped)."""
    result = lab.run("ue1", ["curl", "-s", "-m", str(scaled(timeout)), f"http://{SERVICE_IP}/"])
    return result.stdout.strip() if result.returncode == 0 else ""


def _where(lab: Lab, app: dict[str, Any]) -> str:
    """Where the requests stopped, for a failure's report: the host's neighbour entry and the
    app's veth counters, the group's port-80 rules as installed, the app's listening sockets,
    its addresses and neighbours."""

    def out(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return " | ".join(line.strip() for line in (done.stdout + done.stderr).splitlines())

    host_if = app["interfaces"][0]["host_ifname"]
    rules = out(["ip", "netns", "exec", lab.host_ns, "nft", "list", "ruleset"])
    in_app = ["nsenter", "-t", str(app["pid"]), "-n"]
    return "; ".join(
        [
            "host neigh: " + out(["ip", "-n", lab.host_ns, "neigh", "show", APP_IP]),
            "host veth: " + out(["ip", "-n", lab.host_ns, "-s", "link", "show", host_if]),
            "rules with 80: " + " | ".join(r for r in rules.split(" | ") if " 80 " in r),
            "app sockets: " + out([*in_app, "ss", "-tln"]),
            "app addr: " + out([*in_app, "ip", "-br", "addr"]),
            "app neigh: " + out([*in_app, "ip", "neigh"]),
        ]
    )


def _offloaded(stats: dict[str, Any]) -> int:
    """Uplink packets the TOF offloaded to service ``web`` (it saw and NATed them)."""
    return int(stats["services"]["web"]["upPackets"])


@pytest.mark.parametrize("backend", ["userspace", "fastpath"])
def test_offloaded_requests_obey_the_app_ports_group(
    lab: Lab, daemon_factory: DaemonFactory, backend: str
) -> None:
    daemon = daemon_factory(
        parts={
            "instances": lab_instances_section(lab, pool_scale=1.0, builtin_templates=False),
            "tof": lab_tof_section(lab, backend=backend),
            "secgroups": {},
        },
    )
    client = daemon.client()
    try:
        client.post("/v1/security-groups", {"id": "app", "description": "the edge app"})
        client.post(
            "/v1/templates",
            {
                "name": "sgedge",
                "command": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/.fe/www"],
                "files": {"www/index.html": "edge app {name}\n"},
                "capabilities": ["CAP_NET_BIND_SERVICE"],
                "interfaces": [{"name": "eth0", "network": "apps", "security_groups": ["app"]}],
                "readiness": {"kind": "tcp", "port": 80},
                "pool": {"size": 1},
            },
        )
        wait_pools(lambda: list(client.get("/v1/pools")), 60)
        prefix = lab.apps_subnet.split("/")[1]
        client.post(
            "/v1/instances",
            {
                "name": "app1",
                "template": "sgedge",
                "interfaces": {
                    "eth0": {"addresses": [f"{APP_IP}/{prefix}"], "gateway": str(lab.apps_gateway)}
                },
            },
        )
        client.post("/service", {"name": "web", "serviceIP": SERVICE_IP, "applicationIP": APP_IP})
        assert wait_s1_ready(client, s1_pairs(lab), timeout=scaled(20))

        # no rule lets TCP 80 in: the TOF offloads the request, the app's port drops it
        assert _get(lab) == ""
        stats = client.get("/stats")
        assert _offloaded(stats) > 0, stats["services"]["web"]

        client.post("/v1/security-groups/app/rules", HTTP)

        def state() -> str:  # what a failure reports: the service's counters, the data plane
            seen = client.get("/stats")
            return (
                f"the request answered once the rule exists (service web: "
                f"{seen['services']['web']}; fastpath: {seen.get('fastpath')}; "
                f"drops: {seen.get('drops')}; {_where(lab, client.get('/v1/instances/app1'))})"
            )

        answered = wait_for(lambda: _get(lab), 30, state)
        assert answered == "edge app app1"

        client.delete("/v1/security-groups/app/rules/http")
        wait_for(lambda: _get(lab) == "", 30, "the request dropped again once the rule is gone")
    finally:
        client.close()
        daemon.stop()
        purge_daemon(daemon)
