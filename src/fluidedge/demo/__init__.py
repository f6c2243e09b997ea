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
it). ``--static-app`` maps the service to the lab's static edge app ``app1`` instead;
``--on-demand`` registers the service on demand (docs/superfluid.md): each UE's first request
creates its own instance. ``--chain`` puts a service function chain between the TOF and the
instance (:mod:`~fluidedge.demo.chain`, docs/chains.md): a vFirewall dropping one UE, then a
counter. ``--mec`` runs the ME platform too (:mod:`~fluidedge.demo.mec`, docs/me-platform.md):
the example producer and consumer apps are deployed through ``POST /v1/apps``, the producer's
traffic rule offloads the service to it, and the consumer discovers and calls it over Mp1.

Modules: this one orchestrates (lab, daemon, instance, service, UE traffic, teardown);
:mod:`~fluidedge.demo.model` holds what it tracks; :mod:`~fluidedge.demo.view` renders it.

Ctrl-C or ``--duration`` ends it; everything is torn down on the way out, even on errors: the
instance is deleted, the daemon stopped, the pool shells purged (the instance manager keeps them
over a graceful stop by design), the lab removed; then the demo checks that no container, cgroup,
process or lab namespace is left and says so.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fluidedge.demo.model import (
    DAEMON_START_S,
    DEMO_HOST_INDEX,
    DEMO_INSTANCE,
    DEMO_SERVICE_IP,
    DEMO_SERVICE_NAME,
    DEMO_TEMPLATE,
    ON_DEMAND_DELETE,
    ON_DEMAND_PAUSE,
    ON_DEMAND_POOL_PREFIX,
    ON_DEMAND_POOL_START,
    EdgeApp,
    Leftovers,
    UeTraffic,
)

if TYPE_CHECKING:
    from types import FrameType

    from rich.console import Console

    from fluidedge.core.client import Client
    from fluidedge.lab.lab import Lab
    from fluidedge.tof.launch import TofDaemon


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


def _traffic(lab: Lab, ue: UeTraffic, app: EdgeApp, pdn: str, stop: threading.Event) -> None:
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


def _instance_address(lab: Lab) -> ipaddress.IPv4Interface:
    """A static address for the instance on the lab's apps subnet, not used by a static app."""
    subnet = ipaddress.ip_network(lab.apps_subnet)
    taken = {ipaddress.ip_address(a) for a in lab.apps.values()} | {lab.apps_gateway}
    for index in range(DEMO_HOST_INDEX, subnet.num_addresses - 1):
        address = subnet[index]
        if address not in taken:
            return ipaddress.IPv4Interface(f"{address}/{subnet.prefixlen}")
    raise typer.BadParameter(f"no free address in the lab's apps subnet {subnet}")


def _create_template(
    client: Client, console: Console, pool_wait: float, pool_size: int | None = None
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


def _on_demand_service(
    client: Client, lab: Lab, console: Console, pool_wait: float = 30.0
) -> EdgeApp:
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


def _create_instance(
    client: Client, lab: Lab, console: Console, pool_wait: float = 30.0
) -> EdgeApp:
    """The built-in ``httpd`` template plugged into the apps network, then one instance of it.

    WHY a derived template: the built-in one has no interfaces (a request can only address the
    interfaces its template declares); the network attachment is part of the shell, prepared
    ahead of time. The demo waits for the pool to hold a shell so the instance comes from the
    warm path (the product's point); if it does not fill in time, the answer says ``cold``.
    """
    from fluidedge.demo.view import breakdown_table

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
    console.print(breakdown_table(timing))
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


def _runc_containers(runc_root: Path) -> list[dict[str, Any]]:
    from fluidedge.instances.runc import Runc

    if not runc_root.exists():
        return []
    return Runc(runc_root).list()


def _still_running(pids: list[int], timeout: float = 3.0) -> list[int]:
    """The pids still running (not zombies) after ``timeout``: a SIGKILLed ``runc init``
    stays a zombie until init reaps it, which is not a leftover."""
    from fluidedge.linux.procfs import process_running

    deadline = time.monotonic() + timeout
    while True:
        running = [pid for pid in pids if pid > 0 and process_running(pid)]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def _teardown(
    daemon: TofDaemon | None,
    lab: Lab | None,
    prefix: str,
    console: Console,
    earlier: list[dict[str, Any]] | None = None,
) -> Leftovers:
    """Delete the instance, stop the daemon, purge, remove the lab; then look for leftovers
    (also of the ``earlier`` containers: those the caller saw before deleting some itself)."""
    from fluidedge.instances.runc import leftover_cgroups
    from fluidedge.linux import netns

    console.print()
    found = Leftovers()
    if daemon is not None:
        runc_root = daemon.state_dir / "instances" / "runc"
        running = daemon.process is not None and daemon.process.poll() is None
        if "instances" in daemon.parts and daemon.process is not None and not running:
            console.print(
                "[yellow]the daemon is not running: the purge deletes the instances[/yellow]"
            )
        try:
            if "instances" in daemon.parts and running:
                for view in daemon.client.get("/v1/instances"):
                    daemon.client.delete(f"/v1/instances/{view['name']}")
                    console.print(f"Instance {view['name']} deleted")
        except Exception as exc:  # the purge below still destroys it
            console.print(f"[yellow]instance delete failed ({exc}); the purge will do it[/yellow]")
        try:
            before = _runc_containers(runc_root)
        except Exception:
            before = []
        known = {c["id"] for c in before}
        before += [c for c in earlier or [] if c["id"] not in known]
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
    chain: bool = False,
    mec: bool = False,
) -> int:
    """The demo; returns the exit code (0 when UEs got answers from the edge app and the PDN,
    with ``mec`` the consumer app got the producer's answer, and the teardown left nothing
    behind)."""
    from rich.console import Console, Group
    from rich.live import Live

    from fluidedge.core.client import Client
    from fluidedge.demo import chain as chain_mod
    from fluidedge.demo import mec as mec_mod
    from fluidedge.demo.view import print_leftovers, render
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
    lab: Lab | None = None
    app: EdgeApp | None = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    ues: list[UeTraffic] = []
    interrupted = False
    leftovers = Leftovers()
    demo_chain: chain_mod.DemoChain | None = None
    chain_seen: dict[str, int] = {}
    demo_mec: mec_mod.DemoMec | None = None

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        console.print(f"[bold]Bringing the lab '{prefix}' up in tof mode...[/bold]")
        lab = Lab.up(prefix=prefix, mode="tof")
        parts: dict[str, dict[str, object]] = (
            {} if static_app else {"instances": lab_instances_section(lab)}
        )
        if chain:
            parts = {"instances": chain_mod.instances_section(lab, prefix), "chains": {}}
        if mec:
            demo_mec = mec_mod.DemoMec(mec_mod.choose_platform(prefix))
            parts = mec_mod.parts(lab, demo_mec.platform)
        daemon = TofDaemon(lab_tof_section(lab), parts=parts)
        console.print(
            f"Starting the fluidedge daemon, parts {', '.join(['tof', *parts])} "
            f"(API {daemon.url}/docs)..."
        )
        # Its own process group: a Ctrl-C reaches the demo only, whose teardown deletes the
        # instance through the API, then stops the daemon.
        daemon.start(timeout=DAEMON_START_S * (2 if mec else 1), own_group=True)
        client = daemon.client
        console.print(_gui_hint(daemon))
        if static_app:
            name, address = next(iter(lab.apps.items()))
            app = EdgeApp(address=str(address), port=80, marker=f"edge-app {name} {address}")
        elif on_demand:
            app = _on_demand_service(client, lab, console)
        elif demo_mec is not None:
            # A client of its own: an app is deployed cold (no warm pool), which may take
            # longer than the default 30 s on a loaded host.
            slow = Client(daemon.url, daemon.token, timeout=180.0)
            try:
                app = mec_mod.deploy(slow, lab, demo_mec, console)
            finally:
                slow.close()
        else:
            if chain:
                demo_chain = chain_mod.link(lab, daemon.state_dir, prefix)
            app = _create_instance(client, lab, console)
        wait_s1_ready(client, s1_pairs(lab))
        if not on_demand and demo_mec is None:
            service = {
                "name": DEMO_SERVICE_NAME,
                "serviceIP": DEMO_SERVICE_IP,
                "applicationIP": app.address,
            }
            client.post("/service", service)
            target = f"instance {app.instance}" if app.instance else "the lab's edge app"
            console.print(f"Registered service {DEMO_SERVICE_IP} -> {target} {app.address}")
        if demo_chain is not None:
            # After the service: its classifier takes the service's traffic from the start.
            chain_mod.build(client, lab, demo_chain, app.view, console)
        ues = [UeTraffic(name, str(address)) for name, address in lab.ues.items()]
        pdn = str(lab.pdn_address)
        for ue in ues:
            thread = threading.Thread(target=_traffic, args=(lab, ue, app, pdn, stop), daemon=True)
            thread.start()
            threads.append(thread)
        started = time.monotonic()
        shown_app = app

        def view() -> Any:
            shown = render(client, ues, started, prefix, shown_app)
            try:
                if demo_chain is not None:
                    return Group(shown, chain_mod.table(client, demo_chain))
                if demo_mec is not None:
                    return Group(shown, mec_mod.table(client, demo_mec))
            except Exception as exc:
                return Group(shown, f"{'chain' if chain else 'ME platform'}: not answering ({exc})")
            return shown

        with Live(view(), console=console, refresh_per_second=4) as live:
            while duration is None or time.monotonic() - started < duration:
                time.sleep(refresh)
                live.update(view())
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
        if demo_chain is not None and daemon is not None:
            try:
                chain_seen = chain_mod.seen(daemon.client)
            except Exception as exc:
                console.print(f"[yellow]chain counters not read: {exc}[/yellow]")
        earlier: list[dict[str, Any]] = []
        if demo_mec is not None and daemon is not None and daemon.process is not None:
            console.print()
            mec_mod.read_consumer(demo_mec, timeout=3.0)
            # The apps' containers, checked after the teardown like the others.
            with contextlib.suppress(Exception):
                earlier = _runc_containers(daemon.state_dir / "instances" / "runc")
            mec_mod.delete_apps(daemon.client, demo_mec, console)
        try:
            leftovers = _teardown(daemon, lab, prefix, console, earlier)
            if demo_mec is not None:
                platform = demo_mec.platform
                leftovers.host_checked = [
                    f"bridge {platform.bridge}",
                    f"nft tables of network {platform.network}",
                ]
                leftovers.host = mec_mod.host_leftovers(platform, console)
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
        what = "daemon stopped" if static_app else "instance deleted, pool purged, daemon stopped"
        if mec:
            what = "apps and their instances deleted, pool purged, daemon stopped"
        console.print(f"\n[bold]Demo torn down: {what}, lab removed.[/bold]")
    edge = sum(u.edge_ok for u in ues)
    expected = sum(u.edge_expected for u in ues)
    core = sum(u.pdn_ok for u in ues)
    source = f"instance '{app.instance}'" if app and app.instance else "the lab's app1"
    if app is not None and app.on_demand:
        source = "on-demand instances"
    if demo_mec is not None and app is not None:
        source = f"the producer app's instance '{app.instance}'"
    console.print(
        f"UE requests answered by the edge: {edge} (by {source}: {expected}); by the PDN: {core}"
    )
    if chain_seen:
        fw, ctr = chain_mod.FIREWALL, chain_mod.COUNTER
        blocked = demo_chain.blocked if demo_chain is not None else None
        console.print(
            f"Chain: {fw} was handed {chain_seen[f'{fw} requests']} requests and "
            f"{chain_seen[f'{fw} replies']} replies and dropped {chain_seen['firewall dropped']}"
            f"{f' (from {blocked})' if blocked else ''}; {ctr} was handed "
            f"{chain_seen[f'{ctr} requests']} requests and {chain_seen[f'{ctr} replies']} replies"
        )
    reached = True
    if demo_mec is not None:
        reached = mec_mod.summary(console, demo_mec)
    print_leftovers(console, leftovers)
    if interrupted and not ues:
        return 130
    return 0 if expected > 0 and core > 0 and reached and leftovers.clean else 1


def register(app: typer.Typer) -> None:
    """Add ``fluidedge demo``."""

    @app.command("demo")
    def demo_command(  # noqa: PLR0917 (typer options are parameters)
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
        chain: Annotated[
            bool,
            typer.Option(
                "--chain",
                help="Steer the service's offloaded traffic through a service function chain "
                "(docs/chains.md): TOF -> vFirewall (drops the last UE) -> counter -> instance.",
            ),
        ] = False,
        mec: Annotated[
            bool,
            typer.Option(
                "--mec",
                help="Run the ME platform too (docs/me-platform.md): deploy the example "
                "producer and consumer apps over its API; the producer's traffic rule offloads "
                "the service to it, the consumer discovers and calls it over Mp1.",
            ),
        ] = False,
    ) -> None:
        """Lab + TOF + instance manager: an edge app instance serves UE traffic, live."""
        if os.geteuid() != 0:
            raise typer.BadParameter("the demo creates network namespaces: run it as root")
        if sum((static_app, on_demand, chain, mec)) > 1:
            raise typer.BadParameter(
                "--static-app, --on-demand, --chain and --mec exclude each other"
            )
        raise typer.Exit(
            run_demo(
                duration, prefix, static_app=static_app, on_demand=on_demand, chain=chain, mec=mec
            )
        )
