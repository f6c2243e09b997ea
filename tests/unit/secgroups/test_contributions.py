"""What a node adds to remote-group sets shared with other nodes (the compiler's
``contributions``), and which networks the driver re-renders when the rules naming a remote
group change (its members' networks, even with no port here naming the group)."""

from __future__ import annotations

import ipaddress

from fluidedge.secgroups.compiler import FilterProgram, GroupMembers, compile_program
from fluidedge.secgroups.driver import FirewallDriver
from fluidedge.secgroups.model import Port, Rule, SecurityGroup
from fluidedge.secgroups.nft import Binding

ip = ipaddress.ip_address


def _port(pid: str, n: int, groups: tuple[str, ...], net: str = "net-a") -> Port:
    return Port(
        id=pid,
        device=f"v{pid}",
        network=net,
        zone=10 if net == "net-a" else 11,
        mac=f"02:00:00:00:00:{n:02x}",
        fixed_ips=(ip(f"10.0.0.{n}"), ip(f"fd00::{n:x}")),
        groups=groups,
    )


PING_FROM_WEB = Rule(id="ping", direction="ingress", protocol=1, remote_group="web")
DB = SecurityGroup(id="db", rules=(PING_FROM_WEB,))
WEB = SecurityGroup(id="web")


def test_members_of_a_group_named_as_a_remote_anywhere_are_contributed() -> None:
    # no port here is in db (the group whose rule names web): web's members still count
    program = compile_program(
        [_port("w", 1, ("web",)), _port("x", 2, ("web",), "net-b")], [DB, WEB]
    )
    assert program.address_sets == ()  # no clause here names a set
    assert program.contributions == (
        GroupMembers("web", "net-a", "IPv4", (ipaddress.ip_network("10.0.0.1/32"),)),
        GroupMembers("web", "net-b", "IPv4", (ipaddress.ip_network("10.0.0.2/32"),)),
    )  # IPv4 only: the rule is IPv4's


def test_a_group_no_rule_names_contributes_nothing() -> None:
    program = compile_program([_port("w", 1, ("web",))], [WEB])
    assert program.contributions == ()


class Recorder:
    """A renderer that records which networks each apply rendered."""

    def __init__(self) -> None:
        self.applied: list[str] = []

    def apply_network(self, program: FilterProgram, binding: Binding) -> bool:
        self.applied.append(binding.network)
        return True

    def remove_network(self, binding: Binding) -> None:
        return None

    def zone_netns(self, binding: Binding) -> str | None:
        return None

    def forget_device(self, device: str) -> None:
        return None


def test_a_rule_naming_a_remote_re_renders_the_remotes_members_networks() -> None:
    recorder = Recorder()
    driver = FirewallDriver(recorder)
    with driver.defer_apply():
        driver.set_group(WEB)
        driver.set_group(SecurityGroup(id="db"))
        for net in ("net-a", "net-b"):
            driver.bind_network(Binding(network=net, bridge=f"br-{net}", netns=None))
        driver.update_port_filter(_port("w", 1, ("web",)))  # web's member on net-a only
    recorder.applied.clear()
    # db (no port here) now names web: net-a (web's member there) is rendered again
    driver.set_group(DB)
    assert recorder.applied == ["net-a"]
    assert driver.program is not None
    assert [c.network for c in driver.program.contributions] == ["net-a"]
    # and again when the reference goes, so the node withdraws its part
    recorder.applied.clear()
    driver.set_group(SecurityGroup(id="db"))
    assert recorder.applied == ["net-a"]
    assert driver.program.contributions == ()
