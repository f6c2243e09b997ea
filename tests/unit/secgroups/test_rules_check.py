"""The renderers' checks beside applies (:meth:`NftRenderer.check_installed` runs
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


def test_content_seen_while_an_apply_began_is_not_learnt() -> None:
    """The digest is learnt at the first settled check after an apply. If an apply of ours
    begins between the check's settled look and its learning, the listing is the one before
    that apply: learnt, the apply's own content would be reported at the next check as
    changed from outside (an error and a whole re-install for nothing)."""
    from fluidedge.secgroups.nft import Table

    renderer = NftRenderer(nft=FakeNft())
    tables = (Table("bridge", "b", {}, {}), Table("inet", "i", {}, {}))
    old = {("bridge", "b"): "b1", ("inet", "i"): "i1"}
    new = {("bridge", "b"): "b1", ("inet", "i"): "i2"}
    before = renderer._applies.seen("n")
    with renderer._applies.under_way("n"):  # began after the look: the listing is not its
        assert renderer._contents_changed("n", tables, old, before) == []
    assert renderer._contents_changed("n", tables, new, renderer._applies.seen("n")) == []
    assert renderer._contents_changed("n", tables, new, renderer._applies.seen("n")) == []
    assert renderer._contents_changed("n", tables, old, renderer._applies.seen("n")) == [
        "table inet i changed from outside (a rule or a set's elements replaced)"
    ]


def test_flows_seen_while_an_apply_began_are_not_learnt() -> None:
    """The same for the Open vSwitch renderer's digest of its flows."""
    from fluidedge.secgroups.ovs_driver import OvsRenderer

    renderer = OvsRenderer(lambda _netns: None)  # type: ignore[arg-type,return-value]
    renderer._counts["br"] = 2
    old, new = ["a actions=drop", "b actions=drop"], ["a actions=drop", "b actions=NORMAL"]
    before = renderer._applies.seen("br")
    with renderer._applies.under_way("br"):
        assert renderer._changed("br", old, before) is None
    assert renderer._changed("br", new, renderer._applies.seen("br")) is None
    assert renderer._changed("br", new, renderer._applies.seen("br")) is None
    why = renderer._changed("br", old, renderer._applies.seen("br"))
    assert why is not None
    assert why.startswith("flows of ours on bridge br changed from outside")


def test_the_ovn_check_asks_no_nb_when_nothing_was_applied_to_it() -> None:
    """A daemon without OVN (its node name and NB unavailable) runs the OVN renderer's check
    too, with no OVN network: it must not ask them (it failed every check, and the Linux
    bridges' check never ran)."""
    from fluidedge.ovn.errors import OvnUnavailable
    from fluidedge.secgroups.ovn_driver import OvnRenderer, OvnSplit

    def unavailable() -> str:
        raise OvnUnavailable("ovn: this node has no OVN configuration (instances.ovn)")

    _, nft_renderer, _nft = _driver()
    split = OvnSplit(
        nft_renderer,
        OvnRenderer(unavailable, node=unavailable),  # type: ignore[arg-type]
        is_ovn=lambda b: b.bridge.startswith("ovn"),
    )
    lost = split.check_installed([Binding("n", "br-n", "sw")])
    assert set(lost) == {"n"}  # the Linux bridge's check ran: its tables are gone
    assert split.ovn.check_installed([Binding("o", "ovn-o", None)]) == {}
