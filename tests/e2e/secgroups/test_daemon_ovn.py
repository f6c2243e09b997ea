"""Security groups on an ``ovn`` instance network inside a real daemon: a node configured
with OVN databases (a central of the test's own) starts its chassis, its instances become
logical ports, and the same REST API filters them through OVN ACLs and port groups in the
northbound database; a rule removal takes effect."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fluidedge.ovn.chassis import Chassis
from fluidedge.secgroups.ovn_render import pg_names
from tests.e2e.secgroups.scenario import get, web_and_clients
from tests.fixtures.daemon import DaemonHandle, purge_instances_state
from tests.fixtures.ovn_lab import OvnLab

pytestmark = pytest.mark.root

NET = f"sn{os.getpid() % 100000}"
SUBNET = "198.18.44"


@pytest.fixture
def ovn_daemon(
    daemon_factory: Callable[..., DaemonHandle],
) -> Iterator[tuple[DaemonHandle, OvnLab]]:
    lab = OvnLab(chassis_count=0)
    try:
        ns, encap = lab.add_host(0)
        ovn = {
            "nb": lab.central.nb_remote,
            "sb": lab.central.sb_remote,
            "chassis": f"{lab.prefix}-node",
            "encap": encap,
            "underlay": "ul0",
            "netns": ns,
        }
        handle = daemon_factory(
            parts={
                "instances": {
                    "pool_scale": 1,
                    "memory_mb": 2048,
                    "ovn": ovn,
                    "networks": {
                        NET: {
                            "bridge": NET,
                            "netns": ns,
                            "subnet": f"{SUBNET}.0/24",
                            "driver": "ovn",
                        }
                    },
                },
                "secgroups": {},
            }
        )
        try:
            yield handle, lab
        finally:
            handle.stop()
            state = Path(handle.config["state_dir"])
            try:
                # deletes the ovn network, which stops the node's chassis
                purge_instances_state(state, ovn=ovn)
            finally:  # and if that failed, the chassis goes anyway
                root = state / "instances" / "ovn" / "chassis"
                Chassis(root, f"{lab.prefix}-node", "unix:/-", encap, netns=ns).destroy()
    finally:
        lab.close()


def test_ovn_network_filtered_through_the_api(ovn_daemon: tuple[DaemonHandle, OvnLab]) -> None:
    handle, lab = ovn_daemon
    client = handle.client()
    assert client.get(f"/v1/networks/{NET}")["driver"] == "ovn"
    scene = web_and_clients(client, NET, SUBNET, "sn")  # c1 gets the page, c2 does not
    app_ip, c1 = scene.app_ip, scene.c1
    groups = lab.nbctl.run("--bare", "--columns=name", "list", "Port_Group").split()
    # the node's own rows: named and tagged after its chassis
    assert pg_names(NET, f"{lab.prefix}-node")["drop"] in groups
    tagged = lab.nbctl.rows(
        "Port_Group", ["name"], f'external_ids:fluidedge-node="{lab.prefix}-node"'
    )
    assert {r["name"] for r in tagged} == set(groups)
    acls = lab.nbctl.run("--bare", "--columns=action", "list", "ACL").split()
    assert "allow-related" in acls
    client.delete("/v1/security-groups/web/rules/http")
    assert get(c1["pid"], app_ip) == ""
    for name in ("app", "c1", "c2"):
        client.delete(f"/v1/instances/{name}")
    client.close()
