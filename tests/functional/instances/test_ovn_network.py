"""Instance networks on the ``ovn`` driver: a node's instance on a logical switch that spans
hosts.

An OVN lab (tests/fixtures/ovn_lab.py: a central, one chassis in a namespace = another host)
and a manager configured as a node of it (``instances.ovn``: the databases, its chassis name,
encap address and underlay device, in a namespace of its own). The node starts its own
chassis with its first ``ovn`` network; its instance becomes a logical port bound there and
talks over geneve to an instance on the other host; deleting the instance deletes the port,
purging the node stops its chassis and removes its directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from fluidedge.ovn import networks as ovn_networks
from fluidedge.ovn.errors import OvnUnavailable
from tests.fixtures.ovn_lab import OvnLab
from tests.fixtures.wait import wait_until

from .conftest import ManagerFactory, bridge_name, in_netns

pytestmark = pytest.mark.root


@pytest.fixture
def lab() -> Iterator[OvnLab]:
    lab = OvnLab(chassis_count=1)
    try:
        yield lab
    finally:
        lab.close()


def _node_config(lab: OvnLab) -> dict[str, object]:
    ns, encap = lab.add_host(1)
    return {
        "nb": lab.central.nb_remote,
        "sb": lab.central.sb_remote,
        "chassis": f"{lab.prefix}-node",
        "encap": encap,
        "underlay": "ul0",
        "netns": ns,
    }


def test_an_instance_on_an_ovn_network_talks_to_another_host(
    manager_factory: ManagerFactory, lab: OvnLab
) -> None:
    node = _node_config(lab)
    manager = manager_factory(pool_scale=1, ovn=node)
    net = f"{lab.prefix}-net"
    spec = manager.create_network(
        NetworkSpec(name=net, bridge=bridge_name("v"), driver="ovn", netns=str(node["netns"]))
    )
    assert spec.driver == "ovn"
    chassis = ovn_networks.chassis()
    assert chassis.running()
    assert chassis.root.is_relative_to(manager.state_dir)
    assert chassis.root.stat().st_mode & 0o077 == 0
    manager.create_template(
        TemplateSpec.model_validate(
            {
                "name": "web",
                "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
                "files": {"www/index.html": "hello from {name}\n"},
                "interfaces": [{"name": "eth0", "network": net}],
                "readiness": {"kind": "tcp", "port": 8080},
                "pool": {"size": 1},
            }
        )
    )
    assert manager.wait_pools(60)
    inst = manager.create_instance(
        InstanceRequest.model_validate(
            {
                "name": "a",
                "template": "web",
                "interfaces": {"eth0": {"addresses": ["10.30.0.2/24"]}},
            }
        )
    )
    assert inst.pid is not None
    host_if = inst.interfaces[0].host_ifname
    lsp = f"{node['chassis']}.{host_if}"
    assert lsp in chassis.bound_ports()
    assert host_if in ovn_networks.ports(net)
    # The other host: an instance on the lab's chassis, a port on the same logical switch.
    rport, rmac = f"{lab.prefix}-r", "02:30:00:00:00:09"
    lab.nbctl.transact([["lsp-add", net, rport], ["lsp-set-addresses", rport, rmac]])
    remote = lab.instance("r", 0, rport, rmac, "10.30.0.9")
    for port in (lsp, rport):
        lab.nbctl.run("wait-until", "Logical_Switch_Port", port, "up=true", wait="hv")
    fetched: list[subprocess.CompletedProcess[str]] = []

    def fetch() -> bool:
        fetched[:] = [
            remote.sh("curl", "-s", "--max-time", "3", "http://10.30.0.2:8080/", check=False)
        ]
        return fetched[0].returncode == 0

    assert wait_until(fetch, timeout=20)
    assert fetched[0].stdout == "hello from a\n"
    assert in_netns(inst.pid, "ping", "-c", "1", "-W", "2", "10.30.0.9").returncode == 0

    # Its veth deleted from outside is made again and bound again; its logical port is the
    # same row (the security groups' port groups name it).
    row = lab.nbctl.run("--bare", "--columns=_uuid", "find", "Logical_Switch_Port", f"name={lsp}")
    assert manager.revive_veths() == []
    subprocess.run(["ip", "-n", str(node["netns"]), "link", "del", host_if], check=True)
    assert not fetch()
    assert manager.revive_veths() == [host_if]
    assert lsp in chassis.bound_ports()
    assert (
        lab.nbctl.run("--bare", "--columns=_uuid", "find", "Logical_Switch_Port", f"name={lsp}")
        == row
    )
    assert wait_until(fetch, timeout=20)
    assert fetched[0].stdout == "hello from a\n"

    # The chassis' switch and ovn-controller killed: cut off until the check restarts them
    # (the part runs it every switch_check_interval_s); then whole again, nothing to redo.
    assert not ovn_networks.revive()
    for pidfile in (chassis.ovs.vswitchd_pidfile, chassis.pidfile):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert wait_until(lambda: chassis.dead() == ["ovs-vswitchd", "ovn-controller"], timeout=10)
    assert not fetch()
    assert ovn_networks.revive()
    assert chassis.dead() == []
    assert wait_until(fetch, timeout=30)
    assert fetched[0].stdout == "hello from a\n"
    assert not ovn_networks.revive()

    # The encap address flushed from br-phy (the daemons all alive): no tunnel, cut off
    # until the check sets the tunnels' side up again.
    assert chassis.tunnel_lost() == []
    subprocess.run(["ip", "-n", str(node["netns"]), "addr", "flush", "dev", "br-phy"], check=True)
    assert chassis.tunnel_lost() == [f"the encap address {chassis.encap} is not on br-phy"]
    assert not fetch()
    assert ovn_networks.revive()
    assert chassis.tunnel_lost() == []
    assert wait_until(fetch, timeout=30)
    assert not ovn_networks.revive()

    # br-phy's device deleted (ip link del: the switch keeps its port, with no device under
    # it): the same, and its device is made again.
    subprocess.run(["ip", "-n", str(node["netns"]), "link", "del", "br-phy"], check=True)
    assert chassis.tunnel_lost() == ["br-phy is gone"]
    assert not fetch()
    assert ovn_networks.revive()
    assert chassis.tunnel_lost() == []
    assert wait_until(fetch, timeout=30)
    assert fetched[0].stdout == "hello from a\n"
    assert not ovn_networks.revive()

    # Deleting the instance deletes its logical port; purging stops the node's chassis.
    manager.delete_instance("a")
    assert (
        lab.nbctl.run(
            "--bare", "--columns=name", "find", "Logical_Switch_Port", f"name={lsp}"
        ).strip()
        == ""
    )
    manager.purge()
    assert not chassis.running()
    assert not chassis.root.exists()


def test_an_ovn_network_outside_the_chassis_namespace_is_refused(
    manager_factory: ManagerFactory, lab: OvnLab
) -> None:
    manager = manager_factory(pool_scale=0, ovn=_node_config(lab))
    with pytest.raises(OvnUnavailable, match="chassis' namespace"):
        manager.create_network(NetworkSpec(name="elsewhere", bridge=bridge_name("w"), driver="ovn"))
    assert "elsewhere" not in manager.networks


def test_without_ovn_config_an_ovn_network_is_refused(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=0)
    with pytest.raises(OvnUnavailable, match="no OVN configuration"):
        manager.create_network(NetworkSpec(name="nope", bridge=bridge_name("n"), driver="ovn"))
