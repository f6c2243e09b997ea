"""The osmo flavour's description and plan (pure): what it accepts, what it builds."""

from __future__ import annotations

import pytest

from fluidedge.lab.config import load, loads, osmo_text, with_overrides
from fluidedge.lab.errors import LabConfigError
from fluidedge.lab.osmo import ggsn_config, sgsnemu_argv
from fluidedge.lab.topology import Topology, imsi


def test_embedded_osmo_description() -> None:
    cfg = load(flavour="osmo")
    assert cfg.lab.flavour == "osmo"
    assert [s.name for s in cfg.sgw] == ["ggsn"]
    assert [(u.name, u.enb) for u in cfg.ue] == [(f"ue{n}", f"sgsn{n}") for n in range(1, 5)]
    assert load().lab.flavour == "emulated"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('enb = "sgsn2"', 'enb = "sgsn1"', "exactly one ue"),
        ('name = "ue1"\naddress = "198.18.100.1"', 'name = "ue1"\naddress = "198.18.100.1"\n'
         "dl_teid = 7", "dl_teid cannot be set"),
        ('[ue_pool]', '[ue_pool]\nsubnet6 = "2001:db8:100::/64"', "subnet6"),
        ('[[enb]]\nname = "sgsn1"', '[[mme]]\nname = "mme1"\naddress = "198.18.0.31"\n\n'
         '[[enb]]\nname = "sgsn1"', "no mme"),
    ],
)  # fmt: skip
def test_osmo_refuses_what_a_real_stack_cannot_be(old: str, new: str, reason: str) -> None:
    text = osmo_text()
    assert old in text
    with pytest.raises(LabConfigError, match=reason):
        loads(text.replace(old, new, 1))


def test_plan_stages_ggsn_then_each_ue_and_routes_the_pool() -> None:
    cfg = load(flavour="osmo")
    plan = Topology(cfg, "px").plan("python3", "/run/x")
    stages = {p.name: p.stage for p in plan.processes}
    assert stages == {
        "pdn": 0,
        "ggsn": 0,
        "app1": 0,
        "sgsn1": 1,
        "sgsn2": 2,
        "sgsn3": 3,
        "sgsn4": 4,
    }
    assert "route add 198.18.100.0/24 via 198.18.200.1" in plan.configure["px-pdn"]
    assert {"px-ggsn", "px-sgsn1", "px-ue1", "px-ue4"} <= set(plan.namespaces)
    assert plan.finish == {}  # bridge mode: nothing to cut
    tof = Topology(with_overrides(cfg, mode="tof"), "px").plan("python3", "/run/x")
    assert tof.finish == {"px-host": ["link del dev br0"]}  # attach first, then leave S1 cut


def test_every_attach_has_its_own_imsi_and_the_ggsn_sends_no_echo() -> None:
    assert imsi(1, 0) != imsi(1, 1) != imsi(2, 0)
    assert all(len(imsi(n, a)) == 15 for n in (1, 99) for a in (0, 123456))
    spec = {"state_dir": "/s", "address": "198.18.0.21", "tun": "tun4", "pool": "198.18.100.0/24",
            "dns": "198.18.200.10"}  # fmt: skip
    text = ggsn_config(spec)
    assert "gtp bind-ip 198.18.0.21" in text
    assert "echo-interval" not in text
    argv = sgsnemu_argv({"state_dir": "/s", "address": "198.18.0.11", "ggsn": "198.18.0.21",
                         "imsi": imsi(1, 2), "tun": "tun0", "ue_netns": "px-ue1"})  # fmt: skip
    assert "--norecovery" in argv
    assert argv[argv.index("--netns") + 1] == "px-ue1"
