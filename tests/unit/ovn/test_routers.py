"""Logical routers' rows (pure): names that never meet an instance's port, stable MACs, one
transaction to make and to remove, validation at the boundary."""

from __future__ import annotations

import ipaddress

import pytest

from fluidedge.ovn import routers
from fluidedge.ovn.errors import OvnInvalid

iface = ipaddress.ip_interface
R = routers.Router(
    "r1",
    (routers.Leg("net-a", iface("10.1.0.1/24")), routers.Leg("net-b", iface("fd00:2::1/64"))),
)


def test_port_names_have_no_dot_and_are_distinct_per_router_and_network() -> None:
    names = {
        f(r, n)
        for f in (routers.lrp_name, routers.lsp_name)
        for r in ("r1", "r1-net")
        for n in ("net", "a-net")
    }
    assert len(names) == 8
    assert not any("." in n for n in names)  # an instance's port is <chassis>.<ifname>


def test_the_mac_is_stable_locally_administered_and_unicast() -> None:
    mac = routers.port_mac("r1", "net-a")
    assert mac == routers.port_mac("r1", "net-a")
    assert mac != routers.port_mac("r1", "net-b")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02
    assert not first & 0x01


def test_one_transaction_makes_the_router_and_its_switch_ports() -> None:
    commands = routers.create_commands(R)
    assert commands[0] == ["lr-add", "fe_r_r1"]  # no --may-exist: an existing one fails it
    lrp = routers.lrp_name("r1", "net-a")
    lsp = routers.lsp_name("r1", "net-a")
    assert ["lrp-add", "fe_r_r1", lrp, routers.port_mac("r1", "net-a"), "10.1.0.1/24"] in commands
    assert ["lsp-add", "net-a", lsp] in commands
    assert ["lsp-set-type", lsp, "router"] in commands
    assert ["lsp-set-options", lsp, f"router-port={lrp}"] in commands
    assert ["lrp-add", "fe_r_r1", routers.lrp_name("r1", "net-b"),
            routers.port_mac("r1", "net-b"), "fd00:2::1/64"] in commands  # fmt: skip
    removal = routers.delete_commands(R)
    assert removal[-1] == ["--if-exists", "lr-del", "fe_r_r1"]
    assert ["--if-exists", "lsp-del", lsp] in removal


@pytest.mark.parametrize(
    ("name", "legs", "message"),
    [
        ("R1", (routers.Leg("net-a", iface("10.1.0.1/24")),), "invalid router name"),
        ("r1", (), "1 to 16 networks"),
        ("r1", (routers.Leg("net-a", iface("10.1.0.1/32")),), "prefix length"),
        (
            "r1",
            (
                routers.Leg("net-a", iface("10.1.0.1/24")),
                routers.Leg("net-a", iface("10.2.0.1/24")),
            ),
            "appears twice",
        ),
        ("r1", (routers.Leg("net_a", iface("10.1.0.1/24")),), "invalid network name"),
    ],
)
def test_bad_routers_are_refused_with_the_reason(
    name: str, legs: tuple[routers.Leg, ...], message: str
) -> None:
    with pytest.raises(OvnInvalid, match=message):
        routers.Router(name, legs)


def test_the_view_names_each_address_and_mac() -> None:
    view = R.to_json()
    assert view["name"] == "r1"
    assert view["interfaces"] == [
        {"network": "net-a", "address": "10.1.0.1/24", "mac": routers.port_mac("r1", "net-a")},
        {"network": "net-b", "address": "fd00:2::1/64", "mac": routers.port_mac("r1", "net-b")},
    ]


def test_any_instance_networks_name_may_be_joined() -> None:
    """Network names are the instance networks' (up to 32 characters), not the routers'."""
    longest = "n" * 32
    leg = routers.Leg(longest, iface("10.1.0.1/24"))
    assert routers.Router("r1", (leg,)).legs == (leg,)
    with pytest.raises(OvnInvalid, match="invalid network name"):
        routers.Router("r1", (routers.Leg("n" * 33, iface("10.1.0.1/24")),))
    with pytest.raises(OvnInvalid, match="invalid router name"):
        routers.Router("r" * 32, (leg,))
