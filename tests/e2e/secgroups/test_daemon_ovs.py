"""Security groups on an ``ovs`` instance network inside a real daemon: instances on our own
Open vSwitch, filtered by the OpenFlow renderer through the same REST API as Linux-bridge
networks; a rule removal takes effect; a restart adopts the running switch and re-installs the
same table (nothing duplicated, nothing stale)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.client import Client
from fluidedge.core.store import Store
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.linux import netns as netns_mod
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.ofctl import Ofctl
from tests.fixtures.daemon import DaemonHandle

pytestmark = pytest.mark.root

NET = f"so{os.getpid() % 100000}"
NS = f"feso{os.getpid() % 100000}-sw"  # the switch's own namespace (one netdev datapath each)
BRIDGE = f"feso{os.getpid() % 100000}"[:15]
SUBNET = "198.18.43"

WEB = {
    "name": "soweb",
    "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
    "files": {"www/index.html": "edge app {name}\n"},
    "interfaces": [{"name": "eth0", "network": NET, "security_groups": ["web"]}],
    "readiness": {"kind": "tcp", "port": 8080},
    "pool": {"size": 1},
}
CLIENT = {
    "name": "socli",
    "command": ["/bin/busybox", "sleep", "2147483647"],
    "interfaces": [{"name": "eth0", "network": NET}],
    "pool": {"size": 2},
}


@pytest.fixture
def ovs_daemon(daemon_factory: Callable[..., DaemonHandle]) -> Iterator[DaemonHandle]:
    netns_mod.create(NS)
    try:
        yield from _daemon(daemon_factory)
    finally:
        netns_mod.delete(NS)


def _daemon(daemon_factory: Callable[..., DaemonHandle]) -> Iterator[DaemonHandle]:
    handle = daemon_factory(
        parts={
            "instances": {
                "pool_scale": 1,
                "memory_mb": 2048,
                "networks": {
                    NET: {
                        "bridge": BRIDGE,
                        "netns": NS,
                        "subnet": f"{SUBNET}.0/24",
                        "driver": "ovs",
                    }
                },
            },
            "secgroups": {},
        }
    )
    try:
        yield handle
    finally:
        handle.stop()
        state = Path(handle.config["state_dir"])
        manager = Manager(
            InstancesConfig(pool_scale=0, prepare_workers=1),
            Store(state / "fluidedge.sqlite"),
            state / "instances",
        )
        manager.start()
        manager.purge()  # deletes the ovs bridge, which stops our switch with it


def _get(pid: int, addr: str) -> str:
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "3", f"http://{addr}:8080/"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout.strip()


def _run(client: Client, name: str, template: str, index: int, **iface: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "template": template,
        "interfaces": {"eth0": {"addresses": [f"{SUBNET}.{index}/24"], **iface}},
    }
    made: dict[str, Any] = client.post("/v1/instances", body)
    return made


def _flows(handle: DaemonHandle) -> list[str]:
    state = Path(handle.config["state_dir"]) / "instances"
    ovs_bridges.configure(state)
    return sorted(Ofctl(ovs_bridges.switch(NS), BRIDGE).dump())


def test_ovs_network_filtered_through_the_api_and_restart(ovs_daemon: DaemonHandle) -> None:
    client = ovs_daemon.client()
    assert client.get(f"/v1/networks/{NET}")["driver"] == "ovs"
    client.post("/v1/security-groups", {"id": "clients"})
    client.post(
        "/v1/security-groups",
        {
            "id": "web",
            "rules": [
                {
                    "id": "http",
                    "direction": "ingress",
                    "protocol": "tcp",
                    "port_range_min": 8080,
                    "remote_group": "clients",
                }
            ],
        },
    )
    client.post(
        "/v1/security-groups/clients/rules",
        {"id": "out", "direction": "egress", "protocol": "tcp"},
    )
    client.post("/v1/templates", WEB)
    client.post("/v1/templates", CLIENT)
    _run(client, "app", "soweb", 5)
    c1 = _run(client, "c1", "socli", 11, security_groups=["clients"])
    c2 = _run(client, "c2", "socli", 12)  # the default group: not a client
    app_ip = f"{SUBNET}.5"
    assert _get(c1["pid"], app_ip) == "edge app app"
    assert _get(c2["pid"], app_ip) == ""
    flows = _flows(ovs_daemon)
    assert any("conjunction(" in f for f in flows)  # the remote group, as a conjunction
    assert any("ct(table=72,zone=NXM_NX_REG6[0..15])" in f for f in flows)

    client.close()
    ovs_daemon.restart()
    client = ovs_daemon.client()
    assert _flows(ovs_daemon) == flows  # re-installed whole: nothing duplicated or stale
    assert _get(c1["pid"], app_ip) == "edge app app"
    assert _get(c2["pid"], app_ip) == ""

    client.delete("/v1/security-groups/web/rules/http")
    assert _get(c1["pid"], app_ip) == ""
    for name in ("app", "c1", "c2"):
        client.delete(f"/v1/instances/{name}")
    client.close()
