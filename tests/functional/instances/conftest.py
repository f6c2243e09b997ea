"""Fixtures for the instance manager's functional tests: real runc, cgroups, bridges, veths.

Every manager made here is purged at teardown (instances, pooled shells, bridges), even when
the test fails; names carry the test process's pid so parallel runs on this host do not clash.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fluidedge.core.store import Store
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import TemplateSpec
from fluidedge.linux import netns as netns_mod
from tests.fixtures.daemon import stop_switches
from tests.fixtures.ovs_datapath import DATAPATH

ManagerFactory = Callable[..., Manager]
PREFIX = f"fb{os.getpid() % 100000}"


def bridge_name(suffix: str) -> str:
    """A bridge name unique to this test process (<= 15 chars)."""
    return f"{PREFIX}{suffix}"[:15]


def in_netns(pid: int, *argv: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (host binaries) inside the network namespace of process ``pid``."""
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def web(network: str, *, pool: int) -> TemplateSpec:
    """``web``: busybox httpd serving a page naming the instance, on ``network`` (eth0)."""
    return TemplateSpec.model_validate(
        {
            "name": "web",
            "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
            "files": {"www/index.html": "hello from {name}\n"},
            "interfaces": [{"name": "eth0", "network": network}],
            "readiness": {"kind": "tcp", "port": 8080},
            "pool": {"size": pool},
        }
    )


def two_leg_web(*, pool: int, isolated: bool = False) -> TemplateSpec:
    """``web2``: busybox httpd serving a page naming the instance, on networks ``left``
    (eth0) and ``right`` (eth1, a service function's isolated leg with ``isolated``)."""
    return TemplateSpec.model_validate(
        {
            "name": "web2",
            "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
            "files": {"www/index.html": "hello from {name}\n"},
            "interfaces": [
                {"name": "eth0", "network": "left"},
                {"name": "eth1", "network": "right", "isolated": isolated},
            ],
            "readiness": {"kind": "tcp", "port": 8080},
            "pool": {"size": pool},
        }
    )


@pytest.fixture
def ovs_ns() -> Iterator[str]:
    """A namespace of its own for the test's switch: the userspace datapath allows one switch
    per namespace on the host, and other test runs may use the host namespace's. Ask for it
    before ``manager_factory``: it is then deleted after the managers' purge, which deletes
    their bridges there (otherwise the switch is left registered, and the next test's
    namespace of the same name would get it restarted)."""
    ns = f"fbo{os.getpid() % 100000}"
    netns_mod.create(ns)
    try:
        yield ns
    finally:
        netns_mod.delete(ns)


@pytest.fixture
def manager_factory(tmp_path: Path) -> Iterator[ManagerFactory]:
    made: list[Manager] = []

    def make(**config: Any) -> Manager:
        index = len(made)
        config.setdefault("pool_scale", 0.5)
        # The VM tier runs these tests a second time with crun (which refuses hybrid hosts).
        config.setdefault("runtime", os.environ.get("FLUIDEDGE_TEST_RUNTIME", "runc"))
        config.setdefault("ovs_datapath", DATAPATH)  # and with the kernel's OVS datapath
        manager = Manager(
            InstancesConfig.model_validate(config),
            Store(tmp_path / f"db{index}.sqlite"),
            tmp_path / f"state{index}",
        )
        made.append(manager)
        manager.start()
        return manager

    try:
        yield make
    finally:
        try:
            for manager in made:
                manager.purge()
        finally:  # a purge that failed (or never ran) leaves no Open vSwitch daemons behind
            stop_switches(tmp_path)
