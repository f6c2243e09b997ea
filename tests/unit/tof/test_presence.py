"""What the TOF's data plane waits for (fluidedge.tof.presence.missing: pure), and what it
serves meanwhile (fluidedge.tof.waiting.WaitingPlane)."""

from __future__ import annotations

from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service
from fluidedge.tof.presence import interfaces, missing
from fluidedge.tof.waiting import WaitingPlane


def _config(**fields: object) -> TofConfig:
    return TofConfig(**{"backend": "userspace", **fields})  # type: ignore[arg-type]


def test_the_namespace_comes_before_its_interfaces() -> None:
    config = _config(netns="op")
    assert missing(config, False, ()) == "network namespace 'op' does not exist"
    assert missing(config, True, ()) == "interfaces s1enb, s1sgw are not in namespace op"
    assert missing(config, True, {"s1enb"}) == "interface s1sgw is not in namespace op"
    assert missing(config, True, {"s1enb", "s1sgw", "lo"}) is None


def test_on_the_host_the_namespace_is_not_looked_at() -> None:
    config = _config(enb_interface="eth1", sgw_interface="eth2")
    assert missing(config, False, {"eth1", "eth2"}) is None
    assert missing(config, False, {"eth1"}) == "interface eth2 is not in the host's namespace"


def test_which_interfaces_are_needed() -> None:
    assert interfaces(_config()) == ("s1enb", "s1sgw")
    single = _config(
        s1_interface="s1",
        enb_interface=None,
        sgw_interface=None,
        enb_addresses=["10.0.0.1"],
        sgw_addresses=["10.0.1.1"],
        backend="fastpath",
    )
    assert interfaces(single) == ("s1",)
    # The apps network's interface is the operator's; an OVN one is made by the plug, and
    # the apps TUN is the data plane's own.
    assert interfaces(_config(apps_interface="apps0")) == ("s1enb", "s1sgw", "apps0")
    ovn = _config(apps_interface="apps0", apps_ovn_network="apps")
    assert interfaces(ovn) == ("s1enb", "s1sgw")


def test_a_backend_without_ports_waits_for_nothing() -> None:
    config = TofConfig(backend="none", netns="gone")
    assert interfaces(config) == ()
    assert missing(config, False, ()) is None


def test_the_waiting_plane_holds_the_services_and_says_why() -> None:
    reason = ["network namespace 'op' does not exist"]
    plane = WaitingPlane("userspace", _config(), lambda: reason[0])
    plane.apply({"web": Service("web", "198.18.50.1", "198.19.0.10")})
    stats = plane.stats()
    assert stats["dataplane"] == "waiting: network namespace 'op' does not exist"
    assert list(stats["services"]) == ["web"]  # type: ignore[call-overload]
    assert stats["bearers"] == 0
    assert (plane.tunnels(), plane.events(), plane.purge()) == ([], [], 0)
    reason[0] = "interface s1sgw is not in namespace op"
    assert plane.stats()["dataplane"] == "waiting: interface s1sgw is not in namespace op"
