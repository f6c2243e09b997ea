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


def test_parse_pin_reads_a_learned_pin_with_its_counters() -> None:
    from fluidedge.chains.ovs import parse_pin

    line = (
        "cookie=0xc4a2000001020005, duration=0.147s, table=41, n_packets=19, n_bytes=950, "
        "idle_timeout=300, idle_age=0, priority=20,udp,reg7=0x102,nw_src=10.0.0.1,"
        "nw_dst=10.0.0.2,tp_src=46725,tp_dst=7000 actions=set_field:0x5->reg9"
    )
    assert parse_pin(line) == {
        "position": 0x102, "member": 5, "protocol": 17, "src": "10.0.0.1", "dst": "10.0.0.2",
        "sport": 46725, "dport": 7000, "packets": 19, "bytes": 950,
    }  # fmt: skip
    by_address = (
        "cookie=0xc4a2000001010003, table=41, n_packets=4, n_bytes=392, priority=10,icmp6,"
        "reg7=0x101,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2 actions=set_field:0x3->reg9"
    )
    pin = parse_pin(by_address)
    assert pin is not None
    assert (pin["protocol"], pin["src"], pin["sport"], pin["packets"]) == (58, "2001:db8::1", 0, 4)
    # A chain flow (not a pin) is not one.
    assert (
        parse_pin("cookie=0xc4a1000100000001, table=41, priority=1,reg7=257 actions=drop") is None
    )
