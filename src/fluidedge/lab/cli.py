"""Command-line interface of the lab part: ``fluidedge lab up/down/status/exec/gen/plan/list``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

PREFIX_ENV = "FLUIDEDGE_LAB_PREFIX"

PrefixOpt = Annotated[
    str,
    typer.Option(
        "--prefix",
        "-p",
        envvar=PREFIX_ENV,
        help="Name prefix of the lab's namespaces (several labs can coexist).",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Lab description (TOML); default: the embedded one."),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode",
        "-m",
        help="S1 insertion: bridge (works without a TOF), tof (unbridged), routed (kernel IP).",
    ),
]

FlavourOpt = Annotated[
    str | None,
    typer.Option(
        "--flavour",
        "-f",
        help="emulated (the lab's own eNBs/SGWs) or osmo (sgsnemu UEs + osmo-ggsn, real GTP).",
    ),
]


def _console() -> Console:
    """A console wide enough for the lab tables even when output is not a terminal."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    return console


lab_app = typer.Typer(
    name="lab",
    help="The lab: an S1-U mobile network in network namespaces (UEs, eNBs, SGWs, PDN, apps).",
    no_args_is_help=True,
)


def _mode(value: str | None) -> str | None:
    from fluidedge.lab.config import MODES
    from fluidedge.lab.errors import LabConfigError

    if value is not None and value not in MODES:
        raise LabConfigError(f"--mode must be one of {', '.join(MODES)}, not {value!r}")
    return value


def _flavour(value: str | None) -> str | None:
    from fluidedge.lab.config import FLAVOURS
    from fluidedge.lab.errors import LabConfigError

    if value is not None and value not in FLAVOURS:
        raise LabConfigError(f"--flavour must be one of {', '.join(FLAVOURS)}, not {value!r}")
    return value


@lab_app.command("up")
def up_cmd(
    prefix: PrefixOpt = "fe",
    config: ConfigOpt = None,
    mode: ModeOpt = None,
    flavour: FlavourOpt = None,
    pdu_session_container: Annotated[
        bool | None,
        typer.Option(
            "--pdu-session-container/--no-pdu-session-container",
            help="Add a PDU Session Container (UL, QFI) to every uplink G-PDU.",
        ),
    ] = None,
) -> None:
    """Bring the lab up (refuses if a lab with this prefix is already up) and summarise it."""
    import time

    from fluidedge.lab.lab import Lab
    from fluidedge.lab.live import bearer_table, snapshot

    started = time.monotonic()
    lab = Lab.up(
        config,
        prefix=prefix,
        mode=_mode(mode),  # type: ignore[arg-type]
        pdu_session_container=pdu_session_container,
        flavour=_flavour(flavour),  # type: ignore[arg-type]
    )
    took = time.monotonic() - started
    console = _console()
    console.print(
        f"lab [bold]{lab.prefix}[/] up in {took:.2f}s: {lab.flavour}, mode {lab.mode}, "
        f"{len(lab.namespaces)} namespaces, {len(lab.processes())} processes"
    )
    console.print(
        f"fluidedge host namespace {lab.host_ns}: S1 eNB side {lab.enb_side_if}, "
        f"SGW side {lab.sgw_side_if}, apps {lab.apps_bridge} {lab.apps_gateway}/"
        f"{lab.config.apps.subnet.prefixlen}"
    )
    console.print(
        f"PDN {lab.pdn_address} (http :{lab.pdn_http_port}, udp echo :{lab.pdn_udp_echo_port}), "
        f"DNS {lab.pdn_dns_address}:{lab.config.pdn.dns.port}"
        + "".join(f", app {n} {a}" for n, a in lab.apps.items())
    )
    console.print(bearer_table(lab, snapshot(lab)))
    first = next(iter(lab.ues))
    console.print(
        f"try: fluidedge lab exec -p {lab.prefix} {first} -- curl -s http://{lab.pdn_address}/"
    )


@lab_app.command("down")
def down_cmd(
    prefix: PrefixOpt = "fe",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also remove <prefix>-* namespaces when no state record exists."
        ),
    ] = False,
) -> None:
    """Remove every namespace, interface, process and file of the lab (idempotent)."""
    from fluidedge.lab import build

    removed = build.down(prefix, force=force)
    if removed:
        typer.echo(f"lab {prefix} down: removed {len(removed)} objects")
        for item in removed:
            typer.echo(f"  {item}")
    else:
        typer.echo(f"lab {prefix}: nothing to remove")


@lab_app.command("status")
def status_cmd(
    prefix: PrefixOpt = "fe",
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Namespaces, processes (alive?), bearers with TEIDs, traffic counters."""
    import json
    from dataclasses import asdict

    from fluidedge.lab.lab import Lab
    from fluidedge.lab.live import render, snapshot
    from fluidedge.lab.live import watch as watch_fn

    lab = Lab.attach(prefix)
    if as_json:
        snap = snapshot(lab)
        doc = asdict(snap)
        doc["bearers"] = [b.as_json() for b in lab.bearers]
        typer.echo(json.dumps(doc, indent=1, default=str))
        return
    if watch:
        console = _console()
        header = f"watching lab {lab.prefix} (Ctrl-C to stop)"
        watch_fn(lab, renderer=render, console=console, header=header)
        return
    _console().print(render(lab))


@lab_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_cmd(
    node: Annotated[str, typer.Argument(help="ue1, enb1, sgw1, pdn, host, app1, ran, core...")],
    cmd: Annotated[list[str], typer.Argument(help="Command and arguments (after --).")],
    prefix: PrefixOpt = "fe",
) -> None:
    """Run CMD inside NODE's namespace (argv passed through, no shell): lab exec ue1 -- ping X."""
    from fluidedge.lab.lab import Lab

    lab = Lab.attach(prefix)
    argv = lab.argv(node, cmd)
    os.execvp(argv[0], argv)  # noqa: S606 - argv list, no shell; replaces this process


@lab_app.command("gen")
def gen_cmd(
    *,
    prefix: PrefixOpt = "fe",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Directory for the pcaps.")
    ] = None,
    offer: Annotated[
        bool, typer.Option("--offer/--no-offer", help="Replay each pcap and count arrivals.")
    ] = True,
    pps: Annotated[
        int | None, typer.Option("--pps", help="Offered rate (packets/s); default: max.")
    ] = None,
    duration: Annotated[float, typer.Option("--duration", "-d", help="Seconds per run.")] = 2.0,
    tool: Annotated[
        str,
        typer.Option(
            "--tool", help="auto (trafgen at max rate, tcpreplay when paced), trafgen, tcpreplay."
        ),
    ] = "auto",
) -> None:
    """Write GTP-U pcaps from the bearers (plain, with PDU Session Container; 64, 256, 1024,
    1518 bytes, iMIX) and, unless --no-offer, offer each into S1 and count what arrives."""
    from rich.table import Table

    from fluidedge.lab.gen import Generator
    from fluidedge.lab.lab import Lab

    lab = Lab.attach(prefix)
    gen = Generator(lab)
    streams = gen.write_streams(out)
    console = _console()
    table = Table(title=f"lab {prefix}: GTP-U streams", title_justify="left")
    for col in ("stream", "frames", "frame sizes", "pcap"):
        table.add_column(col)
    cols = ("sent", "received", "rx pps", "loss %")
    if offer:
        for col in cols:
            table.add_column(col, justify="right")
    for s in streams:
        row = [s.name, str(s.frames), s.sizes_text, str(s.pcap)]
        if offer:
            r = gen.offer(s.pcap, pps=pps, duration=duration, tool=tool)  # type: ignore[arg-type]
            row += [str(r.sent), str(r.received), f"{r.pps:,.0f}", f"{r.loss * 100:.2f}"]
        table.add_row(*row)
    console.print(table)


@lab_app.command("plan")
def plan_cmd(
    prefix: PrefixOpt = "fe",
    config: ConfigOpt = None,
    mode: ModeOpt = None,
    flavour: FlavourOpt = None,
) -> None:
    """Print what `up` would create (namespaces, ip batches, processes) without doing it."""
    import sys

    from fluidedge.lab.config import load, with_overrides
    from fluidedge.lab.state import run_dir
    from fluidedge.lab.topology import Topology, validate_prefix

    flv = _flavour(flavour)
    cfg = with_overrides(
        load(config, flavour=flv),  # type: ignore[arg-type]
        mode=_mode(mode),  # type: ignore[arg-type]
        flavour=flv,  # type: ignore[arg-type]
    )
    plan = Topology(cfg, validate_prefix(prefix)).plan(sys.executable, str(run_dir(prefix)))
    for ns in plan.namespaces:
        typer.echo(f"# namespace {ns}")
        for key, value in plan.sysctls[ns]:
            typer.echo(f"sysctl {key}={value}")
        for line in plan.create[ns]:
            typer.echo(f"ip -n {ns} {line}")
        for key, value in plan.link_sysctls[ns]:
            typer.echo(f"sysctl {key}={value}")
        for line in plan.configure[ns]:
            typer.echo(f"ip -n {ns} {line}")
        for line in plan.configure6[ns]:
            typer.echo(f"ip -6 -n {ns} {line}")
    for ns, dev in plan.tx_offload_off:
        typer.echo(f"ip netns exec {ns} ethtool -K {dev} tx off")
    for p in plan.processes:
        typer.echo(
            f"process {p.name} (stage {p.stage}): ip netns exec {p.netns} python -m {p.module}"
        )
    for ns, cmds in plan.finish.items():
        for line in cmds:
            typer.echo(f"ip -n {ns} {line}  # once every process is ready")


@lab_app.command("reattach")
def reattach_cmd(
    ue: Annotated[str, typer.Argument(help="The UE to detach and attach again (ue1...).")],
    prefix: PrefixOpt = "fe",
    crash: Annotated[
        bool,
        typer.Option(
            "--crash",
            help="Kill its sgsnemu (no Delete PDP Context: the GGSN keeps the old context).",
        ),
    ] = False,
) -> None:
    """Osmo flavour: detach a UE (Delete PDP Context, or --crash) and attach it again."""
    from fluidedge.lab.lab import Lab

    lab = Lab.attach(prefix)
    old = lab.ues.get(ue)
    new = lab.reattach(ue, delete=not crash)
    typer.echo(f"{ue}: {old} -> {new}")


@lab_app.command("list")
def list_cmd() -> None:
    """Labs recorded on this machine."""
    from fluidedge.lab.state import LabState, list_prefixes

    for prefix in list_prefixes():
        state = LabState.load(prefix)
        if state is not None:
            typer.echo(f"{prefix}\t{state.phase}\t{state.mode}\t{len(state.namespaces)} namespaces")


def register(app: typer.Typer) -> None:
    """Add ``fluidedge lab ...``."""
    app.add_typer(lab_app)
