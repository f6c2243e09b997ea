"""The chain compiler (pure): golden flow tables, and the properties the data plane relies on.

The golden files are the whole table of a chain as ovs-ofctl text; regenerate one after a
deliberate change with ``FE_GOLDEN=1 pytest tests/unit/chains`` and review the diff.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from fluidedge.chains.compiler import (
    CHAIN_COOKIE,
    T_CLASSIFY,
    T_MAP,
    T_OUT,
    T_PICK,
    ChainFlows,
    chain_cookie,
    classifier_matches,
    compile_bridge,
    pin_cookie,
    position_of,
)
from fluidedge.chains.errors import ChainConflict, InvalidChain
from fluidedge.chains.model import (
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
)

from .states import two_groups as _state

GOLDEN = Path(__file__).parent / "golden"
net = ipaddress.ip_network

# va (1) -> [fw: fw1 (3/4), fw2 (5/6)] -> [ctr: ctr1 (7/8)] -> vb (2)
OFPORTS = {"va": 1, "vb": 2, "f1i": 3, "f1o": 4, "f2i": 5, "f2o": 6, "c1i": 7, "c1o": 8}


def _text(cf: ChainFlows) -> str:
    cookie = chain_cookie(cf.chain_id, 1)
    return "".join(f.text(cookie) + "\n" for f in cf.flows)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_golden_two_groups_symmetric() -> None:
    _golden("two_groups_symmetric.flows", _text(compile_bridge(_state(), OFPORTS)["ch"]))


def test_golden_one_way_fail_open_ipv6() -> None:
    state = _state(
        {"symmetric": False, "failure_policy": "open", "port_pair_groups": ["fw"]},
        ethertype="IPv6",
        protocol="udp",
        destination_ip_prefix="fd00::/64",
        destination_port_range_min=None,
        destination_port_range_max=None,
        source_port_range_min=1024,
        source_port_range_max=2047,
    )
    ofports = {k: v for k, v in OFPORTS.items() if k not in ("f1i", "f2i")}  # fw is dead
    _golden("one_way_fail_open_ipv6.flows", _text(compile_bridge(state, ofports)["ch"]))


def _flows(cf: ChainFlows, table: int) -> list[str]:
    return [f"{f.priority} {f.match} -> {f.actions}" for f in cf.flows if f.table == table]


def test_classifier_matches_both_directions() -> None:
    c = _state().classifiers["web"]
    assert classifier_matches(c) == ["tcp,nw_dst=10.0.0.2,tp_dst=0x1f90/0xfffe"]
    assert classifier_matches(c, reverse=True) == ["tcp,nw_src=10.0.0.2,tp_src=0x1f90/0xfffe"]
    c = FlowClassifier("c", "va", "vb", protocol=17, source_port_range_min=1000,
                       source_port_range_max=1002, destination_port_range_min=53)  # fmt: skip
    assert classifier_matches(c) == [
        "udp,tp_src=0x03e8/0xfffe,tp_dst=53",
        "udp,tp_src=1002,tp_dst=53",
    ]
    assert classifier_matches(FlowClassifier("c", "va", "vb", protocol=47)) == ["ip,nw_proto=47"]
    v6 = FlowClassifier("c", "va", "vb", ethertype="IPv6", protocol=1,
                        source_ip_prefix=net("::/0"))  # fmt: skip
    assert classifier_matches(v6) == ["icmp6"]  # icmp on IPv6 is icmpv6; ::/0 is any
    every = FlowClassifier("c", "va", "vb", protocol=6, destination_port_range_min=1,
                           destination_port_range_max=65535)  # fmt: skip
    assert classifier_matches(every) == ["tcp"]


def test_members_are_spread_and_pinned_in_both_directions() -> None:
    cf = compile_bridge(_state(), OFPORTS)["ch"]
    fw, ctr = position_of(1, 1), position_of(1, 2)
    assert cf.positions == (fw, ctr)
    assert cf.members == {(fw, 3), (fw, 5), (ctr, 7)}
    pick = _flows(cf, T_PICK)
    assert (
        f"20 reg7={fw},reg9=0 -> multipath(symmetric_l3l4+udp,0,hrw,2,0,"
        "NXM_NX_REG10[0..15]),resubmit(,43)" in pick
    )
    assert f"10 reg7={fw} -> resubmit(,44)" in pick
    # Each member's map flows learn a pin for the flow and one for its replies, by cookie.
    maps = [f for f in cf.flows if f.table == T_MAP and f"reg7={fw},reg10=1," in f.match]
    assert len(maps) == 3  # tcp, udp, other IPv4
    for f in maps:
        assert f.actions.startswith("set_field:5->reg9,learn(")
        assert f.actions.count(f"cookie={pin_cookie(fw, 5):#x}") == 2
        assert f.actions.endswith("resubmit(,44)")
    out = _flows(cf, T_OUT)
    assert f"20 reg7={fw},reg8=1,reg9=5 -> output:5" in out  # forward: into its ingress
    assert f"20 reg7={fw},reg8=2,reg9=5 -> output:6" in out  # replies: into its egress
    assert f"1 reg7={fw} -> set_field:0->reg9,resubmit(,42)" in out  # stale pin: pick again


def test_a_dead_member_leaves_only_its_own_flows() -> None:
    full = compile_bridge(_state(), OFPORTS)["ch"]
    without = compile_bridge(_state(), {k: v for k, v in OFPORTS.items() if k != "f2o"})["ch"]
    fw = position_of(1, 1)
    assert without.members == full.members - {(fw, 5)}
    removed = set(full.flows) - set(without.flows)
    assert removed
    assert all(
        "=5" in f.match or "=6" in f.match or "reg10=1" in f.match or f.table == T_PICK
        for f in removed
    )
    assert any("hrw,1," in f.actions for f in without.flows if f.table == T_PICK)
    # Nothing of the second group changed.
    ctr = position_of(1, 2)
    assert [f for f in full.flows if f"reg7={ctr}" in f.match] == [
        f for f in without.flows if f"reg7={ctr}" in f.match
    ]


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_failure_policy_of_an_empty_group(policy: str) -> None:
    ofports = {k: v for k, v in OFPORTS.items() if not k.startswith("c1")}
    cf = compile_bridge(_state({"failure_policy": policy}), ofports)["ch"]
    ctr = position_of(1, 2)
    pick = _flows(cf, T_PICK)
    if policy == "closed":
        assert f"20 reg7={ctr},reg8=1,reg9=0 -> drop" in pick
        assert f"20 reg7={ctr},reg8=2,reg9=0 -> drop" in pick
    else:
        # The last group skipped forward delivers; in reverse it goes back to the first.
        assert f"20 reg7={ctr},reg8=1,reg9=0 -> output:NXM_NX_REG11[0..15]" in pick
        fw = position_of(1, 1)
        assert (
            f"20 reg7={ctr},reg8=2,reg9=0 -> set_field:{fw}->reg7,set_field:0->reg9,"
            "resubmit(,41),resubmit(,42)" in pick
        )


def test_function_ports_are_isolated_even_outside_chains() -> None:
    state = _state()
    state = ChainState(
        {**state.port_pairs, "spare": PortPair("spare", "s1", "s2")},
        state.groups,
        state.classifiers,
        state.chains,
    )
    out = compile_bridge(state, {**OFPORTS, "s1": 20, "s2": 21})
    assert set(out) == {"ch", ""}
    assert [f.match for f in out[""].flows] == ["in_port=20", "in_port=21"]
    assert out[""].function_ports == {"s1", "s2"}
    isolated = {f.match for f in out["ch"].flows if f.table == T_CLASSIFY and f.priority == 250}
    assert isolated == {f"in_port={n}" for n in range(3, 9)}


def test_inactive_classifier_and_absent_chain() -> None:
    cf = compile_bridge(_state(), {k: v for k, v in OFPORTS.items() if k != "vb"})["ch"]
    assert cf.inactive == ("web",)
    assert all(f.priority != 300 for f in cf.flows)  # nothing steered
    assert compile_bridge(_state(), {"other": 1}) == {}  # no port of the chain on this bridge


def test_one_armed_function_needs_directions_that_differ() -> None:
    state = _state({"port_pair_groups": ["one"]}, destination_ip_prefix=None,
                   destination_port_range_min=None, destination_port_range_max=None)  # fmt: skip
    state = ChainState(
        {"o": PortPair("o", "f1i", "f1i")},
        {"one": PortPairGroup("one", ("o",))},
        state.classifiers,
        state.chains,
    )
    with pytest.raises(ChainConflict, match="both directions"):
        compile_bridge(state, OFPORTS)
    ok = _state({"port_pair_groups": ["one"]})
    ok = ChainState(
        {"o": PortPair("o", "f1i", "f1i")},
        {"one": PortPairGroup("one", ("o",))},
        ok.classifiers,
        ok.chains,
    )
    flows = _flows(compile_bridge(ok, OFPORTS)["ch"], T_CLASSIFY)
    assert (
        "300 in_port=3,tcp,nw_dst=10.0.0.2,tp_dst=0x1f90/0xfffe -> set_field:258->reg7,"
        "set_field:1->reg8,set_field:0->reg9,set_field:2->reg11,set_field:1->reg12,"
        "resubmit(,41),resubmit(,42)" not in flows
    )  # one group only: it delivers
    assert "300 in_port=3,tcp,nw_dst=10.0.0.2,tp_dst=0x1f90/0xfffe -> output:2" in flows
    assert "300 in_port=3,tcp,nw_src=10.0.0.2,tp_src=0x1f90/0xfffe -> output:1" in flows


def test_two_chains_steering_one_flow_conflict() -> None:
    base = _state()
    state = ChainState(
        {**base.port_pairs, "x": PortPair("x", "x1", "x2")},
        {**base.groups, "gx": PortPairGroup("gx", ("x",))},
        {**base.classifiers, "web2": FlowClassifier.from_json(
            {**base.classifiers["web"].to_json(), "id": "web2"})},
        {**base.chains, "ch2": PortChain("ch2", 2, ("gx",), ("web2",))},
    )  # fmt: skip
    with pytest.raises(ChainConflict, match="both steer"):
        compile_bridge(state, {**OFPORTS, "x1": 30, "x2": 31})


def test_cookies() -> None:
    assert chain_cookie(1, 7) == CHAIN_COOKIE | 1 << 32 | 7
    assert chain_cookie(255, 2**32 + 3) & 0xFFFFFFFF == 3
    assert pin_cookie(position_of(2, 1), 5) == 0xC4A2 << 48 | 0x201 << 16 | 5


# The MACs behind the ports (the instances' interfaces).
MACS = {port: f"02:00:00:00:00:{n:02x}" for port, n in OFPORTS.items()}


def _routed_state() -> ChainState:
    """The chain above with ctr1 a routed function (a router)."""
    state = _state()
    pairs = {**state.port_pairs, "ctr1": PortPair("ctr1", "c1i", "c1o", kind="routed")}
    return ChainState(pairs, state.groups, state.classifiers, state.chains)


def test_routed_function_is_addressed_and_its_output_re_addressed() -> None:
    flows = [f.text(0) for f in compile_bridge(_routed_state(), OFPORTS, MACS)["ch"].flows]
    # Entered forward on its ingress with the ingress's MAC, in reverse on its egress with
    # the egress's.
    assert any(
        "reg8=1,reg9=7" in f and f"set_field:{MACS['c1i']}->eth_dst,output:7" in f for f in flows
    )
    assert any(
        "reg8=2,reg9=7" in f and f"set_field:{MACS['c1o']}->eth_dst,output:8" in f for f in flows
    )
    # What it routes out of its egress goes to vb addressed to vb's MAC; replies out of its
    # ingress go on to the previous group addressed to va's MAC (a transparent fw keeps it).
    assert any(
        "in_port=8," in f and f"set_field:{MACS['vb']}->eth_dst,output:2" in f for f in flows
    )
    assert any(
        "in_port=7," in f and f"set_field:{MACS['va']}->eth_dst,set_field:" in f for f in flows
    )
    # The transparent members are entered without any rewrite.
    assert any("reg8=1,reg9=3" in f and "actions=output:3" in f for f in flows)


def test_routed_function_needs_the_macs() -> None:
    no_router_mac = {k: v for k, v in MACS.items() if k != "c1o"}
    cf = compile_bridge(_routed_state(), OFPORTS, no_router_mac)["ch"]
    assert all(m[1] != 7 for m in cf.members)  # dead without its MAC
    no_dest_mac = {k: v for k, v in MACS.items() if k != "vb"}
    assert compile_bridge(_routed_state(), OFPORTS, no_dest_mac)["ch"].inactive == ("web",)
    # A chain of transparent functions needs no MAC.
    assert compile_bridge(_state(), OFPORTS)["ch"].inactive == ()


def test_pair_kind_round_trip_and_check() -> None:
    pair = PortPair.from_json({"id": "r", "ingress": "a", "egress": "b", "kind": "routed"})
    assert pair.routed
    assert PortPair.from_json(pair.to_json()) == pair
    assert PortPair.from_json({"id": "t", "ingress": "a"}).kind == "transparent"
    with pytest.raises(InvalidChain, match="kind"):
        PortPair.from_json({"id": "x", "ingress": "a", "kind": "nat"})


def _tapped(members: tuple[str, ...] = ("ctr1",), policy: str = "closed") -> ChainState:
    """The chain fw -> ctr with ``ctr`` a tap group."""
    state = _state({"failure_policy": policy})
    groups = {**state.groups, "ctr": PortPairGroup("ctr", members, tap_enabled=True)}
    return ChainState(state.port_pairs, groups, state.classifiers, state.chains)


def test_golden_tap_group() -> None:
    _golden("tap_group.flows", _text(compile_bridge(_tapped(), OFPORTS)["ch"]))


def test_a_tap_gets_a_copy_and_the_chain_goes_on() -> None:
    flows = compile_bridge(_tapped(), OFPORTS)["ch"].flows
    ctr = position_of(1, 2)
    outs = {f.match: f.actions for f in flows if f.table == T_OUT and f"reg7={ctr}," in f.match}
    # Forward: a copy to the tap's ingress, then delivery (it is the last group).
    assert outs[f"reg7={ctr},reg8=1,reg9=7"] == "output:7,output:NXM_NX_REG11[0..15]"
    # Reverse: a copy to its egress, then the previous group (the firewall).
    assert outs[f"reg7={ctr},reg8=2,reg9=7"].startswith(
        f"output:8,set_field:{position_of(1, 1)}->reg7,set_field:0->reg9,"
    )
    # Nothing the tap sends comes back into the chain: its ports only drop.
    tap_ports = ("in_port=7,", "in_port=8,")
    from_tap = [f for f in flows if f.table == T_CLASSIFY and f.match.startswith(tap_ports)]
    assert from_tap == []
    drops = {f.match for f in flows if f.table == T_CLASSIFY and f.actions == "drop"}
    assert {"in_port=7", "in_port=8"} <= drops
    # The firewall's return goes to the tap group as to any group.
    assert any(
        f.match.startswith("in_port=4,") and f"set_field:{ctr}->reg7" in f.actions for f in flows
    )


def test_an_empty_tap_group_is_skipped_even_in_a_closed_chain() -> None:
    flows = compile_bridge(_tapped(members=()), OFPORTS)["ch"].flows
    ctr = position_of(1, 2)
    picks = {f.match: f.actions for f in flows if f.table == T_PICK}
    assert picks[f"reg7={ctr},reg8=1,reg9=0"] == "output:NXM_NX_REG11[0..15]"
    assert picks[f"reg7={ctr},reg8=2,reg9=0"].startswith(f"set_field:{position_of(1, 1)}->reg7")


def test_a_tap_group_takes_no_routed_pair() -> None:
    state = _tapped()
    pairs = {**state.port_pairs, "ctr1": PortPair("ctr1", "c1i", "c1o", kind="routed")}
    with pytest.raises(ChainConflict, match="is a tap"):
        compile_bridge(ChainState(pairs, state.groups, state.classifiers, state.chains), OFPORTS)


def test_tap_enabled_round_trips_and_is_checked() -> None:
    group = PortPairGroup.from_json({"id": "t", "port_pairs": ["a"], "tap_enabled": True})
    assert group.tap_enabled
    assert group.to_json()["tap_enabled"] is True
    assert PortPairGroup.from_json(group.to_json()) == group
    with pytest.raises(InvalidChain, match="tap_enabled"):
        PortPairGroup.from_json({"id": "t", "tap_enabled": "yes"})
