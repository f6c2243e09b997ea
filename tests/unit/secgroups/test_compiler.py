"""The compiler and the IR's verdicts against the model's reference evaluator (pure)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fixtures.secgroups_ref import Conn, expected

from fluidedge.secgroups.compiler import (
    compile_program,
    link_local,
    set_name,
)
from fluidedge.secgroups.errors import InvalidSecgroup
from fluidedge.secgroups.model import (
    AddressPair,
    Port,
    Rule,
    SecurityGroup,
    default_group,
)
from fluidedge.secgroups.verdict import Flow, admits_new, owner_of, source_allowed

ip = ipaddress.ip_address
net = ipaddress.ip_network


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


def test_default_group_compiles_to_self_sets_and_open_egress() -> None:
    a, b = _port("a", 1), _port("b", 2)
    prog = compile_program([b, a], [default_group()])
    assert [p.port for p in prog.ports] == ["a", "b"]
    assert prog.zones == (("net-a", 10),)
    names = [s.name for s in prog.address_sets]
    assert names == [set_name("default", 10, "IPv4"), set_name("default", 10, "IPv6")]
    v4 = prog.address_sets[0]
    assert v4.members == (net("10.0.0.1/32"), net("10.0.0.2/32"))
    pa = prog.ports[0]
    assert {c.remote_set for c in pa.ingress} == set(names)
    assert all(c.remote_set is None and c.remote_prefix is None for c in pa.egress)
    assert pa.egress[0].rules == ("default/egress-v4",)


def test_allowed_sources_include_pairs_and_link_locals() -> None:
    pair = AddressPair(net("10.0.5.0/24"), "02:00:00:00:00:99")
    port = _port("a", 1, allowed_address_pairs=(pair,))
    pf = compile_program([port], [default_group()]).ports[0]
    assert source_allowed(pf, "02:00:00:00:00:01", ip("10.0.0.1"))
    assert not source_allowed(pf, "02:00:00:00:00:99", ip("10.0.0.1"))
    assert source_allowed(pf, "02:00:00:00:00:99", ip("10.0.5.77"))
    assert source_allowed(pf, "02:00:00:00:00:01", link_local("02:00:00:00:00:01"))
    assert source_allowed(pf, "02:00:00:00:00:99", link_local("02:00:00:00:00:99"))
    assert not source_allowed(pf, "02:00:00:00:00:01", ip("10.0.0.2"))
    assert pf.macs() == ("02:00:00:00:00:01", "02:00:00:00:00:99")


def test_link_local_is_eui64() -> None:
    assert link_local("52:54:00:12:34:56") == ip("fe80::5054:ff:fe12:3456")


def test_identical_rules_of_two_groups_merge_into_one_clause() -> None:
    ssh = Rule(id="ssh", direction="ingress", protocol=6, port_range_min=22)
    g1 = SecurityGroup(id="g1", rules=(ssh,))
    g2 = SecurityGroup(id="g2", rules=(ssh,))
    pf = compile_program([_port("a", 1, groups=("g1", "g2"))], [g1, g2]).ports[0]
    assert len(pf.ingress) == 1
    assert pf.ingress[0].rules == ("g1/ssh", "g2/ssh")
    assert pf.egress == ()


def test_full_port_range_and_zero_prefix_mean_any() -> None:
    rule = Rule(
        id="r",
        direction="ingress",
        protocol=6,
        port_range_min=1,
        port_range_max=65535,
        remote_ip_prefix=net("0.0.0.0/0"),
    )
    pf = compile_program([_port("a", 1, groups=("g",))], [SecurityGroup(id="g", rules=(rule,))])
    clause = pf.ports[0].ingress[0]
    assert (clause.port_min, clause.port_max, clause.remote_prefix) == (None, None, None)


def test_sets_are_per_network_so_overlapping_subnets_stay_apart() -> None:
    a = _port("a", 1)
    b = _port("b", 1, network="net-b", zone=11, device="vb2")
    prog = compile_program([a, b], [default_group()])
    sets = {s.name: s for s in prog.address_sets}
    assert sets[set_name("default", 10, "IPv4")].members == (net("10.0.0.1/32"),)
    assert sets[set_name("default", 11, "IPv4")].network == "net-b"
    assert owner_of(prog, "net-b", ip("10.0.0.1")) == "b"


def test_port_without_security_has_no_filter() -> None:
    port = _port("a", 1, groups=(), port_security=False)
    pf = compile_program([port], []).ports[0]
    assert not pf.port_security
    assert pf.ingress == pf.egress == pf.allowed_sources == ()
    flow = Flow(protocol=6, src=ip("10.9.9.9"), dst=ip("10.0.0.1"), dport=1)
    prog = compile_program([port], [])
    assert admits_new(prog, None, "a", flow)


@pytest.mark.parametrize(
    ("ports", "groups", "why"),
    [
        ([_port("a", 1, groups=("nope",))], [], "unknown group"),
        ([_port("a", 1), _port("a", 2, device="x")], [default_group()], "twice"),
        ([_port("a", 1), _port("b", 2, device="va")], [default_group()], "device"),
        ([_port("a", 1), _port("b", 2, zone=11)], [default_group()], "zone"),
        ([_port("a", 1), _port("b", 2, network="net-b")], [default_group()], "zone"),
        (
            [_port("a", 1, groups=("g",))],
            [SecurityGroup(id="g", rules=(Rule(id="r", direction="ingress", remote_group="x"),))],
            "unknown group",
        ),
    ],
)
def test_inconsistent_inputs_are_refused(ports: list[Port], groups: Any, why: str) -> None:
    with pytest.raises(InvalidSecgroup, match=why):
        compile_program(ports, groups)


def test_compilation_is_deterministic_and_order_free() -> None:
    ports = [_port("a", 1), _port("b", 2, groups=("default", "web")), _port("c", 3)]
    web = SecurityGroup(
        id="web",
        rules=(
            Rule(id="http", direction="ingress", protocol=6, port_range_min=80),
            Rule(id="ping", direction="ingress", protocol=1, icmp_type=8),
        ),
    )
    one = compile_program(ports, [default_group(), web])
    two = compile_program(list(reversed(ports)), {"web": web, "default": default_group()})
    assert one == two


# -- the property: the compiled program's verdict is the model's ------------------------------

GROUPS = ("g0", "g1", "g2")
PROTOS = (None, 1, 6, 17)


@st.composite
def rules(draw: st.DrawFn, n: int) -> Rule:
    proto = draw(st.sampled_from(PROTOS))
    kw: dict[str, Any] = {
        "id": f"r{n}",
        "direction": draw(st.sampled_from(("ingress", "egress"))),
        "protocol": proto,
    }
    if proto in (6, 17) and draw(st.booleans()):
        low = draw(st.integers(1, 40))
        kw["port_range_min"] = low
        kw["port_range_max"] = draw(st.integers(low, 45))
    if proto == 1 and draw(st.booleans()):
        kw["icmp_type"] = draw(st.sampled_from((0, 8)))
    remote = draw(st.sampled_from(("any", "prefix", "group")))
    if remote == "prefix":
        kw["remote_ip_prefix"] = net(f"10.0.0.{draw(st.integers(0, 7)) * 4}/30")
    elif remote == "group":
        kw["remote_group"] = draw(st.sampled_from(GROUPS))
    return Rule(**kw)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Port], dict[str, SecurityGroup]]:
    groups = {}
    for gid in GROUPS:
        rs = draw(st.lists(rules(0), max_size=5))
        uniq: dict[tuple[object, ...], Rule] = {}
        for i, r in enumerate(rs):
            uniq.setdefault(r.key(), Rule(**{**r.__dict__, "id": f"r{i}"}))
        groups[gid] = SecurityGroup(id=gid, rules=tuple(uniq.values()))
    ports = []
    for i in range(draw(st.integers(1, 5))):
        secure = draw(st.booleans()) or i == 0
        member = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=2))
        pairs = ()
        if secure and draw(st.booleans()):
            pairs = (AddressPair(net(f"10.0.0.{16 + 4 * i}/30")),)
        ports.append(
            Port(
                id=f"p{i}",
                device=f"d{i}",
                network=draw(st.sampled_from(("n1", "n2"))),
                zone=1,
                mac=f"02:00:00:00:00:{i + 1:02x}",
                fixed_ips=(ip(f"10.0.0.{i + 1}"),),
                allowed_address_pairs=pairs,
                port_security=secure,
                groups=tuple(member) if secure else (),
            )
        )
    # one zone per network
    return [Port(**{**p.__dict__, "zone": 1 if p.network == "n1" else 2}) for p in ports], groups


@settings(max_examples=300, deadline=None)
@given(
    world=worlds(),
    proto=st.sampled_from((1, 6, 17, 47)),
    dport=st.integers(1, 50),
    icmp_type=st.sampled_from((0, 8, 3)),
    src_host=st.integers(1, 30),
    dst_host=st.integers(1, 30),
)
def test_compiled_verdict_is_the_models(
    world: tuple[list[Port], dict[str, SecurityGroup]],
    *,
    proto: int,
    dport: int,
    icmp_type: int,
    src_host: int,
    dst_host: int,
) -> None:
    ports, groups = world
    program = compile_program(ports, groups)
    conn = Conn(
        protocol=proto,
        src=f"10.0.0.{src_host}",
        dst=f"10.0.0.{dst_host}",
        dport=dport if proto in (6, 17) else None,
        icmp_type=icmp_type if proto == 1 else None,
        icmp_code=0 if proto == 1 else None,
    )
    flow = Flow(
        protocol=proto,
        src=ip(conn.src),
        dst=ip(conn.dst),
        dport=conn.dport,
        icmp_type=conn.icmp_type,
        icmp_code=conn.icmp_code,
    )
    by_id = {p.id: p for p in ports}
    candidates: list[str | None] = [None, *by_id]
    for s in candidates:
        for d in candidates:
            if s == d or (s is not None and d is not None and by_id[s].network != by_id[d].network):
                continue
            want = expected(
                None if s is None else by_id[s],
                None if d is None else by_id[d],
                conn,
                groups,
                ports,
            )
            assert admits_new(program, s, d, flow) == want, (s, d, conn)


def test_narrowed_tells_widening_from_narrowing() -> None:
    from fluidedge.secgroups.driver import narrowed

    ssh = Rule(id="ssh", direction="ingress", protocol=6, port_range_min=22)
    web = Rule(id="web", direction="ingress", protocol=6, port_range_min=80)
    a, b = _port("a", 1, groups=("g",)), _port("b", 2, groups=("default",))
    one = compile_program([a, b], [SecurityGroup(id="g", rules=(ssh,)), default_group()])
    two = compile_program([a, b], [SecurityGroup(id="g", rules=(ssh, web)), default_group()])
    assert not narrowed(one, two, "net-a")  # a rule added
    assert narrowed(two, one, "net-a")  # a rule removed
    fewer = compile_program([b], [default_group()])
    more = compile_program([a, b, _port("c", 3, device="vc3")], [
        SecurityGroup(id="g", rules=(ssh,)), default_group()])  # fmt: skip
    assert not narrowed(one, more, "net-a")  # a member joined the default group's set
    assert narrowed(more, one, "net-a")  # and left it
    assert not narrowed(one, fewer, "net-a")  # a port gone: its connections went with it
    assert not narrowed(one, two, "other")
