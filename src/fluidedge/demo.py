"""``fluidedge demo``: the main job on the embedded default (README's first command).

It shows the whole product on one machine: it brings the lab up with the S1 segment left to the
TOF ("tof" mode) and starts one fluidedge daemon running both parts, the TOF on the lab's host
namespace and the instance manager with an ``apps`` network on the lab's apps bridge. Through the
API it creates an HTTP edge app instance (the built-in ``httpd`` template plugged into that
network, from the warm pool; it runs from the ``busybox`` image, nothing of the host's files)
with a static address, prints the instantiation's per-phase
breakdown, registers a demo service (a service IP the UEs use) mapped to the instance, and makes
every UE browse both the service and the PDN while a live table shows the instance, the learned
tunnels, the services and their counters, and what each UE got back (the instance's page names
it). ``--static-app`` maps the service to the lab's static edge app ``app1`` instead.

Ctrl-C or ``--duration`` ends it; everything is torn down on the way out, even on errors: the
instance is deleted, the daemon stopped, the pool shells purged (the instance manager keeps them
over a graceful stop by design), the lab removed; then the demo checks that no container, cgroup,
process or lab namespace is left and says so.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fluidedge.tof.launch import TofDaemon

DEMO_SERVICE_IP = "198.18.50.1"
DEMO_SERVICE_NAME = "demo-edge"
DEMO_TEMPLATE = "edge-httpd"
DEMO_INSTANCE = "edge1"
DEMO_HOST_INDEX = 20  # the instance's address: the 20th host of the lab's apps subnet
ON_DEMAND_POOL_START = 64  # --on-demand: instances take the apps subnet's .64/28
ON_DEMAND_POOL_PREFIX = 28
ON_DEMAND_PAUSE = 5.0  # s idle before an on-demand instance is paused (T1)
ON_DEMAND_DELETE = 20.0  # s paused before it is deleted (T2)
PHASES = {  # the VIM instantiation phases of the API's timing breakdown (docs/instances.md)
    "accept": "request validated: template, name, address checks",
    "placement": "CPU choice and admission control",
    "shell": "prepared shell taken from the pool (cold: created now)",
    "config": "assignment and files written, per-request cgroup limits, store",
    "network": "addresses and routes set through the shell's netlink socket",
    "start": "shell's process released (exec.fifo): the workload execs",
    "ready": "readiness check (httpd: TCP port listening)",
    "total": "sum, server-side",
}


def _gui_hint(daemon: TofDaemon) -> str:
    """Where the web GUI is and how to log in: the token goes to a 0600 file, not the screen."""
    token_file = daemon.workdir / "token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(daemon.token + "\n")
    return (
        f"Web GUI: [bold]{daemon.url}/ui/[/bold] (log in with the API token in {token_file}: "
        f"cat it and paste it into the login page)"
    )


@dataclass
class EdgeApp:
    """Where the demo service points, and how to recognise its answers."""

    address: str
    port: int
    marker: str  # a reply from this app contains it
    instance: str | None = None  # the instance's name (None: the lab's static app)
    view: dict[str, Any] = field(default_factory=dict)  # POST /v1/instances answer
    on_demand: bool = False  # instances created per UE on its first packet

    @property
    def url_suffix(self) -> str:
        return "" if self.port == 80 else f":{self.port}"


@dataclass
class UeTraffic:
    """What one UE asked and got back (updated by its traffic thread)."""

    name: str
    address: str
    edge_ok: int = 0
    edge_expected: int = 0  # edge answers that came from the demo's edge app
    pdn_ok: int = 0
    failures: int = 0
    last_edge: str = ""
    last_pdn: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _traffic(lab: Any, ue: UeTraffic, app: EdgeApp, pdn: str, stop: threading.Event) -> None:
    """HTTP to the service (offloaded to the edge app) and to the PDN (through the core)."""
    service = f"{DEMO_SERVICE_IP}{app.url_suffix}"
    while not stop.is_set():
        for target, edge in ((service, True), (pdn, False)):
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
                    ue.edge_expected += app.marker in body
                    ue.last_edge = body
                else:
                    ue.pdn_ok += 1
                    ue.last_pdn = body
        stop.wait(0.5)


def _instances_table(client: Any) -> tuple[Any, str]:
    """The demo's instance (and any other one) as the daemon reports it now, plus its pool."""
    from rich.table import Table

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


def _render(
    client: Any, ues: list[UeTraffic], started: float, lab_prefix: str, app: EdgeApp
) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    from fluidedge.tof.cli import tunnels_table

    try:
        services = client.get("/service")
        tunnels = client.get("/tunnels")
        stats = client.get("/stats")
        instances: tuple[Any, ...] = (
            _instances_table(client) if app.instance or app.on_demand else ()
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


def _instance_address(lab: Any) -> ipaddress.IPv4Interface:
    """A static address for the instance on the lab's apps subnet, not used by a static app."""
    subnet = ipaddress.ip_network(lab.apps_subnet)
    taken = {ipaddress.ip_address(a) for a in lab.apps.values()} | {lab.apps_gateway}
    for index in range(DEMO_HOST_INDEX, subnet.num_addresses - 1):
        address = subnet[index]
        if address not in taken:
            return ipaddress.IPv4Interface(f"{address}/{subnet.prefixlen}")
    raise typer.BadParameter(f"no free address in the lab's apps subnet {subnet}")


def _create_template(
    client: Any, console: Any, pool_wait: float, pool_size: int | None = None
) -> dict[str, Any]:
    """Template ``edge-httpd`` (the built-in httpd on the apps network); waits for its pool.

    Returns the built-in template it derives from."""
    builtin: dict[str, Any] = client.get("/v1/templates/httpd")
    spec = {
        **builtin,
        "name": DEMO_TEMPLATE,
        "description": "the built-in httpd on the lab's apps network (fluidedge demo)",
        "interfaces": [{"name": "eth0", "network": "apps"}],
    }
    if pool_size is not None:
        spec["pool"] = {**builtin.get("pool", {}), "size": pool_size}
    made = client.post("/v1/templates", spec)
    image = client.get(f"/v1/images/{made['image']}")
    console.print(
        f"Template {DEMO_TEMPLATE}: {' '.join(made['command'])} from image {image['name']} "
        f"(rootfs {image['rootfs'][:19]}, {image['size_bytes'] / 2**20:.1f} MiB; pool of shells)"
    )
    # Wait until every pool is full and idle: the demo's shell is ready, and the background
    # prepare work (runc create is CPU-heavy) does not compete with the request being timed.
    deadline = time.monotonic() + pool_wait
    ready = 0
    while time.monotonic() < deadline:
        pools = client.get("/v1/pools")
        ready = sum(int(p["ready"]) for p in pools if p["template"] == DEMO_TEMPLATE)
        if ready > 0 and all(p["preparing"] == 0 and p["ready"] >= p["target"] for p in pools):
            break
        time.sleep(0.1)
    console.print(f"Pool {DEMO_TEMPLATE}: {ready} prepared shell(s) ready")
    return builtin


def _on_demand_service(client: Any, lab: Any, console: Any, pool_wait: float = 30.0) -> EdgeApp:
    """The demo service on demand (docs/superfluid.md): no instance yet; each UE's first
    request creates its own (``per-ue``) from the warm pool, idle ones are paused after
    ``ON_DEMAND_PAUSE`` s and deleted after ``ON_DEMAND_DELETE`` s more."""
    builtin = _create_template(client, console, pool_wait, pool_size=len(lab.ues))
    subnet = ipaddress.ip_network(lab.apps_subnet)
    pool = ipaddress.ip_network(f"{subnet[ON_DEMAND_POOL_START]}/{ON_DEMAND_POOL_PREFIX}")
    service = {
        "name": DEMO_SERVICE_NAME,
        "serviceIP": DEMO_SERVICE_IP,
        "onDemand": {
            "template": DEMO_TEMPLATE,
            "policy": "per-ue",
            "maxInstances": 8,
            "idlePause": ON_DEMAND_PAUSE,
            "idleDelete": ON_DEMAND_DELETE,
            "addressPool": str(pool),
            "gateway": str(lab.apps_gateway),
        },
    }
    client.post("/service", service)
    console.print(
        f"Registered service {DEMO_SERVICE_IP} on demand: template {DEMO_TEMPLATE}, one "
        f"instance per UE at {pool}, paused after {ON_DEMAND_PAUSE:g} s idle, deleted after "
        f"{ON_DEMAND_DELETE:g} s paused"
    )
    port = int(builtin["readiness"].get("port") or 80)
    return EdgeApp(address="(on demand)", port=port, marker="fluidedge instance ", on_demand=True)


def _create_instance(client: Any, lab: Any, console: Any, pool_wait: float = 30.0) -> EdgeApp:
    """The built-in ``httpd`` template plugged into the apps network, then one instance of it.

    WHY a derived template: the built-in one has no interfaces (a request can only address the
    interfaces its template declares); the network attachment is part of the shell, prepared
    ahead of time. The demo waits for the pool to hold a shell so the instance comes from the
    warm path (the product's point); if it does not fill in time, the answer says ``cold``.
    """
    from rich.table import Table

    builtin = _create_template(client, console, pool_wait)
    address = _instance_address(lab)
    request = {
        "name": DEMO_INSTANCE,
        "template": DEMO_TEMPLATE,
        "interfaces": {"eth0": {"addresses": [str(address)], "gateway": str(lab.apps_gateway)}},
    }
    wall = time.perf_counter()
    view = client.post("/v1/instances", request)
    wall_ms = (time.perf_counter() - wall) * 1000
    timing = view["timing"]
    breakdown = Table(
        "phase", "ms", "covers", title=f"instantiation of '{DEMO_INSTANCE}' (API response)"
    )
    for phase, covers in PHASES.items():
        breakdown.add_row(phase, f"{timing[phase]:.2f}", covers)
    console.print(breakdown)
    pooled = "from the warm pool" if view["path"] == "warm" else "cold path (pool was empty)"
    console.print(
        f"Instance {DEMO_INSTANCE} {view['state']} at {address.ip} ({pooled}); "
        f"{timing['total']:.2f} ms server-side, {wall_ms:.1f} ms API round trip; pid "
        f"{view['pid']}, CPUs {view['cpus']}"
    )
    port = int(builtin["readiness"].get("port") or 80)
    return EdgeApp(
        address=str(address.ip),
        port=port,
        marker=f"fluidedge instance {DEMO_INSTANCE}",
        instance=DEMO_INSTANCE,
        view=view,
    )


@dataclass
class Leftovers:
    """What the teardown check found (empty lists: nothing left)."""

    containers: list[str] = field(default_factory=list)  # ids the daemon's runc root held
    runc: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.runc or self.cgroups or self.processes or self.namespaces)


def _runc_containers(runc_root: Path) -> list[dict[str, Any]]:
    from fluidedge.instances.runc import Runc

    if not runc_root.exists():
        return []
    return Runc(runc_root).list()


def _still_running(pids: list[int], timeout: float = 3.0) -> list[int]:
    """The pids still running (not zombies) after ``timeout``: a SIGKILLed ``runc init``
    stays a zombie until init reaps it, which is not a leftover."""
    from fluidedge.instances.runc import process_running

    deadline = time.monotonic() + timeout
    while True:
        running = [pid for pid in pids if pid > 0 and process_running(pid)]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def _teardown(daemon: TofDaemon | None, lab: Any, prefix: str, console: Any) -> Leftovers:
    """Delete the instance, stop the daemon, purge, remove the lab; then look for leftovers."""
    from fluidedge.instances.runc import leftover_cgroups
    from fluidedge.linux import netns

    console.print()
    found = Leftovers()
    if daemon is not None:
        runc_root = daemon.state_dir / "instances" / "runc"
        try:
            if "instances" in daemon.parts and daemon.process is not None:
                for view in daemon.client.get("/v1/instances"):
                    daemon.client.delete(f"/v1/instances/{view['name']}")
                    console.print(f"Instance {view['name']} deleted")
        except Exception as exc:  # the purge below still destroys it
            console.print(f"[yellow]instance delete failed ({exc}); the purge will do it[/yellow]")
        try:
            before = _runc_containers(runc_root)
        except Exception:
            before = []
        found.containers = [c["id"] for c in before]
        pids = [int(c.get("pid") or 0) for c in before]
        daemon.stop()
        console.print("Daemon stopped")
        if "instances" in daemon.parts:
            try:
                console.print(f"Pool shells: {daemon.purge_instances()}")
                found.runc = [c["id"] for c in _runc_containers(runc_root)]
            except Exception as exc:
                console.print(f"[red]{exc}[/red]")
                found.runc = found.containers
            found.cgroups = [
                str(path) for cid in found.containers for path in leftover_cgroups(cid)
            ]
            found.processes = _still_running(pids)
        if found.runc:
            console.print(f"[red]state kept for inspection in {daemon.workdir}[/red]")
        else:
            daemon.cleanup(purge=False)
    if lab is not None:
        lab.down()
        console.print(f"Lab '{prefix}' removed")
    found.namespaces = [n for n in netns.list_names() if n.startswith(f"{prefix}-")]
    return found


def run_demo(
    duration: float | None,
    prefix: str,
    refresh: float = 0.5,
    *,
    static_app: bool = False,
    on_demand: bool = False,
) -> int:
    """The demo; returns the exit code (0 when UEs got answers from the edge app and the PDN,
    and the teardown left nothing behind)."""
    from rich.console import Console
    from rich.live import Live

    from fluidedge.lab.lab import Lab
    from fluidedge.tof.launch import (
        TofDaemon,
        lab_instances_section,
        lab_tof_section,
        s1_pairs,
        wait_s1_ready,
    )

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    daemon: TofDaemon | None = None
    lab: Any = None
    app: EdgeApp | None = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    ues: list[UeTraffic] = []
    interrupted = False
    leftovers = Leftovers()

    def on_term(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        console.print(f"[bold]Bringing the lab '{prefix}' up in tof mode...[/bold]")
        lab = Lab.up(prefix=prefix, mode="tof")
        parts = {} if static_app else {"instances": lab_instances_section(lab)}
        daemon = TofDaemon(lab_tof_section(lab), parts=parts)
        console.print(
            f"Starting the fluidedge daemon, parts {', '.join(['tof', *parts])} "
            f"(API {daemon.url}/docs)..."
        )
        daemon.start()
        client = daemon.client
        console.print(_gui_hint(daemon))
        if static_app:
            name, address = next(iter(lab.apps.items()))
            app = EdgeApp(address=str(address), port=80, marker=f"edge-app {name} {address}")
        elif on_demand:
            app = _on_demand_service(client, lab, console)
        else:
            app = _create_instance(client, lab, console)
        wait_s1_ready(client, s1_pairs(lab))
        if not on_demand:
            service = {
                "name": DEMO_SERVICE_NAME,
                "serviceIP": DEMO_SERVICE_IP,
                "applicationIP": app.address,
            }
            client.post("/service", service)
            target = f"instance {app.instance}" if app.instance else "the lab's edge app"
            console.print(f"Registered service {DEMO_SERVICE_IP} -> {target} {app.address}")
        ues = [UeTraffic(name, str(address)) for name, address in lab.ues.items()]
        pdn = str(lab.pdn_address)
        for ue in ues:
            thread = threading.Thread(target=_traffic, args=(lab, ue, app, pdn, stop), daemon=True)
            thread.start()
            threads.append(thread)
        started = time.monotonic()
        with Live(
            _render(client, ues, started, prefix, app), console=console, refresh_per_second=4
        ) as live:
            while duration is None or time.monotonic() - started < duration:
                time.sleep(refresh)
                live.update(_render(client, ues, started, prefix, app))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # The teardown must run to its end: a second Ctrl-C or SIGTERM would leave instances,
        # shells and namespaces behind, so both are ignored for its few seconds.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        for thread in threads:
            thread.join(timeout=6)
        try:
            leftovers = _teardown(daemon, lab, prefix, console)
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
        what = "daemon stopped" if static_app else "instance deleted, pool purged, daemon stopped"
        console.print(f"\n[bold]Demo torn down: {what}, lab removed.[/bold]")
    edge = sum(u.edge_ok for u in ues)
    expected = sum(u.edge_expected for u in ues)
    core = sum(u.pdn_ok for u in ues)
    source = f"instance '{app.instance}'" if app and app.instance else "the lab's app1"
    if app is not None and app.on_demand:
        source = "on-demand instances"
    console.print(
        f"UE requests answered by the edge: {edge} (by {source}: {expected}); by the PDN: {core}"
    )
    _print_leftovers(console, leftovers)
    if interrupted and not ues:
        return 130
    return 0 if expected > 0 and core > 0 and leftovers.clean else 1


def _print_leftovers(console: Any, found: Leftovers) -> None:
    checked = " ".join(found.containers) or "-"
    console.print(f"Containers checked after teardown: {checked}")
    if found.clean:
        console.print(
            f"Nothing left behind: 0 runc containers, 0 cgroups, 0 processes of "
            f"{len(found.containers)} container(s); 0 lab namespaces"
        )
        return
    console.print(
        f"[red]LEFT BEHIND: runc {found.runc}, cgroups {found.cgroups}, "
        f"processes {found.processes}, namespaces {found.namespaces}[/red]"
    )


def register(app: typer.Typer) -> None:
    """Add ``fluidedge demo``."""

    @app.command("demo")
    def demo_command(
        duration: Annotated[
            float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
        ] = None,
        prefix: Annotated[str, typer.Option(help="Lab namespace prefix.")] = "demo",
        static_app: Annotated[
            bool,
            typer.Option(
                "--static-app",
                help="Map the service to the lab's static edge app app1 instead of an "
                "httpd instance created through the API (no instance manager).",
            ),
        ] = False,
        on_demand: Annotated[
            bool,
            typer.Option(
                "--on-demand",
                help="Run the service on demand (docs/superfluid.md): each UE's first request "
                "creates its own instance from the warm pool; idle ones are paused, then deleted.",
            ),
        ] = False,
    ) -> None:
        """Lab + TOF + instance manager: an edge app instance serves UE traffic, live."""
        if os.geteuid() != 0:
            raise typer.BadParameter("the demo creates network namespaces: run it as root")
        if static_app and on_demand:
            raise typer.BadParameter("--static-app and --on-demand exclude each other")
        raise typer.Exit(run_demo(duration, prefix, static_app=static_app, on_demand=on_demand))
