"""Choosing a network's conntrack zone: free on the host, apart for two daemons at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.core.store import Store
from fluidedge.secgroups.driver import FirewallDriver, NftRenderer, zones_set_by
from fluidedge.secgroups.errors import ZonesExhausted
from fluidedge.secgroups.model import ZONE_MAX
from fluidedge.secgroups.persist import Tables
from fluidedge.secgroups.service import ZONE_FIRST, SecgroupService, pick_zone, stale_networks


def test_a_zone_in_use_is_never_picked() -> None:
    first = pick_zone(set(), "fesg-br0")
    assert first is not None
    assert ZONE_FIRST <= first <= ZONE_MAX
    second = pick_zone({first}, "fesg-br0")
    assert second not in (None, first)


def test_two_bridges_start_apart_and_the_search_wraps() -> None:
    picks = {pick_zone(set(), f"br{i}") for i in range(50)}
    assert len(picks) >= 45  # different daemons' bridges rarely meet, even at the same moment
    every = set(range(ZONE_FIRST, ZONE_MAX + 1))
    last = ZONE_MAX
    assert pick_zone(every - {last}, "br0") == last
    assert pick_zone(every - {ZONE_FIRST}, "br0") == ZONE_FIRST
    assert pick_zone(every, "br0") is None


def test_zones_read_from_a_listing() -> None:
    listing = """table inet fesg_n1 {
        chain zpre {
                type filter hook prerouting priority -300; policy accept;
                iifname "fesgbr1" ct zone set 4242
        }
        chain zout {
                type filter hook output priority -300; policy accept;
                oifname "fesgbr1" ct zone set 4242
        }
        chain net {
                ct state established,related,untracked accept
        }
}"""
    assert zones_set_by(listing) == {4242}
    assert zones_set_by("table inet fesg_n2 {\n}") == set()


def test_a_start_removes_only_its_own_stale_tables() -> None:
    present = {"mine-idle", "mine-used", "theirs"}
    mine = {"mine-idle", "mine-used"}.__contains__
    assert stale_networks(present, {"mine-used"}, mine) == {"mine-idle"}
    assert stale_networks(present, set(), lambda n: False) == set()


def test_no_zone_left_is_a_capacity_error(tmp_path: Path) -> None:
    """Every zone taken: the host cannot filter a new network now (503), not a bad request."""
    service = SecgroupService(Tables(Store(tmp_path / "db.sqlite")), FirewallDriver(NftRenderer()))
    service.load()
    service._zones = {f"n{z}": z for z in range(ZONE_FIRST, ZONE_MAX + 1)}
    with pytest.raises(ZonesExhausted, match="every conntrack zone is taken") as caught:
        service._zone("one-more")
    assert caught.value.http_status == 503
