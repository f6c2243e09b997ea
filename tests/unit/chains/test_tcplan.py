"""The Linux-bridge compiler (pure): what each port's rules and each group say, and the byte
layout the tc program reads (its run on real frames: tests/functional/chains/test_tc_program.py).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import replace

import pytest

from fluidedge.chains.errors import ChainConflict
from fluidedge.chains.model import ChainState, FlowClassifier, PortChain, PortPair, PortPairGroup
from fluidedge.chains.tcplan import (
    FWD,
    MAX_MEMBERS,
    MEMBER,
    PIN_KEY,
    PIN_VAL,
    REV,
    RULE,
    Group,
    Match,
    Member,
    PortPlan,
    Rule,
    compile_plan,
    matches,
)

from .states import two_groups as _state

net = ipaddress.ip_network
# va (1) -> [fw: fw1 (3/4), fw2 (5/6)] -> [ctr: ctr1 (7/8)] -> vb (2)
IFINDEX = {"va": 1, "vb": 2, "f1i": 3, "f1o": 4, "f2i": 5, "f2o": 6, "c1i": 7, "c1o": 8}
P1, P2 = 1 << 8 | 1, 1 << 8 | 2


FWD_MATCH = Match(4, 6, None, net("10.0.0.2/32"), dports=(8080, 8081))
REV_MATCH = Match(4, 6, net("10.0.0.2/32"), None, sports=(8080, 8081))
DELIVER = (2, 1)


def test_two_groups_symmetric() -> None:
    plan = compile_plan(_state(), IFINDEX)
    ports = plan.ports
    # The ends: the classifier enters the first group, the reversed one the last, backwards.
    assert ports[1].rules == (Rule(FWD_MATCH, P1, FWD, DELIVER),)
    assert ports[2].rules == (Rule(REV_MATCH, P2, REV, DELIVER),)
    assert not ports[1].isolate
    assert not ports[2].isolate
    # fw's members: forward out of the egress into ctr, replies out of the ingress to va.
    for egress, ingress in ((4, 3), (6, 5)):
        assert ports[egress].rules == (Rule(FWD_MATCH, P2, FWD, DELIVER),)
        assert ports[ingress].rules == (Rule(REV_MATCH, out=1),)
    # ctr: forward delivered to vb, replies enter fw backwards.
    assert ports[8].rules == (Rule(FWD_MATCH, out=2),)
    assert ports[7].rules == (Rule(REV_MATCH, P1, REV, DELIVER),)
    assert all(ports[i].isolate for i in range(3, 9))
    assert plan.groups == {
        P1: Group(1, 2, (Member(3, 4), Member(5, 6))),
        P2: Group(2, 2, (Member(7, 8),)),
    }
    assert plan.function_ports == {"f1i", "f1o", "f2i", "f2o", "c1i", "c1o"}
    assert plan.inactive == ()


def test_one_way_fail_open_with_a_dead_member() -> None:
    state = _state({"symmetric": False, "failure_policy": "open"})
    ifindex = {k: v for k, v in IFINDEX.items() if k != "f2o"}  # fw2 lost a leg: dead
    plan = compile_plan(state, ifindex)
    assert 2 not in plan.ports  # no reversed classifier
    assert plan.ports[3].rules == ()  # no way back through the members
    assert plan.ports[3].isolate
    assert plan.groups[P1] == Group(1, 2, (Member(3, 4),), open=True)
    assert plan.ports[5] == PortPlan((), isolate=True)  # a dead member's leg: still isolated


def test_a_classifier_whose_end_is_not_on_the_bridge_is_inactive() -> None:
    plan = compile_plan(_state(), {k: v for k, v in IFINDEX.items() if k != "vb"})
    assert plan.inactive == ("web",)
    assert all(not p.rules for p in plan.ports.values())
    assert all(p.isolate for p in plan.ports.values())  # the legs stay out of the bridge


def test_a_chain_with_no_port_here_is_left_out_and_idle_pairs_are_isolated() -> None:
    state = _state()
    plan = compile_plan(state, {"other": 9})
    assert plan.ports == {}
    assert plan.groups == {}
    spare = replace(state, chains={}, classifiers={})
    plan = compile_plan(spare, IFINDEX)
    assert plan.groups == {}
    assert {i for i, p in plan.ports.items() if p.isolate and not p.rules} == set(range(3, 9))


def test_routed_members_and_the_macs_of_the_ends() -> None:
    state = _state({"port_pair_groups": ["fw"]})
    state = replace(
        state,
        port_pairs={**state.port_pairs, "fw1": PortPair("fw1", "f1i", "f1o", kind="routed")},
    )
    macs = {"va": "02:00:00:00:00:01", "vb": "02:00:00:00:00:02", "f1i": "02:00:00:00:00:03",
            "f1o": "02:00:00:00:00:04"}  # fmt: skip
    plan = compile_plan(state, IFINDEX, macs)
    assert plan.groups[P1].members == (
        Member(3, 4, "02:00:00:00:00:03", "02:00:00:00:00:04"),
        Member(5, 6),
    )
    # What the routed member sends on is re-addressed to the end it goes to.
    assert plan.ports[4].rules == (Rule(FWD_MATCH, out=2, mac="02:00:00:00:00:02"),)
    assert plan.ports[3].rules == (Rule(REV_MATCH, out=1, mac="02:00:00:00:00:01"),)
    assert plan.ports[6].rules == (Rule(FWD_MATCH, out=2),)
    # Without the ends' MACs the classifier is inactive; without its own, the member is dead.
    assert compile_plan(state, IFINDEX, {}).inactive == ("web",)
    partial = {k: v for k, v in macs.items() if k != "f1o"}
    assert compile_plan(state, IFINDEX, partial).groups[P1].members == (Member(5, 6),)


def test_a_tap_group_gets_copies_and_its_legs_take_nothing_back() -> None:
    state = _state()
    state = replace(
        state, groups={**state.groups, "ctr": PortPairGroup("ctr", ("ctr1",), tap_enabled=True)}
    )
    plan = compile_plan(state, IFINDEX)
    assert plan.groups[P2].tap
    assert plan.ports[7].rules == plan.ports[8].rules == ()
    assert plan.ports[7].isolate
    assert plan.ports[8].isolate


def test_two_chains_steering_the_same_traffic_from_one_port_conflict() -> None:
    state = _state({"port_pair_groups": ["fw"]})
    other = FlowClassifier.from_json({**state.classifiers["web"].to_json(), "id": "web2"})
    state = replace(
        state,
        classifiers={**state.classifiers, "web2": other},
        chains={
            **state.chains,
            "ch2": PortChain("ch2", 2, ("ctr",), ("web2",)),
        },
    )
    with pytest.raises(ChainConflict, match="two chains steer the same traffic"):
        compile_plan(state, IFINDEX)


def test_one_armed_function_needs_directions_told_apart() -> None:
    state = _state(
        {"port_pair_groups": ["fw"]}, destination_ip_prefix=None,
        destination_port_range_min=None, destination_port_range_max=None,
    )  # fmt: skip
    one = replace(state, port_pairs={**state.port_pairs, "fw1": PortPair("fw1", "f1i", "f1i")})
    with pytest.raises(ChainConflict, match="one-armed"):
        compile_plan(one, IFINDEX)
    told = _state({"port_pair_groups": ["fw"]})
    told = replace(told, port_pairs={**told.port_pairs, "fw1": PortPair("fw1", "f1i", "f1i")})
    plan = compile_plan(told, IFINDEX)
    # Both directions' rules on the one leg, forward first.
    assert plan.ports[3].rules == (Rule(FWD_MATCH, out=2), Rule(REV_MATCH, out=1))


def test_limits_are_conflicts_not_silent_truncation() -> None:
    n = MAX_MEMBERS + 1
    pairs = {f"p{i}": PortPair(f"p{i}", f"i{i}", f"o{i}") for i in range(n)}
    ifindex = {"va": 1, "vb": 2} | {f"i{i}": 10 + 2 * i for i in range(n)}
    ifindex |= {f"o{i}": 11 + 2 * i for i in range(n)}
    state = ChainState(
        port_pairs=pairs,
        groups={"g": PortPairGroup("g", tuple(pairs))},
        classifiers={"c": FlowClassifier("c", "va", "vb")},
        chains={"ch": PortChain("ch", 1, ("g",), ("c",))},
    )
    with pytest.raises(ChainConflict, match=f"{n} live members"):
        compile_plan(state, ifindex)
    # 5 chains of 16 classifiers from va: 80 rules on one port.
    classifiers = {
        f"c{i}": FlowClassifier(
            f"c{i}",
            "va",
            "vb",
            protocol=17,
            destination_port_range_min=i,
            destination_port_range_max=i,
        )
        for i in range(80)
    }
    many = ChainState(
        port_pairs={f"p{k}": pairs[f"p{k}"] for k in range(5)},
        groups={f"g{k}": PortPairGroup(f"g{k}", (f"p{k}",)) for k in range(5)},
        classifiers=classifiers,
        chains={
            f"ch{k}": PortChain(
                f"ch{k}", k + 1, (f"g{k}",), tuple(f"c{16 * k + i}" for i in range(16))
            )
            for k in range(5)
        },
    )
    with pytest.raises(ChainConflict, match="80 chain rules"):
        compile_plan(many, ifindex)


def test_reverse_view_swaps_addresses_and_ports() -> None:
    c = FlowClassifier.from_json(
        {"id": "x", "logical_source_port": "a", "logical_destination_port": "b",
         "ethertype": "IPv6", "protocol": "udp", "source_ip_prefix": "fd00::/64",
         "source_port_range_min": 10, "source_port_range_max": 20}
    )  # fmt: skip
    assert matches(c) == Match(6, 17, net("fd00::/64"), None, sports=(10, 20))
    assert matches(c, reverse=True) == Match(6, 17, None, net("fd00::/64"), dports=(10, 20))


def test_the_byte_layout_matches_the_c_structs() -> None:
    assert RULE.size == 100
    assert MEMBER.size == 24
    assert len(Group(1, 1, (Member(3, 4),)).pack()) == 8 + 24 * MAX_MEMBERS
    assert PIN_KEY.size == 44
    assert PIN_VAL.size == 48
    packed = Rule(Match(4, 6, net("10.1.2.0/24"), None, dports=(80, 80)), P1, REV, (2, 1)).pack()
    words = struct.unpack("=16I", packed[:64])
    # The prefix and its mask as the program compares them: network-order bytes in word 0.
    assert struct.pack("=I", words[0]) == bytes([10, 1, 2, 0])
    assert struct.pack("=I", words[4]) == bytes([255, 255, 255, 0])
    assert words[8:16] == (0,) * 8  # no destination prefix: match anything
    position, fwd_end, rev_end, out = struct.unpack("=4I", packed[64:80])
    assert (position, fwd_end, rev_end, out) == (P1, 2, 1, 0)
    assert struct.unpack("=4H", packed[80:88]) == (0, 0xFFFF, 80, 80)
    assert tuple(packed[88:92]) == (4, 6, REV, 0)
    routed = Rule(FWD_MATCH, out=2, mac="02:aa:bb:cc:dd:ee").pack()
    assert routed[91] == 1
    assert routed[92:98] == bytes.fromhex("02aabbccddee")
