"""Fixtures of the daemon's functional tests: a private network namespace for a daemon, and the
clean-up of what an instances part left (containers, cgroups, shells)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonHandle, purge_instances_state
from tests.fixtures.netns import scratch_netns


def purge_instances(handle: DaemonHandle) -> None:
    """Remove every container, cgroup and shell the daemon's instances part made."""
    purge_instances_state(Path(handle.config["state_dir"]))


@pytest.fixture
def api_netns() -> Iterator[str]:
    """A namespace with a veth pair (both ends inside) holding 192.0.2.1/24: an address off
    loopback that no packet can leave the machine from."""
    with scratch_netns("api") as name:
        for argv in (
            ["ip", "link", "add", "fe0", "type", "veth", "peer", "name", "fe1"],
            ["ip", "addr", "add", "192.0.2.1/24", "dev", "fe0"],
            ["ip", "link", "set", "fe0", "up"],
            ["ip", "link", "set", "fe1", "up"],
        ):
            subprocess.run(["ip", "netns", "exec", name, *argv], check=True)
        yield name
