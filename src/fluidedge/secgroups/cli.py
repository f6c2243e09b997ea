"""``fluidedge secgroup ...``: security groups, their rules and the filtered ports.

Talks to a running daemon (its Unix socket or ``FLUIDEDGE_URL``; the token file or
``FLUIDEDGE_TOKEN``: see :mod:`fluidedge.core.client`).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated, Any

import typer

from fluidedge.core.cliparts import JsonOpt, call, print_table


def _rule_text(rule: dict[str, Any]) -> list[str]:
    proto = rule.get("protocol")
    ports = ""
    if rule.get("port_range_min") is not None:
        low, high = rule["port_range_min"], rule["port_range_max"]
        ports = str(low) if low == high else f"{low}-{high}"
    elif rule.get("icmp_type") is not None:
        ports = f"type {rule['icmp_type']}" + (
            f" code {rule['icmp_code']}" if rule.get("icmp_code") is not None else ""
        )
    remote = rule.get("remote_ip_prefix") or (
        f"group {rule['remote_group']}" if rule.get("remote_group") else "any"
    )
    return [
        rule["id"],
        rule["direction"],
        rule["ethertype"],
        "any" if proto is None else str(proto),
        ports or "any",
        remote,
    ]


def parse_ports(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        return int(low), int(high if sep else low)
    except ValueError:
        raise typer.BadParameter(f"--port {text!r}: want PORT or MIN-MAX") from None


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Security groups: stateful per-port filtering (neutron's model).")
    app.add_typer(group, name="secgroup")
    rule = typer.Typer(help="Rules of a security group.")
    group.add_typer(rule, name="rule")

    @group.command("ls")
    def ls_command(as_json: JsonOpt = False) -> None:
        """List security groups."""
        groups = call("GET", "/v1/security-groups")
        if as_json:
            typer.echo(json.dumps(groups, indent=2))
            return
        print_table(
            "security groups",
            ["id", "tenant", "rules", "description"],
            [[g["id"], g["tenant"], str(len(g["rules"])), g["description"]] for g in groups],
        )

    @group.command("show")
    def show_command(group_id: str, as_json: JsonOpt = False) -> None:
        """Show a group and its rules."""
        doc = call("GET", f"/v1/security-groups/{group_id}")
        if as_json:
            typer.echo(json.dumps(doc, indent=2))
            return
        print_table(
            f"{doc['id']} ({doc['tenant']})",
            ["rule", "direction", "ethertype", "protocol", "ports/icmp", "remote"],
            [_rule_text(r) for r in doc["rules"]],
        )

    @group.command("create")
    def create_command(
        group_id: str,
        description: Annotated[str, typer.Option(help="Free text.")] = "",
        tenant: Annotated[
            str | None,
            typer.Option(help="Admin token: the tenant that owns it (its id starts TENANT-)."),
        ] = None,
    ) -> None:
        """Create an empty group (it allows nothing until rules are added)."""
        query = "?" + urllib.parse.urlencode({"tenant": tenant}) if tenant else ""
        path = "/v1/security-groups" + query
        call("POST", path, {"id": group_id, "description": description})
        typer.echo(f"created {group_id}")

    @group.command("rm")
    def rm_command(group_ids: Annotated[list[str], typer.Argument(help="Groups.")]) -> None:
        """Delete groups (refused while a port uses one or a rule names it as remote)."""
        for group_id in group_ids:
            call("DELETE", f"/v1/security-groups/{group_id}")
            typer.echo(f"deleted {group_id}")

    @rule.command("add")
    def rule_add_command(  # noqa: PLR0917 (typer maps parameters to options)
        group_id: Annotated[str, typer.Argument(help="The group.")],
        direction: Annotated[str, typer.Option(help="ingress or egress.")] = "ingress",
        ethertype: Annotated[str, typer.Option(help="IPv4 or IPv6.")] = "IPv4",
        protocol: Annotated[
            str | None, typer.Option(help="tcp, udp, icmp, icmpv6, any or a number.")
        ] = None,
        port: Annotated[str | None, typer.Option(help="PORT or MIN-MAX (tcp/udp).")] = None,
        icmp_type: Annotated[int | None, typer.Option(help="ICMP type.")] = None,
        icmp_code: Annotated[int | None, typer.Option(help="ICMP code.")] = None,
        remote_ip: Annotated[str | None, typer.Option(help="Remote IP prefix.")] = None,
        remote_group: Annotated[str | None, typer.Option(help="Remote group.")] = None,
        rule_id: Annotated[str | None, typer.Option("--id", help="Rule id.")] = None,
    ) -> None:
        """Add a rule (it allows new connections; replies need none)."""
        body: dict[str, Any] = {"direction": direction, "ethertype": ethertype}
        if protocol is not None:
            body["protocol"] = int(protocol) if protocol.isdigit() else protocol
        if port is not None:
            body["port_range_min"], body["port_range_max"] = parse_ports(port)
        for key, value in (
            ("icmp_type", icmp_type),
            ("icmp_code", icmp_code),
            ("remote_ip_prefix", remote_ip),
            ("remote_group", remote_group),
            ("id", rule_id),
        ):
            if value is not None:
                body[key] = value
        made = call("POST", f"/v1/security-groups/{group_id}/rules", body)
        typer.echo(f"added rule {made['id']} to {group_id}")

    @rule.command("rm")
    def rule_rm_command(group_id: str, rule_id: str) -> None:
        """Delete a rule (the live connections only it allowed are cut)."""
        call("DELETE", f"/v1/security-groups/{group_id}/rules/{rule_id}")
        typer.echo(f"deleted rule {rule_id} of {group_id}")

    @group.command("ports")
    def ports_command(as_json: JsonOpt = False) -> None:
        """List the filtered instance interfaces."""
        ports = call("GET", "/v1/security-groups/ports")
        if as_json:
            typer.echo(json.dumps(ports, indent=2))
            return
        print_table(
            "ports",
            ["instance", "iface", "network", "zone", "mac", "addresses", "groups"],
            [
                [
                    p["instance"],
                    p["interface"],
                    p["network"],
                    str(p["zone"]),
                    p["mac"],
                    ",".join(p["fixed_ips"]),
                    ",".join(p["groups"]) if p["port_security"] else "(port security off)",
                ]
                for p in ports
            ],
        )

    @group.command("port-set")
    def port_set_command(
        instance: str,
        iface: str,
        groups: Annotated[list[str], typer.Argument(help="The interface's groups.")],
    ) -> None:
        """Set an instance interface's groups."""
        call(
            "PUT",
            f"/v1/instances/{instance}/interfaces/{iface}/security-groups",
            {"security_groups": groups},
        )
        typer.echo(f"{instance}/{iface}: {', '.join(groups)}")
