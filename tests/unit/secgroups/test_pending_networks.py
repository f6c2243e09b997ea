"""A network whose apply fails (its switch down, its namespace gone: a start after a reboot)
neither stops the other networks' apply nor is forgotten: it stays pending, and the part's
check applies it again (``FirewallDriver.retry_pending``, called by ``heal``) until it holds.

Before, the first failing network ended the apply: the networks after it in order were
neither applied nor kept pending, and nothing but the next change of that very network ever
tried the failing one again."""

from __future__ import annotations

import ipaddress

import pytest

from fluidedge.secgroups.compiler import FilterProgram
from fluidedge.secgroups.driver import FirewallDriver
from fluidedge.secgroups.errors import FilterFailure
from fluidedge.secgroups.model import Port, SecurityGroup
from fluidedge.secgroups.nft import Binding

NETWORKS = ("net-a", "net-b", "net-c")


class Flaky:
    """A renderer whose networks in ``down`` fail; records what it applied."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.applied: list[str] = []

    def apply_network(self, program: FilterProgram, binding: Binding) -> bool:
        if binding.network in self.down:
            raise FilterFailure(f"network {binding.network}: switch down")
        self.applied.append(binding.network)
        return True

    def remove_network(self, binding: Binding) -> None:
        return None

    def zone_netns(self, binding: Binding) -> str | None:
        return None

    def forget_device(self, device: str) -> None:
        return None


def _port(n: int, network: str) -> Port:
    return Port(
        id=f"p{n}",
        device=f"v{n}",
        network=network,
        zone=10 + n,
        mac=f"02:00:00:00:00:{n:02x}",
        fixed_ips=(ipaddress.ip_address(f"10.0.{n}.1"),),
        groups=("web",),
    )


def _driver(renderer: Flaky) -> tuple[FirewallDriver, FilterFailure | None]:
    """Three networks with a port each, applied in one batch; the driver and what it raised."""
    driver = FirewallDriver(renderer)
    try:
        with driver.defer_apply():
            driver.set_group(SecurityGroup(id="web"))
            for n, network in enumerate(NETWORKS):
                driver.bind_network(Binding(network=network, bridge=f"br{n}", netns=None))
                driver.update_port_filter(_port(n, network))
    except FilterFailure as exc:
        return driver, exc
    return driver, None


def test_a_failing_network_does_not_stop_the_others_and_stays_pending() -> None:
    renderer = Flaky()
    renderer.down = {"net-a"}  # first in order
    _, failed = _driver(renderer)
    assert failed is not None
    assert "net-a" in str(failed)
    assert renderer.applied == ["net-b", "net-c"]


def test_the_check_applies_a_pending_network_once_it_can() -> None:
    renderer = Flaky()
    renderer.down = {"net-b"}
    driver, failed = _driver(renderer)
    assert failed is not None
    renderer.applied.clear()
    with pytest.raises(FilterFailure, match="net-b"):  # still down: still said
        driver.heal()
    assert renderer.applied == []  # the others are not rendered again
    renderer.down.clear()
    assert driver.heal() == {}  # nothing was lost from outside
    assert renderer.applied == ["net-b"]
    renderer.applied.clear()
    driver.heal()  # nothing pending any more
    assert renderer.applied == []
