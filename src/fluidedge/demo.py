"""``fluidedge demo``: the main job on the embedded default (README's first command).

It brings the lab up with the S1 segment left to the TOF ("tof" mode), starts a fluidedge
daemon whose TOF sits on the lab's host namespace, registers a demo service (a service IP the
UEs use, mapped to the lab's edge app), and makes every UE browse both the service and the PDN
while a live table shows the learned tunnels, the services and their counters, and what each
UE got back. Ctrl-C or ``--duration`` ends it; everything is torn down on the way out (daemon,
lab namespaces, temporary state), even on errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fluidedge.tof.launch import TofDaemon

DEMO_SERVICE_IP = "198.18.50.1"
DEMO_SERVICE_NAME = "demo-edge"


@dataclass
class UeTraffic:
    """What one UE asked and got back (updated by its traffic thread)."""

    name: str
    address: str
    edge_ok: int = 0
    pdn_ok: int = 0
    failures: int = 0
    last_edge: str = ""
    last_pdn: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _traffic(lab: Any, ue: UeTraffic, pdn: str, stop: threading.Event) -> None:
    """HTTP to the service (offloaded to the edge app) and to the PDN (through the core)."""
    while not stop.is_set():
        for target, edge in ((DEMO_SERVICE_IP, True), (pdn, False)):
            try:
                result = lab.run(ue.name, ["curl", "-s", "-m", "2", f"http://{target}/"], timeout=5)
                body = result.stdout.strip() if result.returncode == 0 else ""
            except subprocess.TimeoutExpired:
                body = ""
            with ue.lock:
                if not body:
                    ue.failures += 1
                elif edge:
                    ue.edge_ok += 1
                    ue.last_edge = body
                else:
                    ue.pdn_ok += 1
                    ue.last_pdn = body
        stop.wait(0.5)


def _render(client: Any, ues: list[UeTraffic], started: float, lab_prefix: str) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    from fluidedge.tof.cli import tunnels_table

    try:
        services = client.get("/service")
        tunnels = client.get("/tunnels")
        stats = client.get("/stats")
    except Exception as exc:
        return Panel(f"daemon not answering: {exc}")
    svc = Table("service", "serviceIP", "applicationIP", "↑ pkts", "↓ pkts", title="services")
    for s in services:
        c = stats["services"].get(s["name"], {})
        svc.add_row(
            s["name"],
            s["serviceIP"],
            s["applicationIP"],
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
    header = (
        f"fluidedge demo — lab '{lab_prefix}' with the TOF in the S1 segment "
        f"({time.monotonic() - started:.0f}s)  ·  Ctrl-C to stop"
    )
    return Group(
        Panel(header),
        svc,
        tunnels_table(tunnels),
        traffic,
        f"[dim]{line}  drops={drops}  io={stats.get('io', {})}[/dim]",
    )


def run_demo(duration: float | None, prefix: str, refresh: float = 0.5) -> int:
    """The demo; returns the exit code (0 when UEs got answers from the edge app)."""
    from rich.console import Console
    from rich.live import Live

    from fluidedge.lab.lab import Lab
    from fluidedge.tof.launch import TofDaemon, lab_tof_section, s1_pairs, wait_s1_ready

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    daemon: TofDaemon | None = None
    lab: Any = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    ues: list[UeTraffic] = []
    interrupted = False

    def on_term(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        console.print(f"[bold]Bringing the lab '{prefix}' up in tof mode...[/bold]")
        lab = Lab.up(prefix=prefix, mode="tof")
        app_ip = str(next(iter(lab.apps.values())))
        daemon = TofDaemon(lab_tof_section(lab))
        console.print(f"Starting the fluidedge daemon (API {daemon.url}/docs)...")
        daemon.start()
        client = daemon.client
        wait_s1_ready(client, s1_pairs(lab))
        service = {"name": DEMO_SERVICE_NAME, "serviceIP": DEMO_SERVICE_IP, "applicationIP": app_ip}
        client.post("/service", service)
        console.print(f"Registered service {DEMO_SERVICE_IP} -> edge app {app_ip}")
        ues = [UeTraffic(name, str(address)) for name, address in lab.ues.items()]
        pdn = str(lab.pdn_address)
        for ue in ues:
            thread = threading.Thread(target=_traffic, args=(lab, ue, pdn, stop), daemon=True)
            thread.start()
            threads.append(thread)
        started = time.monotonic()
        with Live(
            _render(client, ues, started, prefix), console=console, refresh_per_second=4
        ) as live:
            while duration is None or time.monotonic() - started < duration:
                time.sleep(refresh)
                live.update(_render(client, ues, started, prefix))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop.set()
        for thread in threads:
            thread.join(timeout=6)
        if daemon is not None:
            daemon.cleanup()
        if lab is not None:
            lab.down()
        console.print("\n[bold]Demo torn down: daemon stopped, lab removed.[/bold]")
    edge = sum(u.edge_ok for u in ues)
    core = sum(u.pdn_ok for u in ues)
    console.print(f"UE requests answered by the edge app: {edge}; by the PDN: {core}")
    if interrupted and not ues:
        return 130
    return 0 if edge > 0 and core > 0 else 1


def register(app: typer.Typer) -> None:
    """Add ``fluidedge demo``."""

    @app.command("demo")
    def demo_command(
        duration: Annotated[
            float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
        ] = None,
        prefix: Annotated[str, typer.Option(help="Lab namespace prefix.")] = "demo",
    ) -> None:
        """Lab + TOF + a demo service: watch UE traffic being offloaded to the edge, live."""
        if os.geteuid() != 0:
            raise typer.BadParameter("the demo creates network namespaces: run it as root")
        raise typer.Exit(run_demo(duration, prefix))
