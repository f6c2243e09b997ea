"""The order the Linux-bridge adapter switches ports in (pure): where packets come back before
where they are sent from, and ports packets stop coming back to last (under traffic, with the
writes slowed: tests/functional/chains/test_linux_chains.py)."""

from __future__ import annotations

from dataclasses import replace

from fluidedge.chains.model import ChainState, PortPair, PortPairGroup
from fluidedge.chains.tcorder import Switch, order, targets
from fluidedge.chains.tcplan import FWD, Group, Match, Member, Plan, PortPlan, Rule, compile_plan

from .states import two_groups as _state

# va (1) -> [fw: fw1 (3/4), fw2 (5/6)] -> [ctr: ctr1 (7/8)] -> vb (2)
P1 = 1 << 8 | 1
IFINDEX = {"va": 1, "vb": 2, "f1i": 3, "f1o": 4, "f2i": 5, "f2o": 6, "c1i": 7, "c1o": 8}


def _respects(switch: Switch, plan: Plan) -> None:
    """Every port once, and each after the ports it steers into that switch with it."""
    sequence = switch.first + switch.last
    assert sorted(sequence) == sorted(plan.ports)
    for part in (switch.first, switch.last):
        for at, port in enumerate(part):
            later = set(part[at + 1 :])
            assert not targets(plan)[port] & later, (port, part)


def _one_group(state: ChainState) -> ChainState:
    """``state``'s chain through fw only; ctr1 stays declared (its legs isolated)."""
    return replace(state, chains={"ch": replace(state.chains["ch"], port_pair_groups=("fw",))})


def test_targets_are_where_steered_packets_come_back() -> None:
    into = targets(compile_plan(_state(), IFINDEX))
    # Forward: va into fw's egress legs and, past fw (fail-open or tap), ctr's; fw into ctr.
    assert into[1] == {4, 6, 8}
    assert into[4] == into[6] == {8}
    # Reverse: vb into ctr's ingress leg and fw's; ctr's ingress into fw's.
    assert into[2] == {7, 3, 5}
    assert into[7] == {3, 5}
    # Legs that deliver to a chain end steer nowhere.
    assert into[3] == into[5] == into[8] == frozenset()


def test_first_apply_switches_each_port_after_where_its_packets_come_back() -> None:
    plan = compile_plan(_state(), IFINDEX)
    switch = order(None, plan)
    assert switch == Switch((8, 4, 6, 1, 3, 5, 7, 2), ())
    _respects(switch, plan)


def test_a_hop_joining_switches_its_return_legs_before_the_hop_before_it() -> None:
    one = compile_plan(_one_group(_state()), IFINDEX)
    two = compile_plan(_state(), IFINDEX)
    switch = order(one, two)
    assert switch.last == ()
    first = switch.first
    # ctr's egress before fw's egress legs (which now steer into it), and those before va.
    assert first.index(8) < first.index(4) < first.index(1)
    assert first.index(8) < first.index(6) < first.index(1)
    # Replies: fw's ingress legs before ctr's ingress, which vb now enters first.
    assert first.index(3) < first.index(7) < first.index(2)
    _respects(switch, two)


def test_a_hop_leaving_switches_its_legs_last() -> None:
    two = compile_plan(_state(), IFINDEX)
    one = compile_plan(_one_group(_state()), IFINDEX)
    switch = order(two, one)
    # ctr1's legs go back to dropping what they get: after the drain, when the ports that
    # sent them packets (fw's legs, vb) have switched and those packets have come back.
    assert set(switch.last) == {7, 8}
    assert set(switch.first) == {1, 2, 3, 4, 5, 6}
    _respects(switch, one)


def test_a_member_leaving_its_group_switches_its_legs_last() -> None:
    two = compile_plan(_state(), IFINDEX)
    shrunk = _state()
    shrunk = replace(shrunk, groups={**shrunk.groups, "fw": PortPairGroup("fw", ("fw1",))})
    one = compile_plan(shrunk, IFINDEX)
    switch = order(two, one)
    assert set(switch.last) == {5, 6}  # fw2's legs: no rules now, replies and forward
    _respects(switch, one)


def test_a_port_that_keeps_its_entry_is_not_held_back() -> None:
    """A port packets stop coming back to whose entry stays the same switches with the rest
    (its new entry is the old rules in the other half): nothing waits for the drain."""
    match = Match(4, 17, None, None)
    deliver = Rule(match, out=2)
    leg = PortPlan((deliver,), isolate=True)
    before = Plan(
        {1: PortPlan((Rule(match, P1, FWD, (2, 1)),)), 4: leg, 6: leg},
        {P1: Group(1, 1, (Member(3, 4),))},
    )
    after = replace(before, groups={P1: Group(1, 1, (Member(5, 6),))})
    switch = order(before, after)
    assert switch == Switch((6, 1, 4), ())


def test_a_tap_s_legs_are_no_return_point() -> None:
    state = _state()
    tapped = replace(
        state, groups={**state.groups, "ctr": replace(state.groups["ctr"], tap_enabled=True)}
    )
    into = targets(compile_plan(tapped, IFINDEX))
    assert 8 not in into[1]
    assert 7 not in into[2]
    assert into[4] == into[6] == frozenset()  # past fw: the tap's copy, then vb


def test_a_one_armed_cycle_is_cut_and_every_port_switches_once() -> None:
    """Two one-armed functions in a symmetric chain: each one's leg steers into the other's
    (forward one way, replies the other), a cycle no order satisfies whole."""
    state = _state()
    one_armed = replace(
        state,
        port_pairs={
            **state.port_pairs,
            "fw1": PortPair("fw1", "f1i", "f1i"),
            "ctr1": PortPair("ctr1", "c1i", "c1i"),
        },
        groups={**state.groups, "fw": PortPairGroup("fw", ("fw1",))},
    )
    plan = compile_plan(one_armed, IFINDEX)
    into = targets(plan)
    assert 7 in into[3]
    assert 3 in into[7]
    switch = order(None, plan)
    assert sorted(switch.first) == sorted(plan.ports)
    assert switch.last == ()
