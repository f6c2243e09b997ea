"""The adapter's diff apply (pure part): a change re-writes only the flows it changes, keeps
the others (and their cookies) untouched, and removes the gone ones strictly by identity."""

from __future__ import annotations

from tests.unit.chains.test_compiler import OFPORTS, _state

from fluidedge.chains.compiler import chain_cookie, compile_bridge
from fluidedge.chains.model import ChainState, PortPairGroup
from fluidedge.chains.ovs import Installed, _diff


def _with_fw(members: tuple[str, ...]) -> ChainState:
    state = _state()
    groups = {**state.groups, "fw": PortPairGroup("fw", members)}
    return ChainState(state.port_pairs, groups, state.classifiers, state.chains)


def test_a_member_joining_rewrites_only_what_changes() -> None:
    before = compile_bridge(_with_fw(("fw1",)), OFPORTS)["ch"]
    after = compile_bridge(_with_fw(("fw1", "fw2")), OFPORTS)["ch"]
    v1, v2 = chain_cookie(1, 1), chain_cookie(1, 2)
    was = Installed(1, before, {f.key: v1 for f in before.flows})
    now, later, cookies = _diff(was, after, v2)
    changed = {f.key for f in after.flows} - {f.key for f in before.flows}
    changed |= {
        f.key
        for f in after.flows
        for o in before.flows
        if o.key == f.key and o.actions != f.actions
    }
    assert 0 < len(now) == len(changed) < len(after.flows)
    assert all(line.startswith("add ") and f"cookie={v2:#x}," in line for line in now)
    assert later == []  # nothing of fw1's chain is gone
    assert {k for k, c in cookies.items() if c == v2} == changed
    assert {k for k, c in cookies.items() if c == v1} == {f.key for f in after.flows} - changed


def test_a_member_leaving_deletes_its_flows_strictly_later() -> None:
    before = compile_bridge(_with_fw(("fw1", "fw2")), OFPORTS)["ch"]
    after = compile_bridge(_with_fw(("fw1",)), OFPORTS)["ch"]
    v1, v2 = chain_cookie(1, 1), chain_cookie(1, 2)
    was = Installed(1, before, {f.key: v1 for f in before.flows})
    _now, later, cookies = _diff(was, after, v2)
    gone = [f for f in before.flows if f.key not in {g.key for g in after.flows}]
    assert gone
    assert later == [f"delete_strict cookie={v1:#x}/0xffffffffffffffff,{f.spec()}" for f in gone]
    assert set(cookies) == {f.key for f in after.flows}
