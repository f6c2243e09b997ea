"""A logical router between two logical switches, on the 3-member central's lab: instances
on two chassis and two subnets reach each other through it (routed where the packet enters),
it is read back from the NB as it was made, and after its deletion they no longer do."""

from __future__ import annotations

import ipaddress

import pytest

from fluidedge.ovn import routers
from fluidedge.ovn.errors import OvnConflict, OvnNotFound
from tests.fixtures.ovn_lab import OvnLab
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root


def test_a_router_joins_two_networks_across_chassis(ovn: OvnLab) -> None:
    p = ovn.prefix
    net_a, net_b = f"{p}-ra", f"{p}-rb"
    mac_a, mac_b = "02:41:00:00:00:02", "02:42:00:00:00:02"
    ovn.nbctl.transact(
        [
            ["ls-add", net_a], ["ls-add", net_b],
            ["lsp-add", net_a, f"{p}-xa"], ["lsp-set-addresses", f"{p}-xa", mac_a],
            ["lsp-add", net_b, f"{p}-xb"], ["lsp-set-addresses", f"{p}-xb", mac_b],
        ]
    )  # fmt: skip
    a = ovn.instance("xa", 0, f"{p}-xa", mac_a, "10.41.0.2")
    b = ovn.instance("xb", 1, f"{p}-xb", mac_b, "10.42.0.2")
    a.sh("ip", "route", "add", "default", "via", "10.41.0.1")
    b.sh("ip", "route", "add", "default", "via", "10.42.0.1")
    for lsp in (f"{p}-xa", f"{p}-xb"):
        ovn.nbctl.run("wait-until", "Logical_Switch_Port", lsp, "up=true", wait="hv")
    assert not a.ping("10.42.0.2")  # two networks, nothing between them

    made = routers.Router(
        f"{p}-r",
        (
            routers.Leg(net_a, ipaddress.ip_interface("10.41.0.1/24")),
            routers.Leg(net_b, ipaddress.ip_interface("10.42.0.1/24")),
        ),
    )
    routers.create(ovn.nbctl, made)
    assert routers.read(ovn.nbctl) == {made.name: made}
    assert routers.attached(ovn.nbctl, net_a) == [made.name]
    with pytest.raises(OvnConflict):
        routers.create(ovn.nbctl, made)
    assert wait_until(lambda: a.ping("10.42.0.2"), timeout=10)
    # b's first ping resolves its gateway (a's did not make b's ARP entry): may miss once
    assert wait_until(lambda: b.ping("10.41.0.2"), timeout=10)
    assert wait_until(lambda: a.ping("10.42.0.1"), timeout=10)  # the far address answers too

    routers.delete(ovn.nbctl, made.name)
    assert routers.read(ovn.nbctl) == {}
    assert not ovn.nbctl.rows("Logical_Switch_Port", ["name"], "type=router")
    assert not any(a.ping("10.42.0.2") for _ in range(2))
    with pytest.raises(OvnNotFound):
        routers.delete(ovn.nbctl, made.name)
