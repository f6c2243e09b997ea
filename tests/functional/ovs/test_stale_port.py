"""A port record whose device went (a reboot took the host's veths) is made anew when a device
of that name is plugged again and the record still has no OpenFlow port.

``--may-exist add-port`` changes nothing in the database for such a record, and the plug read
its OpenFlow port at once: when ``ovs-vswitchd`` had not looked at the new device yet, the
record still said "No such device" and the plug failed. An instance made again with its
container id (``restart = "always"``) plugs a veth of the same name, and a chain's port pairs
name such ports (the VM tier's reboot test failed this way).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.linux.proc import run
from fluidedge.ovs import bridges
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.netns import scratch_netns
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.root

TAG = f"sp{os.getpid() % 100000}"
BRIDGE = f"{TAG}br"


@pytest.fixture
def switch(own_registry: Path) -> Iterator[tuple[str, Vsctl]]:
    with scratch_netns(f"{TAG}s") as ns:
        assert bridges.ensure_bridge(BRIDGE, ns, "net")
        daemons = bridges.switch(ns)
        try:
            yield ns, Vsctl(daemons)
        finally:
            daemons.destroy()


def _veth(ns: str, name: str) -> None:
    run(["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", f"{name}p"])
    run(["ip", "-n", ns, "link", "set", name, "up"])


def test_a_port_whose_device_went_and_came_back_gets_an_openflow_port(
    switch: tuple[str, Vsctl],
) -> None:
    ns, vsctl = switch
    port = f"{TAG}v"
    _veth(ns, port)
    assert vsctl.add_port(BRIDGE, port, {"fluidedge-network": "net"}) > 0
    # A reboot: the device goes and the switch starts again from its database without it.
    run(["ip", "-n", ns, "link", "del", port])
    daemons = bridges.switch(ns)
    _db, vswitchd = daemons.pids()
    assert vswitchd is not None
    os.kill(vswitchd, signal.SIGKILL)
    wait_for(lambda: daemons.pids()[1] is None, 10, "vswitchd gone")
    assert bridges.revive() == [ns]
    wait_for(lambda: vsctl.ofport_if_any(port) is None, 10, "the record without its device")
    assert "No such device" in vsctl.run("get", "Interface", port, "error")
    # The device back, plugged at once: the plug must not fail on the old record (the VM
    # tier's reboot test did, on an emulated host where the switch had not looked yet; here
    # it often has, by itself).
    _veth(ns, port)
    again = vsctl.add_port(BRIDGE, port, {"fluidedge-network": "net"})
    assert again > 0
    assert vsctl.ofport_if_any(port) == again
    assert vsctl.ports(BRIDGE).count(port) == 1
    assert vsctl.interfaces()[port]["external_ids"] == {"fluidedge-network": "net"}
