"""``fluidedge service add/list/update/delete`` and ``fluidedge tunnels``: the API, on the shell.

They talk to a running daemon (its Unix socket or ``FLUIDEDGE_URL``; the token file or
``FLUIDEDGE_TOKEN``: see :mod:`fluidedge.core.client`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

from fluidedge.core.paging import MAX_PAGE

# ``tunnels`` fetches the bearers this many at a time (``GET /tunnels?limit=``): an EPC's
# 100,000 bearers come in answers of bounded size, each costing only its own rows.
TUNNELS_PAGE = 500


def _client() -> Any:
    from fluidedge.core.client import Client

    return Client()


def _target(row: dict[str, Any]) -> str:
    """The applicationIP, or how an on-demand service gets its instances."""
    spec = row.get("onDemand")
    if not spec:
        return str(row["applicationIP"])
    return (
        f"on demand: {spec['template']} ({spec['policy']}, max {spec['maxInstances']}, "
        f"pause {spec['idlePause']:g} s, delete {spec['idleDelete']:g} s)"
    )


def _print_services(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "serviceIP", "applicationIP", title="services")
    for row in rows:
        table.add_row(row["name"], row["serviceIP"], _target(row))
    Console().print(table)


def _print_show(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return
    import time

    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"{row['name']}: {row['serviceIP']} -> {_target(row)}")
    if not row.get("onDemand"):
        return
    table = Table("instance", "UE", "address", "state", "created", "paused", title="instances")
    for inst in row["instances"]:

        def clock(at: float | None) -> str:
            return "-" if at is None else time.strftime("%H:%M:%S", time.localtime(at))

        table.add_row(
            inst["instance"],
            inst["ue"] or "(shared)",
            inst["address"],
            inst["state"],
            clock(inst["createdAt"]),
            clock(inst["pausedAt"]),
        )
    console.print(table)
    events = ", ".join(f"{k} {v}" for k, v in sorted(row["events"].items())) or "none"
    console.print(f"events: {events}")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add ``service`` (sub-commands) and ``tunnels`` to the root app."""
    service = typer.Typer(help="Offloaded services (the TOF Service API, seed §4.3.4.1).")
    app.add_typer(service, name="service")

    @service.command("list")
    def list_command(as_json: JsonOpt = False) -> None:
        """List all configured services."""
        _print_services(_client().get("/service"), as_json)

    @service.command("add")
    def add_command(
        name: Annotated[str, typer.Argument(help="Service name.")],
        service_ip: Annotated[str, typer.Argument(help="IP the UEs address.")],
        application_ip: Annotated[
            str | None, typer.Argument(help="IP of the edge application (or --template).")
        ] = None,
        *,
        template: Annotated[
            str | None,
            typer.Option(help="On demand: create instances of this template on first packets."),
        ] = None,
        policy: Annotated[str, typer.Option(help="On demand: shared or per-ue.")] = "shared",
        max_instances: Annotated[int, typer.Option(help="On demand: per-ue bound.")] = 16,
        idle_pause: Annotated[float, typer.Option(help="On demand: T1, s idle to pause.")] = 30.0,
        idle_delete: Annotated[
            float, typer.Option(help="On demand: T2, s paused to delete.")
        ] = 300.0,
        address_pool: Annotated[
            str | None, typer.Option(help="On demand: addresses for the instances (a network).")
        ] = None,
        gateway: Annotated[str | None, typer.Option(help="On demand: their gateway.")] = None,
        interface: Annotated[str, typer.Option(help="On demand: template interface.")] = "eth0",
        as_json: JsonOpt = False,
    ) -> None:
        """Configure a new service: UE traffic to SERVICE_IP goes to APPLICATION_IP, or, with
        --template, to instances created on demand (docs/superfluid.md)."""
        body: dict[str, Any] = {"name": name, "serviceIP": service_ip}
        if application_ip is not None:
            body["applicationIP"] = application_ip
        if template is not None:
            spec: dict[str, Any] = {
                "template": template,
                "policy": policy,
                "maxInstances": max_instances,
                "idlePause": idle_pause,
                "idleDelete": idle_delete,
                "addressPool": address_pool or "",
                "interface": interface,
            }
            if gateway is not None:
                spec["gateway"] = gateway
            body["onDemand"] = spec
        _print_services([_client().post("/service", body)], as_json)

    @service.command("show")
    def show_command(
        name: Annotated[str, typer.Argument(help="Name or serviceIP of the service.")],
        as_json: JsonOpt = False,
    ) -> None:
        """One service; for an on-demand one, its instances (UE, address, state) and events."""
        _print_show(_client().get(f"/service/{name}/instances"), as_json)

    @service.command("update")
    def update_command(
        name: Annotated[str, typer.Argument(help="Service to update.")],
        service_ip: Annotated[str | None, typer.Option(help="New serviceIP.")] = None,
        application_ip: Annotated[str | None, typer.Option(help="New applicationIP.")] = None,
        new_name: Annotated[str | None, typer.Option(help="Rename the service.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Update a service (unspecified fields keep their value)."""
        client = _client()
        current = next((s for s in client.get("/service") if s["name"] == name), None)
        if current is None:
            raise typer.BadParameter(f"no service named {name!r}")
        body = {
            "name": new_name or current["name"],
            "serviceIP": service_ip or current["serviceIP"],
        }
        if application_ip is not None or "onDemand" not in current:
            body["applicationIP"] = application_ip or current["applicationIP"]
        else:
            body["onDemand"] = current["onDemand"]
        _print_services([client.put(f"/service/{name}", body)], as_json)

    @service.command("delete")
    def delete_command(
        name: Annotated[str, typer.Argument(help="Name or serviceIP of the service.")],
    ) -> None:
        """Delete a service by name or by service IP."""
        deleted = _client().delete(f"/service/{name}")
        typer.echo(f"deleted {deleted['name']} ({deleted['serviceIP']})")

    _register_intercepts(app)

    @app.command("tunnels")
    def tunnels_command(
        as_json: JsonOpt = False,
        purge: Annotated[bool, typer.Option(help="Forget all learned tunnels.")] = False,
        events: Annotated[
            bool, typer.Option("--events", help="The bearer event log (learned, retired, why).")
        ] = False,
        limit: Annotated[
            int | None,
            typer.Option(min=1, max=MAX_PAGE, help="One page of at most this many, by marker."),
        ] = None,
        after: Annotated[
            str | None,
            typer.Option(help="Only bearers whose marker sorts after this one (see --limit)."),
        ] = None,
    ) -> None:
        """Learned GTP-U bearers (eNB, SGW, UE, TEIDs, counters): all of them, fetched a page
        at a time, unless --limit (one page; the next one's --after on stderr)."""
        client = _client()
        try:  # closed once read: a walk of pages holds its connection until then
            if purge:
                typer.echo(f"purged {client.delete('/tunnels')['purged']} bearers")
                return
            rows = client.get("/tunnels/events") if events else _tunnels(client, limit, after)
        finally:
            client.close()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console

        Console().print(events_table(rows) if events else tunnels_table(rows))


def _tunnels(client: Any, limit: int | None, after: str | None) -> list[dict[str, Any]]:
    """The rows ``tunnels`` prints: every page (:data:`TUNNELS_PAGE` at a time, following the
    ``Link`` headers), or with ``limit`` one page, the next page's marker told on stderr (as
    ``fluidedge instance ls`` does)."""
    path = "/tunnels" + (f"?{urlencode({'after': after})}" if after else "")
    if limit is None:
        return [row for page in client.pages(path, TUNNELS_PAGE) for row in page]
    rows, more = client.page(f"{path}{'&' if after else '?'}limit={limit}")
    if more is not None:
        marker = parse_qs(urlsplit(more).query).get("after", [""])[0]
        typer.echo(f"more: --after {marker}", err=True)
    return list(rows)


def tunnels_table(rows: list[dict[str, Any]]) -> Any:
    """A rich table of ``GET /tunnels`` rows (also used by the demo)."""
    import time

    from rich.table import Table

    table = Table(
        "UE",
        "eNB",
        "SGW",
        "UL TEID",
        "DL TEID",
        "UL pkts",
        "DL pkts",
        "offload ↑/↓",
        "idle",
        title="tunnels",
    )
    now = time.time()
    for t in sorted(rows, key=lambda r: (r["ue"], r["enb"])):

        def teid(v: Any) -> str:
            return "?" if v is None else f"0x{v:08x}"

        table.add_row(
            t["ue"],
            t["enb"],
            t["sgw"],
            teid(t["uplinkTEID"]),
            teid(t["downlinkTEID"]),
            str(t["uplink"]["packets"]),
            str(t["downlink"]["packets"]),
            f"{t['offloaded']['up']}/{t['offloaded']['down']}",
            f"{max(0.0, now - t['lastSeen']):.1f}s",
        )
    return table


def events_table(rows: list[dict[str, Any]]) -> Any:
    """A rich table of ``GET /tunnels/events`` rows, oldest first."""
    import time

    from rich.table import Table

    table = Table("#", "time", "event", "reason", "UE", "eNB", "SGW", "UL/DL TEID", "detail")
    for e in rows:
        at = e.get("at")
        when = time.strftime("%H:%M:%S", time.localtime(at)) if isinstance(at, float) else "-"
        teids = "/".join(
            "?" if e.get(k) is None else f"0x{e[k]:08x}" for k in ("uplinkTEID", "downlinkTEID")
        )
        detail = f"replaced by {e['replacedBy']}" if e.get("replacedBy") else ""
        if "bearers" in e:
            detail = f"{e['bearers']} bearers"
        table.add_row(
            str(e.get("id", "")),
            when,
            str(e.get("event", "")),
            str(e.get("reason", "")),
            str(e.get("ue", "")),
            str(e.get("enb", "")),
            str(e.get("sgw", "")),
            teids if "ue" in e else "",
            detail,
        )
    return table


def _register_intercepts(app: typer.Typer) -> None:
    """``fluidedge intercept add/list/show/delete``: lawful intercept (admin token only)."""
    intercept = typer.Typer(
        help="Lawful-intercept mirrors of offloaded traffic (admin only; docs/accounting.md)."
    )
    app.add_typer(intercept, name="intercept")

    def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            target, dest = row["target"], row["destination"]
            bearer = f" (eNB {target['enb'] or 'any'}, SGW {target['sgw'] or 'any'})"
            where = dest["interface"] or dest["pcap"]
            stats = row.get("stats") or {}
            typer.echo(
                f"{row['name']}: UE {target['ue']}{bearer} -> {where} [{row.get('state', '-')}]"
                + (f" copied {stats['copied']} dropped {stats['dropped']}" if stats else "")
                + (f" error: {row['error']}" if row.get("error") else "")
            )

    @intercept.command("add")
    def add_command(
        name: Annotated[str, typer.Argument(help="Name of the intercept.")],
        ue: Annotated[str, typer.Argument(help="Target UE address.")],
        *,
        enb: Annotated[str | None, typer.Option(help="Only the bearer to this eNB.")] = None,
        sgw: Annotated[str | None, typer.Option(help="Only the bearer to this SGW.")] = None,
        interface: Annotated[str | None, typer.Option(help="Mirror interface.")] = None,
        pcap: Annotated[
            str | None, typer.Option(help="pcap file (a name in STATE_DIR/intercepts, or a path).")
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Start copying UE's offloaded packets (both directions, decapsulated)."""
        body = {
            "name": name,
            "target": {"ue": ue, "enb": enb, "sgw": sgw},
            "destination": {"interface": interface, "pcap": pcap},
        }
        _print([_client().post("/v1/intercepts", body)], as_json)

    @intercept.command("list")
    def list_command(as_json: JsonOpt = False) -> None:
        """The intercepts and their counters."""
        _print(_client().get("/v1/intercepts"), as_json)

    @intercept.command("show")
    def show_command(
        name: Annotated[str, typer.Argument(help="Name of the intercept.")],
        as_json: JsonOpt = False,
    ) -> None:
        """One intercept."""
        _print([_client().get(f"/v1/intercepts/{name}")], as_json)

    @intercept.command("delete")
    def delete_command(name: Annotated[str, typer.Argument(help="Name of the intercept.")]) -> None:
        """Stop an intercept (at once)."""
        _client().delete(f"/v1/intercepts/{name}")
        typer.echo(f"stopped {name}")
