"""Another daemon's networks in the same namespace: their zones, read from the installed
tables, are seen by a second renderer (a second daemon), which then picks another zone. The
separation that distinct zones give is tests/functional/secgroups/test_traffic_matrix.py's
overlapping-subnets case."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.core.store import Store
from fluidedge.secgroups.driver import FirewallDriver, NftRenderer
from fluidedge.secgroups.model import SecurityGroup
from fluidedge.secgroups.persist import Tables
from fluidedge.secgroups.service import SecgroupService, pick_zone
from tests.fixtures.secgroups_net import SgLab

pytestmark = pytest.mark.root


def test_a_second_daemon_sees_the_first_ones_zone_and_avoids_it() -> None:
    lab = SgLab("linuxbridge")
    try:
        zone = pick_zone(set(), f"{lab.prefix}n1")
        assert zone is not None
        net = lab.network("n1", zone)
        lab.driver.set_group(SecurityGroup("g"))
        lab.host("a", "n1", 1, groups=("g",), udp=(53,))
        other = NftRenderer()  # another daemon: nothing installed by it
        assert zone in other.zones_in_use(net.binding.netns)
        assert pick_zone(other.zones_in_use(net.binding.netns), f"{lab.prefix}n1") != zone
    finally:
        lab.close()


def test_a_starting_daemon_leaves_another_daemons_tables_alone(tmp_path: Path) -> None:
    """Reconciliation at start removes the stale tables of this daemon's networks only."""
    lab = SgLab("linuxbridge")
    try:
        net = lab.network("n1", 4242)
        lab.driver.set_group(SecurityGroup("g"))
        lab.host("a", "n1", 1, groups=("g",), udp=(53,))
        netns = net.binding.netns
        assert "n1" in NftRenderer().installed_networks(netns)

        other = SecgroupService(
            Tables(Store(tmp_path / "other.sqlite")), FirewallDriver(NftRenderer())
        )
        other.load()
        other.restore_ports([], [netns])  # another daemon starts: n1 is not its network
        assert "n1" in NftRenderer().installed_networks(netns)

        owner_tables = Tables(Store(tmp_path / "owner.sqlite"))
        owner_tables.put_zone("n1", 4242)  # the daemon that made n1, now without its ports
        owner = SecgroupService(owner_tables, FirewallDriver(NftRenderer()))
        owner.load()
        owner.restore_ports([], [netns])
        assert "n1" not in NftRenderer().installed_networks(netns)
    finally:
        lab.close()
