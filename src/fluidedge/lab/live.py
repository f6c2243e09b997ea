"""What a lab is doing: status snapshot (namespaces, processes, bearers, counters) and tables.

:func:`snapshot` gathers; :func:`render` turns a snapshot into rich renderables;
:func:`live_table` is what ``fluidedge lab status --watch`` and ``fluidedge demo`` show (bearers
with their TEIDs and per-bearer counters, S1 interface counters), refreshed until Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table

from fluidedge.lab.lab import Lab, ProcessStatus
from fluidedge.linux import netns


@dataclass
class Snapshot:
    prefix: str
    mode: str
    phase: str
    namespaces: list[tuple[str, bool]]
    processes: list[ProcessStatus]
    nodes: dict[str, dict[str, Any]]
    interfaces: dict[str, dict[str, int]] = field(default_factory=dict)
    taken: float = field(default_factory=time.time)
    flavour: str = "emulated"


def interface_counters(ns: str, names: list[str] | None = None) -> dict[str, dict[str, int]]:
    """rx/tx packets/bytes/dropped/errors of interfaces in ``ns`` (``ip -s -j link``)."""
    result = subprocess.run(
        ["ip", "-n", ns, "-s", "-j", "link", "show"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if result.returncode != 0:
        return {}
    out: dict[str, dict[str, int]] = {}
    for link in json.loads(result.stdout or "[]"):
        name = str(link.get("ifname", ""))
        if names is not None and name not in names:
            continue
        stats = link.get("stats64", {})
        rx, tx = stats.get("rx", {}), stats.get("tx", {})
        out[name] = {
            "rx_packets": int(rx.get("packets", 0)),
            "rx_bytes": int(rx.get("bytes", 0)),
            "rx_dropped": int(rx.get("dropped", 0)),
            "rx_errors": int(rx.get("errors", 0)),
            "tx_packets": int(tx.get("packets", 0)),
            "tx_bytes": int(tx.get("bytes", 0)),
            "tx_dropped": int(tx.get("dropped", 0)),
            "tx_errors": int(tx.get("errors", 0)),
        }
    return out


def node_stats(lab: Lab) -> dict[str, dict[str, Any]]:
    """The latest counters each eNB/SGW process wrote (missing nodes are left out)."""
    out: dict[str, dict[str, Any]] = {}
    for name in [*lab.enbs, *lab.sgws]:
        path = lab.run_dir / f"{name}.stats.json"
        try:
            out[name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out


def snapshot(lab: Lab) -> Snapshot:
    host = lab.host_ns
    interfaces = {}
    if netns.exists(host):
        interfaces = interface_counters(host, [lab.enb_side_if, lab.sgw_side_if])
    return Snapshot(
        prefix=lab.prefix,
        mode=lab.mode,
        phase=lab.state.phase,
        namespaces=[(ns, netns.exists(ns)) for ns in lab.namespaces],
        processes=lab.processes(),
        nodes=node_stats(lab),
        interfaces=interfaces,
        flavour=lab.flavour,
    )


def bearer_table(lab: Lab, snap: Snapshot) -> Table:
    """Bearers with TEIDs and packet counts: UL eNB sent/SGW received, DL SGW sent/eNB received."""
    table = Table(title=f"lab {lab.prefix}: bearers", title_justify="left")
    for col in ("UE", "UE address", "eNB", "SGW", "UL TEID", "DL TEID", "PSC"):
        table.add_column(col, no_wrap=True)
    for col in ("UL sent/rcvd", "DL sent/rcvd"):
        table.add_column(col, justify="right", no_wrap=True)
    for b in lab.bearers:
        enb = snap.nodes.get(b.enb, {}).get("bearers", {}).get(b.ue, {})
        sgw = snap.nodes.get(b.sgw, {}).get("bearers", {}).get(b.ue, {})
        table.add_row(
            b.ue,
            str(b.ue_address),
            b.enb,
            b.sgw,
            f"{b.ul_teid:#x}" if b.ul_teid else "dynamic",
            f"{b.dl_teid:#x}" if b.dl_teid else "dynamic",
            f"QFI {b.qfi}" if b.pdu_session_container else "-",
            f"{enb.get('ul_packets', '?')}/{sgw.get('ul_packets', '?')}",
            f"{sgw.get('dl_packets', '?')}/{enb.get('dl_packets', '?')}",
        )
    return table


def node_table(snap: Snapshot) -> Table:
    table = Table(title="processes and user-plane counters", title_justify="left")
    for col in ("process", "pid", "alive"):
        table.add_column(col, no_wrap=True)
    for col in ("GTP-U rx/tx", "echo req/resp", "err-ind rx/tx", "MME tx/rx"):
        table.add_column(col, justify="right", no_wrap=True)
    for p in snap.processes:
        c = snap.nodes.get(p.name, {}).get("counters")
        cells = ["", "", "", ""]
        if c:
            echo = f"{c['echo_request_tx'] + c['echo_request_rx']}/"
            echo += f"{c['echo_response_rx'] + c['echo_response_tx']}"
            mme = f"{c['mme_tx']}/{c['mme_rx']}" if c["mme_tx"] or c["mme_connected"] else "-"
            cells = [
                f"{c['gtpu_rx']}/{c['gtpu_tx']}",
                echo,
                f"{c['error_indication_rx']}/{c['error_indication_tx']}",
                mme,
            ]
        table.add_row(
            p.name,
            str(p.pid),
            "[green]yes[/]" if p.alive else "[red]no[/]",
            *cells,
        )
    return table


def interface_table(lab: Lab, snap: Snapshot) -> Table:
    table = Table(title=f"S1 segment in {lab.host_ns} (mode {snap.mode})", title_justify="left")
    table.add_column("interface")
    for col in ("rx pkts", "rx bytes", "tx pkts", "tx bytes", "drops"):
        table.add_column(col, justify="right")
    for name, c in snap.interfaces.items():
        table.add_row(
            name,
            str(c["rx_packets"]),
            str(c["rx_bytes"]),
            str(c["tx_packets"]),
            str(c["tx_bytes"]),
            str(c["rx_dropped"] + c["tx_dropped"]),
        )
    return table


def namespace_line(snap: Snapshot) -> str:
    present = sum(1 for _, ok in snap.namespaces if ok)
    missing = [ns for ns, ok in snap.namespaces if not ok]
    line = f"lab {snap.prefix}: phase {snap.phase}, {snap.flavour}, mode {snap.mode}, "
    line += f"{present}/{len(snap.namespaces)} namespaces"
    if missing:
        line += f" (missing: {', '.join(missing)})"
    return line


def render(lab: Lab, snap: Snapshot | None = None) -> RenderableType:
    """Everything ``lab status`` shows, as one renderable."""
    snap = snap or snapshot(lab)
    return Group(
        namespace_line(snap),
        bearer_table(lab, snap),
        node_table(snap),
        interface_table(lab, snap),
    )


def live_table(lab: Lab) -> RenderableType:
    """The compact live view for the demo: bearers + S1 counters."""
    snap = snapshot(lab)
    return Group(bearer_table(lab, snap), interface_table(lab, snap))


def watch(
    lab: Lab,
    *,
    console: Console | None = None,
    period: float = 1.0,
    stop: threading.Event | None = None,
    renderer: Any = None,
    header: str | None = None,
) -> None:
    """Refresh ``renderer(lab)`` (default :func:`live_table`) until Ctrl-C or ``stop`` is set.

    Ctrl-C ends the view cleanly (no traceback); the lab itself is left as it is. ``header`` is
    printed once the view is up, so whoever reads it knows Ctrl-C is handled from then on.

    On the main thread Ctrl-C only raises a flag (a handler of our own) that the loop checks
    every 50 ms: a KeyboardInterrupt raised at an arbitrary point (inside a refresh's
    subprocess, or rich's console lock) could leave the view unable to close, and a watch that
    ignored Ctrl-C was seen on a loaded machine. A refresh under way finishes first.
    """
    make = renderer or live_table
    stop = stop or threading.Event()
    interrupted = [False]

    def on_sigint(signum: int, frame: object) -> None:
        del signum, frame
        interrupted[0] = True  # no lock taken in a handler: the loop polls the flag

    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if on_main else None
    try:
        with Live(make(lab), console=console, refresh_per_second=4) as view:
            if header is not None:
                view.console.print(header)
            due = time.monotonic() + period
            while not interrupted[0] and not stop.is_set():
                time.sleep(0.05)
                if time.monotonic() >= due and not interrupted[0] and not stop.is_set():
                    view.update(make(lab))
                    due = time.monotonic() + period
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
