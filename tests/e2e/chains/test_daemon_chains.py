"""Chains inside a real daemon: the ``[chains]`` part on an ``ovs`` instance network. Objects
declared over REST (and the CLI's routes) are stored and steer the daemon's own switch; ports
that appear are picked up by the part's poll; a restart and a kill -9 restore the objects and
re-install the same table (nothing duplicated, nothing stale); a member whose port goes leaves
its group."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fluidedge.core.client import Client, ClientError
from fluidedge.linux import netns as netns_mod
from fluidedge.linux.proc import run
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.errors import OvsError
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from tests.e2e.chains.cleanup import purge_daemon_state
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.root

TAG = f"ch{os.getpid() % 100000}"
NET = TAG
NS = f"fe{TAG}-sw"
BRIDGE = f"fe{TAG}"[:15]
PORTS = ("va", "vb", "f1i", "f1o", "f2i", "f2o")


@pytest.fixture
def chain_daemon(
    daemon_factory: Callable[..., DaemonHandle], tmp_path: Path
) -> Iterator[DaemonHandle]:
    state = tmp_path / "state"
    netns_mod.create(NS)
    try:
        handle = daemon_factory(
            state_dir=state,
            parts={
                "instances": {
                    "pool_scale": 0,
                    "memory_mb": 1024,
                    "builtin_templates": False,
                    "networks": {
                        NET: {
                            "bridge": BRIDGE,
                            "netns": NS,
                            "subnet": "198.18.44.0/24",
                            "driver": "ovs",
                        }
                    },
                },
                "chains": {"poll_interval": 0.2},
            },
        )
        try:
            yield handle
        finally:
            handle.stop()
    finally:
        purge_daemon_state(state, NS)
        netns_mod.delete(NS)


def _switch(handle: DaemonHandle) -> tuple[Vsctl, Ofctl]:
    ovs_bridges.configure(Path(handle.config["state_dir"]) / "instances")
    daemons = ovs_bridges.switch(NS)
    return Vsctl(daemons), Ofctl(daemons, BRIDGE)


def _plug(vsctl: Vsctl, names: tuple[str, ...]) -> None:
    """Ports on the daemon's bridge, as instance interfaces would be (veths in the switch's
    namespace; this test checks the tables, the functional tests the traffic)."""
    for name in names:
        dev = f"{TAG}{name}"
        run(["ip", "-n", NS, "link", "add", dev, "type", "veth", "peer", "name", f"{dev}p"])
        run(["ip", "-n", NS, "link", "set", dev, "up"])
        vsctl.add_port(BRIDGE, dev, {"fluidedge-network": NET})


def _chain_flows(ofctl: Ofctl) -> list[str]:
    return sorted(
        re.sub(r"cookie=0x[0-9a-f]+, ", "", line)
        for line in ofctl.dump()
        if "cookie=0xc4a1" in line
    )


def test_chains_in_the_daemon_restart_and_kill9(chain_daemon: DaemonHandle) -> None:
    clients: list[Client] = []
    try:
        _scenario(chain_daemon, clients)
    finally:
        for c in clients:
            c.close()


def _scenario(chain_daemon: DaemonHandle, clients: list[Client]) -> None:
    client = chain_daemon.client()
    clients.append(client)
    vsctl, ofctl = _switch(chain_daemon)
    p = {name: f"{TAG}{name}" for name in PORTS}
    client.post("/v1/chains/port-pairs", {"id": "f1", "ingress": p["f1i"], "egress": p["f1o"]})
    client.post("/v1/chains/port-pairs", {"id": "f2", "ingress": p["f2i"], "egress": p["f2o"]})
    client.post("/v1/chains/port-pair-groups", {"id": "g", "port_pairs": ["f1", "f2"]})
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "c", "logical_source_port": p["va"], "logical_destination_port": p["vb"],
         "protocol": "tcp", "destination_port_range_min": 80},
    )  # fmt: skip
    body = {"id": "web", "port_pair_groups": ["g"], "flow_classifiers": ["c"]}
    chain = client.post("/v1/chains", {**body, "failure_policy": "open"})
    assert chain["chain_id"] == 1
    with pytest.raises(ClientError) as refused:
        client.post("/v1/chains", {"id": "other", "port_pair_groups": ["g"]})
    assert refused.value.status == 409
    assert _chain_flows(ofctl) == []  # none of its ports is on the bridge yet

    _plug(vsctl, PORTS)  # the poll notices the new ports and installs the chain

    def settled() -> list[str]:
        """The table once both members are in and the earlier versions (the poll applied
        the ports as they came) are gone: no failure-policy flow is left."""
        flows = _chain_flows(ofctl)
        both = any("hrw,2," in x for x in flows)
        return flows if both and not any("NXM_NX_REG11" in x for x in flows) else []

    flows = wait_for(settled, 30, "the chain's flows with both members")
    ofport = vsctl.ofport(p["va"])
    assert any(
        f"in_port={ofport}," in f and "tp_dst=80" in f and "priority=300" in f for f in flows
    )

    client.close()
    chain_daemon.restart()
    client = chain_daemon.client()
    clients.append(client)
    assert [c["id"] for c in client.get("/v1/chains")] == ["web"]
    assert wait_for(
        lambda: _chain_flows(ofctl) == flows,
        30,
        lambda: f"the same chain table after a restart: {flows} {_chain_flows(ofctl)}",
    )

    chain_daemon.kill9()
    chain_daemon.start()
    client.close()
    client = chain_daemon.client()
    clients.append(client)
    assert client.get("/v1/chains/port-pair-groups/g")["port_pairs"] == ["f1", "f2"]
    assert wait_for(lambda: _chain_flows(ofctl) == flows, 30, "the same chain table after kill -9")

    # The switch's own vswitchd killed (an OOM kill): the daemon restarts it, and the same
    # table comes back (ofctl fails while it is down: not yet).
    run_dir = Path(chain_daemon.config["state_dir"]) / "instances" / "ovs" / f"ns-{NS}" / "run"
    os.kill(int((run_dir / "ovs-vswitchd.pid").read_text()), signal.SIGKILL)

    def restored() -> bool:
        with contextlib.suppress(OvsError):
            return _chain_flows(ofctl) == flows
        return False

    assert wait_for(restored, 30, "the same chain table after the switch's kill -9")
    assert "ovs-vswitchd of the switch of namespace" in chain_daemon.log()

    # f1's instance goes: its port leaves the bridge; the poll takes it out of the group.
    vsctl.del_port(p["f1i"])
    wait_for(
        lambda: any("hrw,1," in f for f in _chain_flows(ofctl)),
        30,
        lambda: f"the group without f1: {_chain_flows(ofctl)}\n{chain_daemon.log()[-4000:]}",
    )
    vsctl.del_port(p["f2i"])  # the group is empty: the chain is fail-open
    wait_for(
        lambda: any("actions=output:NXM_NX_REG11[0..15]" in f for f in _chain_flows(ofctl)),
        30,
        "the open chain skipping its empty group",
    )
    client.delete("/v1/chains/web")
    assert all("priority=250" in f for f in _chain_flows(ofctl))  # the pairs stay isolated
    client.close()
