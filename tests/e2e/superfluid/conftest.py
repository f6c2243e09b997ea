"""A lab in "tof" mode and a daemon running the TOF and the instance manager on it, with an
``edge`` template (busybox httpd on port 80 naming its instance) for on-demand services."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.client import Client
from fluidedge.instances import cgroups
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import lab_instances_section, lab_tof_section, s1_pairs, wait_s1_ready
from tests.e2e.instances.conftest import purge_daemon
from tests.fixtures.daemon import DaemonFactory, DaemonHandle, wait_pools
from tests.fixtures.wait import scaled

POOL = "198.19.0.64/27"
TEMPLATE = {
    "name": "edge",
    "command": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/.fe/www"],
    "files": {"www/index.html": "edge instance {name}\n"},
    "capabilities": ["CAP_NET_BIND_SERVICE"],
    "interfaces": [{"name": "eth0", "network": "apps"}],
    "readiness": {"kind": "tcp", "port": 80},
    "pool": {"size": 2, "refill_delay_ms": 0},
}


def service_body(name: str, service_ip: str, lab: Lab, policy: str, **spec: Any) -> dict[str, Any]:
    return {
        "name": name,
        "serviceIP": service_ip,
        "onDemand": {
            "template": "edge",
            "policy": policy,
            "addressPool": POOL,
            "gateway": str(lab.apps_gateway),
            **spec,
        },
    }


@dataclass
class Env:
    lab: Lab
    daemon: DaemonHandle
    client: Client

    def http(self, ue: str, address: str, timeout: float = 5.0) -> str:
        result = self.lab.run(ue, ["curl", "-s", "-m", str(scaled(timeout)), f"http://{address}/"])
        return result.stdout if result.returncode == 0 else f"<curl exit {result.returncode}>"

    def instances(self, service: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.client.get(f"/service/{service}/instances")["instances"]
        return result

    def events(self, service: str) -> dict[str, int]:
        result: dict[str, int] = self.client.get(f"/service/{service}/instances")["events"]
        return result

    def view(self, instance: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.get(f"/v1/instances/{instance}")
        return result

    def cli(self, *args: str) -> str:
        env = {**os.environ, "FLUIDEDGE_URL": self.daemon.url, "FLUIDEDGE_TOKEN": self.daemon.token}
        result = subprocess.run(
            [sys.executable, "-m", "fluidedge", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(60),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def reconnect(self) -> None:
        self.client.close()
        self.client = self.daemon.client()


def frozen(instance_id: str) -> bool:
    """The kernel's word (the freezer cgroup), not the daemon's."""
    return cgroups.detect("auto", None).frozen(instance_id)


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    return module_lab_factory(mode="tof")


@pytest.fixture
def env(lab: Lab, daemon_factory: DaemonFactory, tmp_path: Path) -> Iterator[Env]:
    with make_env(lab, daemon_factory, "userspace") as made:
        yield made


@contextmanager
def make_env(lab: Lab, daemon_factory: DaemonFactory, backend: str, **core: Any) -> Iterator[Env]:
    """A daemon with both parts on ``lab`` (TOF ``backend``), the edge template, S1 ready;
    ``core``: more top-level config keys (e.g. ``admission``)."""
    daemon = daemon_factory(
        **core,
        parts={
            "instances": lab_instances_section(lab, pool_scale=1.0, builtin_templates=False),
            "tof": lab_tof_section(lab, backend=backend),
        },
    )
    env = Env(lab, daemon, daemon.client())
    try:
        env.client.post("/v1/templates", TEMPLATE)
        wait_pools(lambda: list(env.client.get("/v1/pools")), 60)
        assert wait_s1_ready(env.client, s1_pairs(lab), timeout=scaled(20))
        yield env
    finally:
        env.client.close()
        daemon.stop()
        purge_daemon(daemon)
