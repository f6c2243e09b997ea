"""The apps-side policy (pure): what the TOF sets up or refuses with, item by item."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from fluidedge.tof import apps_side
from fluidedge.tof.apps_side import Observed, plan
from fluidedge.tof.config import TofConfig
from fluidedge.tof.errors import DataPlaneError

READY = Observed(True, True, True, True, frozenset({"198.19.0.1/24"}))


def cfg(**kw: object) -> TofConfig:
    return TofConfig(backend="none", **kw)  # type: ignore[arg-type]


def test_ready_needs_nothing() -> None:
    p = plan(cfg(apps_interface="apps0", apps_gateway="198.19.0.1/24"), READY)
    assert (p.commands, p.missing, p.fatal) == ((), (), ())


def test_every_missing_item_is_named_with_its_fix() -> None:
    found = Observed(False, False, True, False, frozenset())
    config = cfg(
        apps_interface="apps0",
        apps_gateway="198.19.0.1/24",
        ue_pools=["198.18.100.0/24", "fd00::/64"],
    )
    p = plan(config, found)
    assert p.commands == (
        ("sysctl", "-qw", "net.ipv4.ip_forward=1"),
        ("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"),
        ("ip", "link", "set", "apps0", "up"),
        ("ip", "addr", "add", "198.19.0.1/24", "dev", "apps0"),
    )
    assert p.missing == (
        "net.ipv4.ip_forward is 0 in the root namespace (fix: sysctl -w net.ipv4.ip_forward=1)",
        "net.ipv6.conf.all.forwarding is 0 in the root namespace "
        "(fix: sysctl -w net.ipv6.conf.all.forwarding=1)",
        "apps interface apps0 is down (fix: ip link set apps0 up)",
        "apps interface apps0 lacks the gateway address 198.19.0.1/24 "
        "(fix: ip addr add 198.19.0.1/24 dev apps0)",
    )


def test_ipv6_forwarding_only_for_ipv6_pools_and_missing_interface_is_fatal() -> None:
    p = plan(cfg(apps_interface="nope", netns="lab-host"), Observed(True, False))
    assert p.commands == ()
    assert p.fatal == ("apps interface nope does not exist in namespace lab-host",)


def test_mode_defaults() -> None:
    assert apps_side.mode(cfg()) == "check"
    assert apps_side.mode(cfg(netns="x")) == "auto"
    assert apps_side.mode(cfg(netns="x", apps_setup="check")) == "check"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="apps_gateway needs apps_interface"):
        cfg(apps_gateway="198.19.0.1/24")
    with pytest.raises(ValueError, match="prefix length"):
        cfg(apps_interface="apps0", apps_gateway="198.19.0.1")


class FakeHost:
    """A runner answering sysctl/ip like the kernel would (the functional test runs the real
    commands through the same seam)."""

    def __init__(self, forwarding: bool, addresses: list[str], up: bool = True) -> None:
        self.forwarding = forwarding
        self.addresses = addresses
        self.up = up
        self.ran: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.ran.append(tuple(argv))
        if argv[:2] == ["sysctl", "-n"]:
            return "1\n" if self.forwarding else "0\n"
        if argv[:3] == ["ip", "-j", "addr"]:
            info = [
                {"local": a.split("/")[0], "prefixlen": int(a.split("/")[1])}
                for a in self.addresses
            ]
            flags = ["BROADCAST", "UP"] if self.up else ["BROADCAST"]
            return json.dumps([{"ifname": argv[-1], "flags": flags, "addr_info": info}])
        return ""


def test_prepare_check_refuses_with_the_list() -> None:
    host = FakeHost(False, [])
    config = cfg(apps_interface="apps0", apps_gateway="198.19.0.1/24")
    with pytest.raises(DataPlaneError) as info:
        apps_side.prepare(config, host)
    text = str(info.value)
    assert "net.ipv4.ip_forward is 0" in text
    assert "lacks the gateway address 198.19.0.1/24" in text
    assert "apps_setup" in text
    assert not [argv for argv in host.ran if argv[0] == "sysctl" and argv[1] == "-qw"]


def test_prepare_auto_runs_the_fixes() -> None:
    host = FakeHost(False, ["10.0.0.1/8"])
    config = cfg(apps_interface="apps0", apps_gateway="198.19.0.1/24", apps_setup="auto")
    done = apps_side.prepare(config, host)
    assert ("sysctl", "-qw", "net.ipv4.ip_forward=1") in host.ran
    assert ("ip", "addr", "add", "198.19.0.1/24", "dev", "apps0") in host.ran
    assert len(done.missing) == 2


def test_an_ovn_apps_network_needs_the_interface_to_plug() -> None:
    with pytest.raises(ValueError, match="apps_ovn_network needs apps_interface"):
        TofConfig(apps_ovn_network="apps")
    with pytest.raises(ValueError, match="apps_ovn_network"):
        TofConfig(apps_interface="apps0", apps_ovn_network="Bad;name")
    config = TofConfig(apps_interface="apps0", apps_ovn_network="apps")
    assert config.apps_ovn_network == "apps"
