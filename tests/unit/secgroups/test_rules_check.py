"""The nftables renderer's check beside applies (:meth:`NftRenderer.check_installed` runs
without the driver's lock): a network with a transaction of ours under way, or done while the
ruleset was being listed, is not judged, so the daemon never reports its own apply as rules
lost from outside. A fake ``Nft`` behind the adapter seam (the real one runs in
tests/functional/secgroups/test_rules_lost.py), driven into the races a thread would hit."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from fluidedge.secgroups.driver import FirewallDriver, NftRenderer
from fluidedge.secgroups.model import Port, SecurityGroup
from fluidedge.secgroups.nft import Binding, Nft

ip = ipaddress.ip_address
EMPTY = json.dumps({"nftables": []})  # what a listing shows once the tables were deleted


class FakeNft(Nft):
    def __init__(self) -> None:
        self.applied: list[str] = []
        self.during_listing: Callable[[], object] | None = None
        self.during_apply: Callable[[], object] | None = None

    def apply(self, netns: str | None, text: str) -> None:
        self.applied.append(text)
        if self.during_apply is not None:
            hook, self.during_apply = self.during_apply, None
            hook()

    def ruleset(self, netns: str | None) -> str:
        if self.during_listing is not None:
            hook, self.during_listing = self.during_listing, None
            hook()
        return EMPTY

    def enable_bridge_conntrack(self, netns: str | None) -> None:
        pass

    def bridge_conntrack_on(self, netns: str | None) -> bool:
        return True


def _driver() -> tuple[FirewallDriver, NftRenderer, FakeNft]:
    nft = FakeNft()
    renderer = NftRenderer(nft=nft)
    driver = FirewallDriver(renderer)
    driver.bind_network(Binding("n", "br-n", "sw"))
    driver.set_group(SecurityGroup(id="web"))
    driver.prepare_port_filter(_port(1))
    return driver, renderer, nft


def _port(n: int) -> Port:
    return Port(
        id=f"p{n}",
        device=f"v{n}",
        network="n",
        zone=10,
        mac=f"02:00:00:00:00:{n:02x}",
        fixed_ips=(ip(f"10.0.0.{n}"),),
        groups=("web",),
    )


def test_tables_gone_from_the_listing_are_lost() -> None:
    driver, _, _ = _driver()
    lost = driver.heal()
    assert set(lost) == {"n"}
    assert "removed from outside" in lost["n"]


def test_an_apply_done_while_the_ruleset_was_listed_is_not_judged() -> None:
    driver, renderer, nft = _driver()
    nft.during_listing = lambda: driver.prepare_port_filter(_port(2))
    assert renderer.check_installed([Binding("n", "br-n", "sw")]) == {}
    assert "removed from outside" in driver.heal()["n"]  # the next check judges it


def test_an_apply_under_way_is_not_judged() -> None:
    driver, renderer, nft = _driver()
    seen: list[dict[str, str]] = []
    nft.during_apply = lambda: seen.append(renderer.check_installed([Binding("n", "br-n", "sw")]))
    driver.prepare_port_filter(_port(2))
    assert seen == [{}]
