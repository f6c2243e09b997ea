"""Another daemon's networks in the same namespace: their zones, read from the installed
tables, are seen by a second renderer (a second daemon), which then picks another zone. The
separation that distinct zones give is tests/functional/secgroups/test_traffic_matrix.py's
overlapping-subnets case."""

from __future__ import annotations

import pytest

from fluidedge.secgroups.driver import NftRenderer
from fluidedge.secgroups.model import SecurityGroup
from fluidedge.secgroups.service import pick_zone
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
