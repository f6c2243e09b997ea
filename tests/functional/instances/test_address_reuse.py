"""An address comes back: the network's side reaches the new holder at once.

Deleting an instance and creating another at the same address (what an operator does, what an
address pool does for on-demand instances) gives the address a new MAC (a new veth). The
network's namespace, which just talked to the old holder, keeps a REACHABLE neighbour entry
with the old MAC for tens of seconds: without the manager forgetting it, the first packets to
the new instance go to a MAC nobody has. And the bridge keeps its own MAC while ports come and
go (a bridge without a MAC of its own takes its lowest port's: the gateway's MAC would move
under the instances).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from tests.fixtures.netns import scratch_netns

from .conftest import ManagerFactory, bridge_name

pytestmark = pytest.mark.root

GATEWAY = "198.18.30.1"
ADDRESS = "198.18.30.2"


@pytest.fixture
def gateway_ns() -> Iterator[str]:
    with scratch_netns("reuse") as name:
        yield name


def _in(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=20, check=False
    )


def _create(manager: Manager, name: str, *, cold: bool, address: str = ADDRESS) -> str:
    """Instance ``name`` at ``address`` (from the pool or ``cold``); its MAC."""
    view = manager.create_instance(
        InstanceRequest.model_validate(
            {
                "name": name,
                "template": "idle1",
                "cold": cold,
                "interfaces": {"eth0": {"addresses": [f"{address}/24"], "gateway": GATEWAY}},
            }
        )
    )
    got = subprocess.run(
        ["nsenter", "-t", str(view.pid), "-n", "--", "ip", "-o", "link", "show", "eth0"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    found = re.search(r"link/ether ([0-9a-f:]{17})", got.stdout)
    assert found, got.stdout
    return found.group(1)


def _mac(ns: str, ifname: str) -> str:
    found = re.search(
        r"link/ether ([0-9a-f:]{17})", _in(ns, "ip", "-o", "link", "show", ifname).stdout
    )
    assert found
    return found.group(1)


def _neighbour(ns: str, bridge: str) -> str:
    return _in(ns, "ip", "neigh", "show", ADDRESS, "dev", bridge).stdout.strip()


@pytest.mark.parametrize("pooled", [True, False])
def test_a_reused_address_is_reached_at_its_new_mac_at_once(
    manager_factory: ManagerFactory, gateway_ns: str, pooled: bool
) -> None:
    manager = manager_factory(pool_scale=1)
    bridge = bridge_name("u")
    manager.create_network(
        NetworkSpec(name="reuse", bridge=bridge, netns=gateway_ns, subnet="198.18.30.0/24")
    )
    subprocess.run(
        ["ip", "-n", gateway_ns, "addr", "add", f"{GATEWAY}/24", "dev", bridge], check=True
    )
    manager.create_template(
        TemplateSpec.model_validate(
            {
                "name": "idle1",
                "command": ["/bin/busybox", "sleep", "3600"],
                "interfaces": [{"name": "eth0", "network": "reuse"}],
                "pool": {"size": 1},
            }
        )
    )
    assert manager.wait_pools(60)
    gateway_mac = _mac(gateway_ns, bridge)
    # Another tenant on the network keeps the bridge's carrier up (a bridge whose last port
    # goes loses its carrier, and the kernel then drops its neighbour entries by itself).
    _create(manager, "neighbour", cold=True, address="198.18.30.3")
    first_mac = _create(manager, "first", cold=not pooled)
    ping = _in(gateway_ns, "ping", "-c", "1", "-W", "5", ADDRESS)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    entry = _neighbour(gateway_ns, bridge)
    assert first_mac in entry, entry
    assert "REACHABLE" in entry, entry
    manager.delete_instance("first")
    if pooled:
        assert manager.wait_pools(60)
    second_mac = _create(manager, "second", cold=not pooled)
    assert second_mac != first_mac
    # No entry with the old MAC survived the new assignment: the next packet resolves afresh.
    assert first_mac not in _neighbour(gateway_ns, bridge)
    ping = _in(gateway_ns, "ping", "-c", "1", "-W", "1", ADDRESS)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert re.search(rf"lladdr {second_mac}\b", _neighbour(gateway_ns, bridge))
    # Ports came and went; the gateway kept its MAC (the instances' ARP entries stay right).
    assert _mac(gateway_ns, bridge) == gateway_mac
