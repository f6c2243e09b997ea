"""Incremental compile and apply (pure): after any sequence of changes, the memoising
compiler's program equals a fresh compile, and the delta each renderer emits, applied to what
was installed before, gives exactly the full render of the new program (nftables tables and
OpenFlow flows, each interpreted here as the data plane would apply it)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fluidedge.ovs.flows import Flow
from fluidedge.secgroups import ovs_render
from fluidedge.secgroups.compiler import Compiler, compile_program, delta
from fluidedge.secgroups.driver import NftRenderer
from fluidedge.secgroups.model import AddressPair, Port, Rule, SecurityGroup
from fluidedge.secgroups.nft import Binding, Table, build_tables, render_diff

from .test_compiler import GROUPS, rules, worlds

ip = ipaddress.ip_address
BINDINGS = {"n1": Binding("n1", "br1"), "n2": Binding("n2", "br2")}


# -- interpreters: a delta applied to the old state, as nft / ovs-vswitchd would -------------


def apply_nft(old: tuple[Table, Table], text: str) -> tuple[Table, Table]:
    """The tables after ``nft -f`` runs a :func:`render_diff` transaction on ``old``."""
    state = {
        t.family: (
            {k: list(v) for k, v in t.sets.items()},
            {k: list(v) for k, v in t.chains.items()},
        )
        for t in old
    }
    elements: dict[tuple[str, str], list[str]] = {}
    for t in old:
        for name, (_, items) in t.sets.items():
            elements[(t.family, name)] = [items] if items else []
    for line in text.splitlines():
        words = line.split(" ")
        verb, kind, family, _table, name = words[:5]
        sets, chains = state[family]
        rest = " ".join(words[5:])
        if (verb, kind) == ("add", "set"):
            decl = rest.removeprefix("{ ").removesuffix(" }")
            sets[name] = [decl, ""]
            elements[(family, name)] = []
        elif (verb, kind) == ("add", "element"):
            elements[(family, name)].append(rest.removeprefix("{ ").removesuffix(" }"))
        elif (verb, kind) == ("flush", "set"):
            elements[(family, name)] = []
        elif (verb, kind) == ("delete", "set"):
            del sets[name]
            del elements[(family, name)]
        elif (verb, kind) == ("add", "chain"):
            chains[name] = ["", ()]
        elif (verb, kind) == ("flush", "chain"):
            chains[name][1] = ()
        elif (verb, kind) == ("add", "rule"):
            chains[name][1] = (*chains[name][1], rest)
        elif (verb, kind) == ("delete", "chain"):
            assert not chains[name][1], f"deleting a non-empty chain {name}"
            del chains[name]
        else:
            raise AssertionError(f"unexpected command {line!r}")
    out = []
    for t in old:
        sets, chains = state[t.family]
        out.append(
            Table(
                t.family,
                t.name,
                {k: (v[0], ", ".join(elements[(t.family, k)])) for k, v in sets.items()},
                {k: (v[0], tuple(v[1])) for k, v in chains.items()},
            )
        )
    return out[0], out[1]


def _same_tables(a: tuple[Table, Table], b: tuple[Table, Table]) -> bool:
    # Order of chains/sets inside a table is not part of its meaning.
    return all(
        (x.family, x.name, dict(x.sets), dict(x.chains))
        == (y.family, y.name, dict(y.sets), dict(y.chains))
        for x, y in zip(a, b, strict=True)
    )


def apply_ofctl(table: dict[tuple[int, int, str], str], mods: list[str]) -> None:
    """Run flow-mods (``add``/``delete_strict`` as :func:`ovs_render.diff` writes them)."""
    for mod in mods:
        verb, _, text = mod.partition(" ")
        head, _, actions = text.partition(",actions=")
        fields = head.split(",")
        cookie = fields[0]
        assert cookie.startswith(f"cookie={ovs_render.COOKIE:#x}"), mod
        tbl, prio = int(fields[1].split("=")[1]), int(fields[2].split("=")[1])
        key = (tbl, prio, ",".join(fields[3:]))
        if verb == "add":
            table[key] = actions
        elif verb == "delete_strict":
            assert key in table, f"deleting a flow that is not there: {mod}"
            del table[key]
        else:
            raise AssertionError(mod)


# -- change sequences -------------------------------------------------------------------------


@st.composite
def changes(draw: st.DrawFn) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(
            st.sampled_from(("rules", "port-groups", "port-ips", "security", "remove", "add"))
        )
        gid = draw(st.sampled_from(GROUPS))
        if kind == "rules":
            rs = draw(st.lists(rules(0), max_size=4))
            uniq: dict[tuple[object, ...], Rule] = {}
            for i, r in enumerate(rs):
                uniq.setdefault(r.key(), Rule(**{**r.__dict__, "id": f"r{i}"}))
            out.append((kind, SecurityGroup(id=gid, rules=tuple(uniq.values()))))
        elif kind == "port-groups":
            groups = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=2))
            out.append((kind, (draw(st.integers(0, 9)), tuple(groups))))
        elif kind == "port-ips":
            out.append((kind, (draw(st.integers(0, 9)), draw(st.integers(40, 60)))))
        elif kind in ("remove", "security"):
            out.append((kind, draw(st.integers(0, 9))))
        else:
            out.append((kind, (draw(st.integers(0, 9)), draw(st.sampled_from(("n1", "n2"))))))
    return out


def _apply_change(
    ports: dict[str, Port], groups: dict[str, SecurityGroup], change: tuple[str, Any]
) -> None:
    kind, arg = change
    ids = sorted(ports)
    if kind == "rules":
        groups[arg.id] = arg
    elif kind in ("port-groups", "port-ips", "remove", "security") and ids:
        pid = ids[(arg if kind in ("remove", "security") else arg[0]) % len(ids)]
        p = ports[pid]
        if kind == "remove":
            del ports[pid]
        elif kind == "security":  # port security toggled (off: no groups, no pairs)
            on = not p.port_security
            ports[pid] = Port(
                **{**p.__dict__, "port_security": on, "groups": (), "allowed_address_pairs": ()}
            )
        elif kind == "port-groups" and p.port_security:
            ports[pid] = Port(**{**p.__dict__, "groups": arg[1]})
        elif kind == "port-ips":
            pairs = (AddressPair(ipaddress.ip_network(f"10.0.1.{arg[1]}/32")),)
            if p.port_security:
                ports[pid] = Port(**{**p.__dict__, "allowed_address_pairs": pairs})
    elif kind == "add":
        n, network = arg
        pid = f"q{n}"
        if pid not in ports:
            ports[pid] = Port(
                id=pid,
                device=f"e{n}",
                network=network,
                zone=1 if network == "n1" else 2,
                mac=f"02:00:00:00:01:{n + 1:02x}",
                fixed_ips=(ip(f"10.0.0.{20 + n}"),),
                groups=(GROUPS[n % len(GROUPS)],),
            )


@settings(max_examples=150, deadline=None)
@given(world=worlds(), steps=st.lists(changes(), min_size=1, max_size=4))
def test_deltas_applied_to_the_old_state_equal_a_full_compile_of_the_new(
    world: tuple[list[Port], dict[str, SecurityGroup]], steps: list[list[tuple[str, Any]]]
) -> None:
    port_list, group_map = world
    ports = {p.id: p for p in port_list}
    groups = dict(group_map)
    compiler = Compiler()
    nft = NftRenderer()
    program = compiler.compile(ports.values(), groups)
    assert program == compile_program(ports.values(), groups)
    tables = {n: build_tables(program, b, nft.tags(program, n)) for n, b in BINDINGS.items()}
    ofports = {f"d{i}": i + 1 for i in range(5)} | {f"e{i}": 20 + i for i in range(10)}
    bridges = {n: ovs_render.BridgeFlows() for n in BINDINGS}
    switch: dict[str, dict[tuple[int, int, str], str]] = {}
    for n, bf in bridges.items():
        on = {p.device: ofports[p.device] for p in program.ports if p.network == n}
        bf.update(program, on)
        switch[n] = {f.key: f.actions for f in bf.flows()}
    for step in steps:
        for change in step:
            _apply_change(ports, groups, change)
        before = program
        program = compiler.compile(ports.values(), groups)
        fresh = compile_program(ports.values(), groups)
        assert program == fresh
        # Unchanged ports keep their filter object (what lets the renderers skip them).
        moved = delta(before, program)
        for p in program.ports:
            if p.port not in moved.ports:
                old = before.port(p.port)
                assert old is p or old == p
        for n, b in BINDINGS.items():
            new_tables = build_tables(program, b, nft.tags(program, n))
            old_tables = tables[n]
            if old_tables is not None and new_tables is not None:
                text = render_diff(old_tables, new_tables)
                if text is not None:
                    assert _same_tables(apply_nft(old_tables, text), new_tables)
            tables[n] = new_tables
            on = {p.device: ofports[p.device] for p in program.ports if p.network == n}
            apply_ofctl(switch[n], bridges[n].update(program, on))
            fresh_ids = ovs_render.ConjIds()
            full = ovs_render.render(fresh, on, fresh_ids)
            # Conjunction ids may differ from a fresh allocator's; compare with them renamed.
            mine = bridges[n].conj
            assert _canon(switch[n], mine) == _canon({f.key: f.actions for f in full}, fresh_ids)
            assert {f.key: f.actions for f in bridges[n].flows()} == switch[n]


_CONJ = re.compile(r"conjunction\((\d+),|conj_id=(\d+)")


def _canon(
    table: dict[tuple[int, int, str], str], conj: ovs_render.ConjIds
) -> set[tuple[int, int, str, str]]:
    """The table with each conjunction id replaced by the clause it stands for (two
    allocators may number the same clauses differently)."""
    name = {str(v): repr(k) for k, v in conj.ids.items()}

    def sub(hit: re.Match[str]) -> str:
        if hit.group(1) is not None:
            return f"conjunction({name[hit.group(1)]},"
        return f"conj_id={name[hit.group(2)]}"

    out = set()
    for (t, p, m), a in table.items():
        actions = _CONJ.sub(sub, a)
        if actions.startswith("conjunction("):
            actions = ",".join(sorted(actions.split("),")))
        out.add((t, p, _CONJ.sub(sub, m), actions))
    return out


def test_a_rule_change_recompiles_only_the_ports_of_that_group() -> None:
    a = SecurityGroup(id="a", rules=(Rule(id="r", direction="ingress", protocol=6),))
    b = SecurityGroup(id="b", rules=(Rule(id="r", direction="ingress", protocol=17),))
    ports = [
        Port(
            id=f"p{i}",
            device=f"d{i}",
            network="n",
            zone=1,
            mac=f"02:00:00:00:00:{i + 1:02x}",
            fixed_ips=(ip(f"10.0.0.{i + 1}"),),
            groups=("a",) if i % 2 else ("b",),
        )
        for i in range(6)
    ]
    compiler = Compiler()
    one = compiler.compile(ports, [a, b])
    b2 = SecurityGroup(id="b", rules=(*b.rules, Rule(id="s", direction="ingress", protocol=1)))
    two = compiler.compile(ports, [a, b2])
    assert two == compile_program(ports, [a, b2])
    moved = delta(one, two)
    assert moved.ports == {"p0", "p2", "p4"}
    assert not moved.sets
    for before, after in zip(one.ports, two.ports, strict=True):
        assert (before is after) == (before.port not in moved.ports)
    # OpenFlow: only those ports' flows are in the bundle.
    ofports = {p.device: i + 1 for i, p in enumerate(ports)}
    bf = ovs_render.BridgeFlows()
    bf.update(one, ofports)
    mods = bf.update(two, ofports)
    assert mods
    assert all(any(f"reg5={n}," in m for n in (1, 3, 5)) for m in mods), mods


def test_a_member_change_touches_only_that_set_and_its_conjunction_flows() -> None:
    web = SecurityGroup(
        id="web",
        rules=(Rule(id="r", direction="ingress", protocol=6, remote_group="cli"),),
    )
    cli = SecurityGroup(id="cli")
    other = SecurityGroup(id="other", rules=(Rule(id="r", direction="ingress", protocol=17),))

    def port(i: int, groups: tuple[str, ...], addr: int) -> Port:
        return Port(
            id=f"p{i}",
            device=f"d{i}",
            network="n",
            zone=1,
            mac=f"02:00:00:00:00:{i + 1:02x}",
            fixed_ips=(ip(f"10.0.0.{addr}"),),
            groups=groups,
        )

    ports = [port(0, ("web",), 1), port(1, ("cli",), 2), port(2, ("other",), 3)]
    compiler = Compiler()
    one = compiler.compile(ports, [web, cli, other])
    # The client's address changes: the set of group cli changes, and so do the port itself
    # and the web port's conjunction member flows; the unrelated port is the same object.
    ports[1] = port(1, ("cli",), 9)
    two = compiler.compile(ports, [web, cli, other])
    moved = delta(one, two)
    assert moved.sets == {"rg_cli_1_4"}
    assert moved.ports == {"p1"}
    assert two.ports[2] is one.ports[2]
    ofports = {"d0": 1, "d1": 2, "d2": 3}
    bf = ovs_render.BridgeFlows()
    bf.update(one, ofports)
    mods = bf.update(two, ofports)
    assert not any("reg5=3," in m for m in mods)
    web_mods = [m for m in mods if "reg5=1," in m]
    assert web_mods
    assert all("nw_src=10.0.0.2" in m or "nw_src=10.0.0.9" in m for m in web_mods), web_mods
    # nftables: the set is refilled; no clause chain and no chain of the web port changes
    # (the moved port's own source set, the host-to-port address map and the routed-in zone
    # rule, which name the port's address, do).
    nft = NftRenderer()
    b = Binding("n", "br")
    before = build_tables(one, b, nft.tags(one, "n"))
    after = build_tables(two, b, nft.tags(two, "n"))
    assert before is not None
    assert after is not None
    text = render_diff(before, after)
    assert text is not None
    assert "flush set inet fesg_n rg_cli_1_4" in text
    touched = {line.split(" ")[4] for line in text.splitlines() if " chain " in line}
    assert touched == {"net_out", "zroute"}, text
    assert "flush set bridge fesg_n p2_src4" in text


def test_flow_kinds() -> None:
    # Flow identities from the per-port renders never collide with the common flows.
    common = {f.key for f in ovs_render.common_flows()}
    p = compile_program(
        [
            Port(
                id="p",
                device="d",
                network="n",
                zone=1,
                mac="02:00:00:00:00:01",
                fixed_ips=(ip("10.0.0.1"),),
            )
        ],
        [],
    ).ports[0]
    mine = {f.key for f in ovs_render.port_flows(p, 1, {}, ovs_render.ConjIds())}
    assert not common & mine
    assert all(isinstance(f, Flow) for f in ovs_render.common_flows())
