"""How the demo shows itself: the live table, the instantiation breakdown, the teardown report.

Rendering only (rich renderables from what the daemon answers and what the UEs got); the
orchestration in :mod:`fluidedge.demo` decides what happens and when.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from fluidedge.demo.model import (
    DEMO_INSTANCE,
    DEMO_SERVICE_IP,
    PHASES,
    EdgeApp,
    Leftovers,
    UeTraffic,
)
from fluidedge.tof.cli import tunnels_table

if TYPE_CHECKING:
    from fluidedge.core.client import Client


def instances_table(client: Client) -> tuple[Table, str]:
    """The demo's instance (and any other one) as the daemon reports it now, plus its pool."""
    table = Table(
        "instance",
        "template",
        "address",
        "state",
        "path",
        "instantiation ms",
        "CPUs",
        "pid",
        title="edge app instances",
    )
    for view in client.get("/v1/instances"):
        addresses = [a.split("/")[0] for i in view["interfaces"] for a in i["addresses"]]
        table.add_row(
            view["name"],
            view["template"],
            " ".join(addresses),
            view["state"],
            view["path"],
            f"{view['timing']['total']:.1f}",
            ",".join(str(c) for c in view["cpus"]),
            str(view["pid"] or "-"),
        )
    pools = "  ".join(
        f"{p['template']}: ready {p['ready']}, preparing {p['preparing']}, consumed {p['consumed']}"
        for p in client.get("/v1/pools")
    )
    return table, f"[dim]pools  {pools}[/dim]"


def render(
    client: Client, ues: list[UeTraffic], started: float, lab_prefix: str, app: EdgeApp
) -> RenderableType:
    """The live table: the instance and its pool, services, tunnels, UEs, counters."""
    try:
        services = client.get("/service")
        tunnels = client.get("/tunnels")
        stats = client.get("/stats")
        instances: tuple[RenderableType, ...] = (
            instances_table(client) if app.instance or app.on_demand else ()
        )
    except Exception as exc:
        return Panel(f"daemon not answering: {exc}")
    svc = Table("service", "serviceIP", "applicationIP", "↑ pkts", "↓ pkts", title="services")
    for s in services:
        c = stats["services"].get(s["name"], {})
        svc.add_row(
            s["name"],
            s["serviceIP"],
            s.get("applicationIP") or f"on demand ({s['onDemand']['policy']})",
            str(c.get("upPackets", 0)),
            str(c.get("downPackets", 0)),
        )
    traffic = Table("UE", "edge answers", "PDN answers", "failed", "last edge reply", title="UEs")
    for ue in ues:
        with ue.lock:
            traffic.add_row(
                f"{ue.name} {ue.address}",
                str(ue.edge_ok),
                str(ue.pdn_ok),
                str(ue.failures),
                ue.last_edge[:60],
            )
    counters = stats["counters"]
    keys = (
        "bearers_learned",
        "flows_created",
        "pinger_requests_sent",
        "pinger_replies_swallowed",
        "switched_non_gtp",
        "switched_outer_fragment",
    )
    line = "  ".join(f"{k}={counters.get(k, 0)}" for k in keys)
    drops = sum(stats["drops"].values())
    target = f"instance '{app.instance}'" if app.instance else "the lab's app1"
    if app.on_demand:
        target = "instances created on demand"
    header = (
        f"fluidedge demo — lab '{lab_prefix}' with the TOF in the S1 segment; service "
        f"{DEMO_SERVICE_IP} -> {target} {app.address}{app.url_suffix} "
        f"({time.monotonic() - started:.0f}s)  ·  Ctrl-C to stop"
    )
    return Group(
        Panel(header),
        *instances,
        svc,
        tunnels_table(tunnels),
        traffic,
        f"[dim]{line}  drops={drops}  io={stats.get('io', {})}[/dim]",
    )


def breakdown_table(timing: dict[str, Any]) -> Table:
    """The per-phase instantiation breakdown of an API answer's ``timing``."""
    breakdown = Table(
        "phase", "ms", "covers", title=f"instantiation of '{DEMO_INSTANCE}' (API response)"
    )
    for phase, covers in PHASES.items():
        breakdown.add_row(phase, f"{timing[phase]:.2f}", covers)
    return breakdown


def print_leftovers(console: Console, found: Leftovers) -> None:
    """What the teardown check found, as the tests and the reader expect it."""
    checked = " ".join(found.containers) or "-"
    console.print(f"Containers checked after teardown: {checked}")
    if found.clean:
        checked = ", ".join(found.host_checked)
        host = f"; none of the host's {checked}" if checked else ""
        console.print(
            f"Nothing left behind: 0 runc containers, 0 cgroups, 0 processes of "
            f"{len(found.containers)} container(s); 0 lab namespaces{host}"
        )
        return
    host = f", host {found.host}" if found.host else ""
    console.print(
        f"[red]LEFT BEHIND: runc {found.runc}, cgroups {found.cgroups}, "
        f"processes {found.processes}, namespaces {found.namespaces}{host}[/red]"
    )
