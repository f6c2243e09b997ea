"""The OpenFlow renderer (pure): table layout, registers, conjunctions, port masks, diffs."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fluidedge.chains import compiler as chains
from fluidedge.ovs.flows import Flow
from fluidedge.secgroups import ovs_render
from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.conntrack import Conntrack, Entry
from fluidedge.secgroups.model import Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.nft import Binding
from fluidedge.secgroups.ovs_driver import OvsRenderer, SplitRenderer, flush_tuple, parse_conntrack
from fluidedge.secgroups.ovs_render import COOKIE, diff, port_masks, render
from fluidedge.secgroups.verdict import admits_new, owner_of

ip = ipaddress.ip_address


def _port(pid: str, n: int, groups: tuple[str, ...] = ("default",), **kw: Any) -> Port:
    base: dict[str, Any] = {
        "id": pid,
        "device": f"v{pid}",
        "network": "net-a",
        "zone": 10,
        "mac": f"02:00:00:00:00:{n:02x}",
        "fixed_ips": (ip(f"10.0.0.{n}"), ip(f"fd00::{n:x}")),
        "groups": groups,
    }
    base.update(kw)
    return Port(**base)


def _in_range(mask_text: str, port: int) -> bool:
    if "/" in mask_text:
        value, mask = (int(x, 16) for x in mask_text.split("/"))
        return port & mask == value
    return port == int(mask_text)


@given(st.integers(1, 65535), st.integers(1, 65535))
def test_port_masks_cover_exactly_the_range(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    masks = port_masks(low, high)
    if (low, high) == (1, 65535):
        assert masks == []
        return
    # At most two blocks per bit of the range's size.
    assert len(masks) <= 32
    probes = {low, high, low - 1, high + 1, (low + high) // 2, 0, 65535}
    for port in probes:
        if 0 <= port <= 65535:
            covered = sum(_in_range(m, port) for m in masks)
            assert covered == (1 if low <= port <= high else 0), (low, high, port, masks)


def test_port_masks_small_examples() -> None:
    assert port_masks(80, 80) == ["80"]
    assert port_masks(8080, 8087) == ["0x1f90/0xfff8"]
    assert port_masks(1024, 65535) == [
        "0x0400/0xfc00",
        "0x0800/0xf800",
        "0x1000/0xf000",
        "0x2000/0xe000",
        "0x4000/0xc000",
        "0x8000/0x8000",
    ]


def _flows(ports: list[Port], groups: list[SecurityGroup], ofports: dict[str, int]) -> list[Flow]:
    return render(compile_program(ports, groups), ofports)


def test_classifier_sets_port_and_zone_registers_and_tables_are_neutrons() -> None:
    flows = _flows([_port("a", 1), _port("b", 2)], [default_group()], {"va": 3, "vb": 4})
    by_key = {f.key: f for f in flows}
    egress = by_key[(0, 400, "reg13=0,in_port=3")]
    assert egress.actions == "set_field:3->reg5,set_field:10->reg6,resubmit(,71)"
    ingress = by_key[(60, 90, "dl_dst=02:00:00:00:00:02")]
    assert ingress.actions == "set_field:4->reg5,set_field:10->reg6,resubmit(,81)"
    assert {f.table for f in flows} == set(ovs_render.TABLES)
    # Every conntrack action is in the network's zone, taken from register 6.
    for f in flows:
        if "ct(" in f.actions:
            assert "zone=NXM_NX_REG6[0..15]" in f.actions, f
    # Every per-port flow of tables 71/72/81/82 is scoped to a port by register 5.
    for f in flows:
        if f.table in (71, 72, 81, 82) and f.priority > 0 and not f.match.startswith("conj_id"):
            assert f.match.startswith(("reg5=3", "reg5=4")), f
    assert all(f.text(COOKIE).startswith("cookie=0x5e5e,") for f in flows)
    # Accepted packets come back to table 0 (reg13) for a chain's steering, then delivery.
    assert by_key[(0, 200, "reg13=1")].actions == "output:NXM_NX_REG5[0..15]"
    assert by_key[(0, 200, "reg13=2")].actions == "NORMAL"
    assert by_key[(94, 0, "")].actions == "set_field:2->reg13,resubmit(,0)"


def test_remote_group_is_a_conjunction_over_members() -> None:
    ports = [_port("a", 1), _port("b", 2), _port("c", 3, groups=("other",))]
    groups = [default_group(), SecurityGroup(id="other")]
    flows = _flows(ports, groups, {"va": 1, "vb": 2, "vc": 3})
    members = [f for f in flows if f.table == 82 and "nw_src=" in f.match and "reg5=1" in f.match]
    # a's ingress admits the default group's members a and b, not c.
    assert sorted(f.match.split("nw_src=")[1] for f in members) == ["10.0.0.1", "10.0.0.2"]
    assert all(f.actions.startswith("conjunction(") and "1/2" in f.actions for f in members)
    ids = {a.split("(")[1].split(",")[0] for f in members for a in f.actions.split("),")}
    accepts = [f for f in flows if f.match.startswith("conj_id=")]
    accept_ids = {f.match.split(",")[0].split("=")[1] for f in accepts}
    assert ids <= accept_ids
    # The new-connection accept of a conjunction commits and outputs (ingress).
    assert any(
        f.actions == "ct(commit,zone=NXM_NX_REG6[0..15]),set_field:1->reg13,resubmit(,0)"
        for f in accepts
    )


def test_port_range_rule_uses_masks_and_remote_prefix() -> None:
    rule = Rule(
        id="r",
        direction="ingress",
        protocol=6,
        port_range_min=8080,
        port_range_max=8090,
        remote_ip_prefix=ipaddress.ip_network("192.0.2.0/24"),
    )
    flows = _flows(
        [_port("a", 1, groups=("g",))], [SecurityGroup(id="g", rules=(rule,))], {"va": 7}
    )
    clause = [f for f in flows if f.table == 82 and f.priority == ovs_render.P_CLAUSE]
    new = sorted(f.match for f in clause if "+new-est" in f.match)
    assert new == [
        "reg5=7,ct_state=+new-est,tcp,tp_dst=0x1f90/0xfff8,nw_src=192.0.2.0/24",
        "reg5=7,ct_state=+new-est,tcp,tp_dst=0x1f98/0xfffe,nw_src=192.0.2.0/24",
        "reg5=7,ct_state=+new-est,tcp,tp_dst=8090,nw_src=192.0.2.0/24",
    ]


def test_port_security_flows_and_unfiltered_port() -> None:
    a = _port("a", 1)
    free = _port("f", 9, groups=(), port_security=False)
    flows = _flows([a, free], [default_group()], {"va": 1, "vf": 2})
    keys = {f.key for f in flows}
    assert (71, 65, "reg5=1,ip,dl_src=02:00:00:00:00:01,nw_src=10.0.0.1") in keys
    assert (
        71,
        94,
        "reg5=1,arp,dl_src=02:00:00:00:00:01,arp_sha=02:00:00:00:00:01,arp_spa=10.0.0.1",
    ) in keys
    # DHCP server replies and RAs from the port drop by default.
    drops = [f for f in flows if f.table == 71 and f.actions == "resubmit(,93)"]
    assert any("tp_src=67" in f.match for f in drops)
    assert any("icmp_type=134" in f.match for f in drops)
    # The unfiltered port skips egress filtering and is nobody's ingress target.
    by_key = {f.key: f for f in flows}
    assert by_key[(0, 400, "reg13=0,in_port=2")].actions.endswith("resubmit(,73)")
    assert not any("reg5=2" in f.match for f in flows)
    assert ovs_render.flows_per_port(flows, 2) == 1


def test_ports_on_other_bridges_are_left_out() -> None:
    flows = _flows([_port("a", 1), _port("b", 2)], [default_group()], {"va": 1})
    assert not any("reg5=2" in f.match or "in_port=2" in f.match for f in flows)
    assert not any("10.0.0.2" in f.match and f.table in (71,) for f in flows)


def test_diff_is_minimal_and_applies_back() -> None:
    groups = [default_group()]
    old = _flows([_port("a", 1), _port("b", 2)], groups, {"va": 1, "vb": 2})
    new = _flows([_port("a", 1), _port("b", 2), _port("c", 3)], groups, {"va": 1, "vb": 2, "vc": 3})
    mods = diff(old, new)
    assert mods
    assert diff(new, new) == []
    # Applying the mods to the old table (as a switch would) yields the new one.
    table = {f.key: f for f in old}
    for mod in mods:
        command, _, text = mod.partition(" ")
        if command == "delete_strict":
            match = next(k for k in table if table[k].spec() == text)
            del table[match]
        else:
            flow = next(f for f in new if f.text(COOKIE) == text)
            table[flow.key] = flow
    assert sorted(table.values(), key=lambda f: f.key) == new
    # Removing c deletes its flows strictly, and only those.
    back = diff(new, old)
    assert all(m.startswith(("delete_strict", "add")) for m in back)
    assert any("reg5=3" in m for m in back if m.startswith("delete_strict"))


def test_flows_per_port_for_a_typical_group() -> None:
    web = SecurityGroup(
        id="web",
        rules=(
            Rule(id="http", direction="ingress", protocol=6, port_range_min=80, port_range_max=80),
            Rule(
                id="https", direction="ingress", protocol=6, port_range_min=443, port_range_max=443
            ),
            Rule(
                id="ssh",
                direction="ingress",
                protocol=6,
                port_range_min=22,
                port_range_max=22,
                remote_ip_prefix=ipaddress.ip_network("192.0.2.0/24"),
            ),
            Rule(id="out4", direction="egress"),
            Rule(id="out6", direction="egress", ethertype="IPv6"),
        ),
    )
    flows = _flows([_port("a", 1, groups=("web", "default"))], [web, default_group()], {"va": 1})
    count = ovs_render.flows_per_port(flows, 1)
    assert 40 < count < 200, count


def test_conntrack_dump_parsing_and_flush_tuples() -> None:
    lines = [
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),"
        "reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),zone=10,"
        "protoinfo=(state=ESTABLISHED)",
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40001,dport=22),"
        "reply=(src=10.0.0.2,dst=10.0.0.1,sport=22,dport=40001),zone=10,"
        "protoinfo=(state=ESTABLISHED)",
        "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=7,type=8,code=0),"
        "reply=(src=10.0.0.2,dst=10.0.0.1,id=7,type=0,code=0),zone=10",
        "tcp,orig=(src=fd00::1,dst=fd00::2,sport=1,dport=22),reply=(...),zone=11",
        "garbage",
        "tcp,orig=(src=nonsense,dst=10.0.0.2,sport=1,dport=2),zone=10",
    ]
    entries = parse_conntrack(lines)
    assert [(e.protocol, e.zone) for e in entries] == [(6, 10), (6, 10), (1, 10), (6, 11)]
    assert flush_tuple(entries[0]) == (
        "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=6,ct_tp_src=40000,ct_tp_dst=80"
    )
    assert flush_tuple(entries[2]) == (
        "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=1,icmp_type=8,icmp_code=0,icmp_id=7"
    )
    assert flush_tuple(entries[3]).startswith("ct_ipv6_src=fd00::1,ct_ipv6_dst=fd00::2,")
    web = SecurityGroup(
        id="web",
        rules=(Rule(id="http", direction="ingress", protocol=6, port_range_min=80),),
    )
    open_out = SecurityGroup(id="out", rules=(Rule(id="o", direction="egress"),))
    program = compile_program(
        [_port("a", 1, groups=("out",)), _port("b", 2, groups=("web",))], [web, open_out]
    )
    # What the driver would cut: ssh and ping, not port 80.
    denied = [
        e
        for e in entries[:3]
        if not admits_new(
            program,
            owner_of(program, "net-a", e.src),
            owner_of(program, "net-a", e.dst),
            e.flow(),
        )
    ]
    assert [(e.protocol, e.dport) for e in denied] == [(6, 22), (1, None)]


class _Recorder:
    """A renderer/conntrack double: the real ones run in tests/functional/secgroups."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def apply_network(self, program: object, binding: Binding) -> bool:
        self.calls.append(("apply", binding.network))
        return True

    def remove_network(self, binding: Binding) -> None:
        self.calls.append(("remove", binding.network))

    def zone_netns(self, binding: Binding) -> str | None:
        return binding.netns

    def forget_device(self, device: str) -> None:
        return None


def test_split_renderer_sends_each_network_to_its_switch() -> None:
    lb = _Recorder()
    ovs = OvsRenderer(lambda _netns: None)  # type: ignore[arg-type,return-value]
    ovs_calls: list[str] = []
    ovs.apply_network = lambda program, binding: bool(ovs_calls.append(binding.network)) or True  # type: ignore[method-assign]
    split = SplitRenderer(lb, ovs, is_ovs=lambda b: b.bridge.startswith("ovs"))
    a = _port("a", 1)
    b = _port("b", 2, network="net-b", zone=11)
    program = compile_program([a, b], [default_group()])
    assert split.apply_network(program, Binding("net-a", "br0"))
    assert split.apply_network(program, Binding("net-b", "ovsbr"))
    assert lb.calls == [("apply", "net-a")]
    assert ovs_calls == ["net-b"]
    assert split.ovs_zones == {(None, 11)}
    kernel = _KernelRecorder()
    conntrack = split.conntrack(kernel)
    assert conntrack.entries(None, 10) == []
    assert kernel.asked == [(None, 10)]


class _KernelRecorder(Conntrack):
    def __init__(self) -> None:
        self.asked: list[tuple[str | None, int]] = []

    def entries(self, netns: str | None, zone: int) -> list[Entry]:
        self.asked.append((netns, zone))
        return []


def test_conjunction_ids_stay_with_their_clause_across_renders() -> None:
    """A one-port change is a one-port diff: the other ports' conjunctions keep their ids."""
    ports = [_port("a", 1), _port("b", 2), _port("c", 3)]
    extra = SecurityGroup(
        id="extra",
        rules=(Rule(id="db", direction="ingress", protocol=6, port_range_min=5432,
                    remote_group="default"),),
    )  # fmt: skip
    ofports = {"va": 1, "vb": 2, "vc": 3}
    conj = ovs_render.ConjIds()
    before = render(compile_program(ports, [default_group(), extra]), ofports, conj)
    changed = [_port("a", 1, groups=("extra", "default")), ports[1], ports[2]]
    after = render(compile_program(changed, [default_group(), extra]), ofports, conj)
    mods = diff(before, after)
    assert mods
    assert all("reg5=2" not in m and "reg5=3" not in m for m in mods), mods
    # Without stable ids (a fresh allocator) the same change renumbers the later ports too.
    fresh = render(compile_program(changed, [default_group(), extra]), ofports)
    assert any("reg5=2" in m or "reg5=3" in m for m in diff(before, fresh))


def test_table_zero_brackets_a_chains_steering_and_deletes_only_our_cookie() -> None:
    """The groups classify before a chain steers (400 > 300, 250) and deliver after it
    (200); every deletion names our cookie, so a chain's flows survive any install."""
    assert ovs_render.P_SG_CLASSIFY > chains.P_STEER > chains.P_ISOLATE > ovs_render.P_DELIVER
    assert ovs_render.REG_STAGE not in range(7, 13)  # the chains' registers: reg7..reg12
    assert not (set(ovs_render.TABLES) - {0}) & set(chains.TABLES)
    ports = [_port("a", 1), _port("b", 2)]
    before = render(compile_program(ports, [default_group()]), {"va": 1, "vb": 2})
    after = render(compile_program(ports[:1], [default_group()]), {"va": 1})
    for mod in [*diff(before, after), *ovs_render.install_all(after), *ovs_render.uninstall()]:
        verb, _, spec = mod.partition(" ")
        if verb.startswith("delete"):
            assert spec.startswith("cookie=0x5e5e/0xffffffffffffffff"), mod


class _Checked(_Recorder):
    """A Linux-bridge renderer whose check finds every network it is shown lost."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[str] = []

    def check_installed(self, bindings: list[Binding]) -> dict[str, str]:
        self.checked += [b.network for b in bindings]
        return {b.network: "gone" for b in bindings}


def test_split_renderer_checks_the_linux_bridge_networks_only() -> None:
    """An ovs network's bridge is fail_mode=secure on our private switch: only the nftables
    side can lose its rules to something outside."""
    lb = _Checked()
    split = SplitRenderer(
        lb, OvsRenderer(lambda _netns: None), is_ovs=lambda b: b.bridge.startswith("ovs")
    )  # type: ignore[arg-type,return-value]
    lost = split.check_installed([Binding("net-a", "br0"), Binding("net-b", "ovsbr")])
    assert lost == {"net-a": "gone"}
    assert lb.checked == ["net-a"]
    no_check = SplitRenderer(_Recorder(), OvsRenderer(lambda _netns: None))  # type: ignore[arg-type,return-value]
    assert no_check.check_installed([Binding("net-a", "br0")]) == {}


def test_the_networks_driver_picks_its_renderer_and_a_probes_no_is_not_kept() -> None:
    """An ovs network taken for a Linux bridge would get nftables rules, which see nothing
    of Open vSwitch's traffic: its ports would forward unfiltered. The driver (from the
    network's spec) decides; without it a switch that is down (restarting) answers no, which
    must not stick."""
    lb = _Recorder()
    ovs = OvsRenderer(lambda _netns: None)  # type: ignore[arg-type,return-value]
    ovs_calls: list[str] = []
    ovs.apply_network = lambda program, binding: bool(ovs_calls.append(binding.network)) or True  # type: ignore[method-assign]
    switch_up = [False]
    split = SplitRenderer(lb, ovs, is_ovs=lambda b: switch_up[0])
    program = compile_program([_port("a", 1)], [default_group()])
    split.apply_network(program, Binding("net-a", "br0", driver="ovs"))
    assert ovs_calls == ["net-a"]
    assert lb.calls == []
    split.apply_network(program, Binding("net-b", "br1", driver="linuxbridge"))
    assert lb.calls == [("apply", "net-b")]
    # no driver: the probe, down first (a no, not kept), then up
    split.apply_network(program, Binding("net-c", "br2"))
    switch_up[0] = True
    split.apply_network(program, Binding("net-c", "br2"))
    assert lb.calls == [("apply", "net-b"), ("apply", "net-c")]
    assert ovs_calls == ["net-a", "net-c"]
