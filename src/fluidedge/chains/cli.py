"""``fluidedge chain ...``: port chains, port pairs, groups and flow classifiers.

Talks to a running daemon (its Unix socket or ``FLUIDEDGE_URL``; the token file or
``FLUIDEDGE_TOKEN``: see :mod:`fluidedge.core.client`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from fluidedge.core.cliparts import JsonOpt, call, print_table


def _show(obj: Any, as_json: bool, columns: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(obj, indent=2))
        return
    rows = obj if isinstance(obj, list) else [obj]
    print_table("", columns, [[_cell(r.get(c)) for c in columns] for r in rows])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _ports(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    low, sep, high = text.partition("-")
    try:
        return int(low), int(high if sep else low)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: want PORT or MIN-MAX") from None


TapOpt = Annotated[
    bool, typer.Option("--tap", help="a passive tap (mirror): a copy, the chain goes on")
]


def register(app: typer.Typer) -> None:
    chain = typer.Typer(help="Service function chains (networking-sfc's model) on ovs networks.")
    app.add_typer(chain, name="chain")
    pair = typer.Typer(help="Port pairs: a function instance's ingress and egress ports.")
    group = typer.Typer(help="Port pair groups: interchangeable instances of one function.")
    classifier = typer.Typer(help="Flow classifiers: the traffic a chain takes.")
    chain.add_typer(pair, name="pair")
    chain.add_typer(group, name="group")
    chain.add_typer(classifier, name="classifier")

    chain_cols = ["id", "chain_id", "port_pair_groups", "flow_classifiers", "symmetric",
                  "failure_policy"]  # fmt: skip

    @chain.command("ls")
    def chain_ls(as_json: JsonOpt = False) -> None:
        """List port chains."""
        _show(call("GET", "/v1/chains"), as_json, chain_cols)

    @chain.command("show")
    def chain_show(name: str, as_json: JsonOpt = False) -> None:
        """Show a port chain."""
        _show(call("GET", f"/v1/chains/{name}"), as_json, chain_cols)

    @chain.command("create")
    def chain_create(  # noqa: PLR0917 (typer options are parameters)
        name: str,
        groups: Annotated[list[str], typer.Option("--group", "-g", help="in order")],
        classifiers: Annotated[list[str] | None, typer.Option("--classifier", "-c")] = None,
        one_way: Annotated[bool, typer.Option("--one-way", help="replies bypass")] = False,
        fail_open: Annotated[bool, typer.Option("--fail-open", help="skip empty groups")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a port chain: groups in order, the classifiers whose traffic takes them."""
        body = {
            "id": name,
            "port_pair_groups": groups,
            "flow_classifiers": classifiers or [],
            "symmetric": not one_way,
            "failure_policy": "open" if fail_open else "closed",
        }
        _show(call("POST", "/v1/chains", body), as_json, chain_cols)

    @chain.command("rm")
    def chain_rm(name: str) -> None:
        """Delete a port chain."""
        call("DELETE", f"/v1/chains/{name}")

    pair_cols = ["id", "ingress", "egress", "kind"]

    @pair.command("ls")
    def pair_ls(as_json: JsonOpt = False) -> None:
        """List port pairs."""
        _show(call("GET", "/v1/chains/port-pairs"), as_json, pair_cols)

    @pair.command("create")
    def pair_create(
        name: str,
        ingress: str,
        egress: Annotated[str | None, typer.Argument(help="absent: one-armed")] = None,
        routed: Annotated[
            bool, typer.Option("--routed", help="an L3 function (routes what it gets)")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a port pair from a function instance's switch ports."""
        body = {
            "id": name,
            "ingress": ingress,
            "egress": egress or ingress,
            "kind": "routed" if routed else "transparent",
        }
        _show(call("POST", "/v1/chains/port-pairs", body), as_json, pair_cols)

    @pair.command("flows")
    def pair_flows(name: str, as_json: JsonOpt = False) -> None:
        """The flows the switch handed a function, each with its packets."""
        got = call("GET", f"/v1/chains/port-pairs/{name}/flows")
        cols = ["position", "protocol", "src", "sport", "dst", "dport", "packets", "bytes"]
        _show(got if as_json else got["flows"], as_json, cols)

    @pair.command("rm")
    def pair_rm(name: str) -> None:
        """Delete a port pair."""
        call("DELETE", f"/v1/chains/port-pairs/{name}")

    group_cols = ["id", "port_pairs", "tap_enabled"]

    @group.command("ls")
    def group_ls(as_json: JsonOpt = False) -> None:
        """List port pair groups."""
        _show(call("GET", "/v1/chains/port-pair-groups"), as_json, group_cols)

    @group.command("create")
    def group_create(
        name: str,
        pairs: list[str],
        tap: TapOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a port pair group of interchangeable function instances."""
        body = {"id": name, "port_pairs": pairs, "tap_enabled": tap}
        _show(call("POST", "/v1/chains/port-pair-groups", body), as_json, group_cols)

    @group.command("set")
    def group_set(
        name: str,
        pairs: list[str],
        tap: TapOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Replace a group's members (existing flows keep theirs while it stays); the whole
        group: say --tap again for a tap."""
        body = {"id": name, "port_pairs": pairs, "tap_enabled": tap}
        _show(call("PUT", f"/v1/chains/port-pair-groups/{name}", body), as_json, group_cols)

    @group.command("rm")
    def group_rm(name: str) -> None:
        """Delete a port pair group."""
        call("DELETE", f"/v1/chains/port-pair-groups/{name}")

    fc_cols = ["id", "ethertype", "protocol", "source_ip_prefix", "destination_ip_prefix",
               "destination_port_range_min", "destination_port_range_max",
               "logical_source_port", "logical_destination_port", "tof_service"]  # fmt: skip

    @classifier.command("ls")
    def fc_ls(as_json: JsonOpt = False) -> None:
        """List flow classifiers."""
        _show(call("GET", "/v1/chains/flow-classifiers"), as_json, fc_cols)

    @classifier.command("create")
    def fc_create(  # noqa: PLR0917 (typer options are parameters)
        name: str,
        source_port: Annotated[str, typer.Option("--from", help="logical source switch port")],
        destination_port: Annotated[str, typer.Option("--to", help="logical destination")],
        ethertype: Annotated[str, typer.Option("--ethertype")] = "IPv4",
        protocol: Annotated[str | None, typer.Option("--protocol")] = None,
        src: Annotated[str | None, typer.Option("--src", help="source prefix")] = None,
        dst: Annotated[str | None, typer.Option("--dst", help="destination prefix")] = None,
        sport: Annotated[str | None, typer.Option("--sport", help="PORT or MIN-MAX")] = None,
        dport: Annotated[str | None, typer.Option("--dport", help="PORT or MIN-MAX")] = None,
        tof_service: Annotated[
            str | None, typer.Option("--tof-service", help="a TOF service's offloaded traffic")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create a flow classifier."""
        slow, shigh = _ports(sport)
        dlow, dhigh = _ports(dport)
        body = {
            "id": name,
            "logical_source_port": source_port,
            "logical_destination_port": destination_port,
            "ethertype": ethertype,
            "protocol": protocol,
            "source_ip_prefix": src,
            "destination_ip_prefix": dst,
            "source_port_range_min": slow,
            "source_port_range_max": shigh,
            "destination_port_range_min": dlow,
            "destination_port_range_max": dhigh,
            "tof_service": tof_service,
        }
        body = {k: v for k, v in body.items() if v is not None}
        _show(call("POST", "/v1/chains/flow-classifiers", body), as_json, fc_cols)

    @classifier.command("rm")
    def fc_rm(name: str) -> None:
        """Delete a flow classifier."""
        call("DELETE", f"/v1/chains/flow-classifiers/{name}")

    template_cols = ["name", "image", "description"]

    @chain.command("template")
    def function_template(  # noqa: PLR0917 (typer options are parameters)
        kind: Annotated[str, typer.Argument(help="counter, firewall, router or tap")],
        name: str,
        network: Annotated[str, typer.Option("--network", help="an ovs instance network")],
        rule: Annotated[
            list[str] | None, typer.Option("--rule", help="firewall: an nftables rule")
        ] = None,
        ingress_route: Annotated[
            list[str] | None, typer.Option("--ingress-route", help="router: prefix out of eth0")
        ] = None,
        egress_route: Annotated[
            list[str] | None, typer.Option("--egress-route", help="router: prefix out of eth1")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Create the template of a built-in function (isolated legs: eth0 and eth1; a tap
        has eth0 only)."""
        body = {
            "kind": kind,
            "name": name,
            "network": network,
            "rules": rule or [],
            "ingress_routes": ingress_route or [],
            "egress_routes": egress_route or [],
        }
        _show(call("POST", "/v1/chains/function-templates", body), as_json, template_cols)

    firewall = typer.Typer(help="Running vFirewall instances: their live rules.")
    chain.add_typer(firewall, name="firewall")

    @firewall.command("show")
    def firewall_show(instance: str, as_json: JsonOpt = False) -> None:
        """What a running vFirewall's kernel holds: its rules with their counters."""
        got = call("GET", f"/v1/chains/firewalls/{instance}/rules")
        typer.echo(json.dumps(got, indent=2) if as_json else got["ruleset"], nl=as_json)

    @firewall.command("set")
    def firewall_set(
        instance: str,
        rule: Annotated[list[str] | None, typer.Option("--rule", help="an nftables rule")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Replace a running vFirewall's rules (in order; none: accept all), without
        restarting it: one nftables transaction."""
        got = call("PUT", f"/v1/chains/firewalls/{instance}/rules", {"rules": rule or []})
        typer.echo(json.dumps(got, indent=2) if as_json else got["ruleset"], nl=as_json)
