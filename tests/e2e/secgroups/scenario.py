"""The scenario both daemon tests share: a web app in group ``web`` (TCP 8080 from members of
``clients``), a client in ``clients`` and one in the default group, on one network; what a
client's ``curl`` gets; and the teardown that purges the daemon's instances."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluidedge.core.client import Client
from tests.fixtures.daemon import DaemonHandle, purge_instances_state


def get(pid: int, addr: str) -> str:
    """What ``curl http://addr:8080/`` from an instance's network namespace gets (empty:
    refused or timed out)."""
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "3", f"http://{addr}:8080/"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout.strip()


def run(
    client: Client,
    subnet: str,
    name: str,
    template: str,
    index: int,
    *,
    restart: str | None = None,
    **iface: Any,
) -> dict[str, Any]:
    """Create instance ``name`` at ``<subnet>.<index>`` (``restart``: its restart policy;
    ``iface``: more of its eth0)."""
    body: dict[str, Any] = {
        "name": name,
        "template": template,
        "interfaces": {"eth0": {"addresses": [f"{subnet}.{index}/24"], **iface}},
    }
    if restart is not None:
        body["restart"] = restart
    made: dict[str, Any] = client.post("/v1/instances", body)
    return made


@dataclass(frozen=True)
class Scene:
    app_ip: str
    c1: dict[str, Any]  # in ``clients``
    c2: dict[str, Any]  # in the default group


def web_and_clients(client: Client, network: str, subnet: str, prefix: str) -> Scene:
    """The groups, the templates (``<prefix>web``, ``<prefix>cli``) and the three instances;
    checks that c1 gets the page and c2 does not."""
    client.post("/v1/security-groups", {"id": "clients", "description": "may call the app"})
    http = {
        "id": "http",
        "direction": "ingress",
        "protocol": "tcp",
        "port_range_min": 8080,
        "remote_group": "clients",
    }
    client.post("/v1/security-groups", {"id": "web", "rules": [http]})
    client.post(
        "/v1/security-groups/clients/rules",
        {"id": "out", "direction": "egress", "protocol": "tcp"},
    )
    client.post(
        "/v1/templates",
        {
            "name": f"{prefix}web",
            "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
            "files": {"www/index.html": "edge app {name}\n"},
            "interfaces": [{"name": "eth0", "network": network, "security_groups": ["web"]}],
            "readiness": {"kind": "tcp", "port": 8080},
            "pool": {"size": 1},
        },
    )
    client.post(
        "/v1/templates",
        {
            "name": f"{prefix}cli",
            "command": ["/bin/busybox", "sleep", "2147483647"],
            "interfaces": [{"name": "eth0", "network": network}],
            "pool": {"size": 2},
        },
    )
    run(client, subnet, "app", f"{prefix}web", 5)
    c1 = run(client, subnet, "c1", f"{prefix}cli", 11, security_groups=["clients"])
    c2 = run(client, subnet, "c2", f"{prefix}cli", 12)  # the template names none: default
    app_ip = f"{subnet}.5"
    assert get(c1["pid"], app_ip) == "edge app app"
    assert get(c2["pid"], app_ip) == ""
    return Scene(app_ip, c1, c2)


def purge(handle: DaemonHandle) -> None:
    """Delete what a stopped daemon left (instances, shells, an ovs network's bridge)."""
    purge_instances_state(Path(handle.config["state_dir"]))
