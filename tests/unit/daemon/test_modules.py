"""The kernel modules the unit loads before the daemon: what the config asks, nothing more."""

from __future__ import annotations

from collections.abc import Sequence

from fluidedge.core.config import parse_config
from fluidedge.daemon.modules import load, needed
from fluidedge.linux.proc import CommandError


def test_a_config_without_those_parts_loads_nothing() -> None:
    assert needed(parse_config({})) == []
    assert needed(parse_config({"instances": {}, "tof": {"backend": "none"}})) == []


def test_security_groups_need_br_netfilter_and_a_kernel_datapath_openvswitch() -> None:
    assert needed(parse_config({"secgroups": {}})) == ["br_netfilter"]
    for datapath in ("system", "auto"):
        config = parse_config({"instances": {"ovs_datapath": datapath}, "secgroups": {}})
        assert needed(config) == ["br_netfilter", "openvswitch"]
    assert needed(parse_config({"instances": {"ovs_datapath": "netdev"}})) == []


def test_every_module_is_tried_and_the_failures_say_why() -> None:
    tried: list[list[str]] = []

    def modprobe(argv: Sequence[str]) -> None:
        tried.append(list(argv))
        if argv[-1] == "br_netfilter":
            raise CommandError(argv, 1, "modprobe: FATAL: Module br_netfilter not found\n")

    failed = load(["br_netfilter", "openvswitch"], modprobe)
    assert tried == [["modprobe", "-q", "br_netfilter"], ["modprobe", "-q", "openvswitch"]]
    assert failed == {"br_netfilter": "modprobe: FATAL: Module br_netfilter not found"}
