"""``fluidedge analyze``: the VIM message analyzer run over capture files, streamed.

The pure parts (reassembly, HTTP, timings, cross-check) are :mod:`fluidedge.measure.analyzer`;
this module reads the captures (files or standard input, in constant memory through
:func:`fluidedge.measure.capture.stream_packets`), prints the table and, on request, writes a
run directory. Kept apart from :mod:`fluidedge.measure.benches` so that analysing a capture
does not import the plotting stack (matplotlib costs ~60 MiB of resident memory).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fluidedge.core.client import ClientError
from fluidedge.measure import analyzer, capture, machine, rundir
from fluidedge.measure.analyzer import CrossCheck, Instantiation
from fluidedge.measure.errors import CaptureError
from fluidedge.measure.instantiate import Api


def run_analyze(
    capture_path: Path,
    *,
    api_port: int,
    dataplane_path: Path | None = None,
    api: Api | None = None,
    tolerance_ms: float = 5.0,
    save_dir: Path | None = None,
    console: Console | None = None,
) -> tuple[list[Instantiation], CrossCheck]:
    """Analyse a capture of the API port; print per-request timings and the cross-check.

    Both captures are streamed (constant memory whatever their size): only the API port's TCP
    payload and a few timestamps per address (:class:`analyzer.FirstPackets`) are kept."""
    console = console or Console()
    reassembler = analyzer.Reassembler(api_port)
    first = analyzer.FirstPackets()
    counts = capture.Counts()
    same_file = dataplane_path is None
    for packet in _stream(capture_path, counts):
        if packet.protocol == capture.PROTO_TCP:
            segment = capture.tcp_segment(packet)
            is_request_data = (
                segment is not None
                and reassembler.add(segment)
                and bool(segment.payload)
                and segment.destination_port == api_port
            )
            if is_request_data and segment is not None:
                first.mark(segment.timestamp_ns)
        if same_file:
            first.packet(packet.timestamp_ns, packet.source, packet.destination)
    if dataplane_path is not None:
        for packet in _stream(dataplane_path, capture.Counts()):
            first.packet(packet.timestamp_ns, packet.source, packet.destination)
    connections = reassembler.connections()
    exchanges = analyzer.exchanges(connections)
    items = analyzer.instantiations(exchanges, first_packets=first)
    if api is not None:
        items = [
            item if item.daemon_total_ms is not None or not item.name else _fetch(api, item)
            for item in items
        ]
    check = analyzer.cross_check(items, tolerance_ms)
    console.print(
        f"{capture_path}: {counts.packets} IP packets ({counts.skipped} skipped), "
        f"{len(connections)} connections to port {api_port}, {len(exchanges)} HTTP exchanges, "
        f"{len(items)} instantiation requests"
    )
    console.print(_analyze_table(items))
    if check.compared:
        verdict = "[green]agree[/green]" if check.agrees else "[red]DISAGREE[/red]"
        console.print(
            f"wire vs daemon: {verdict} on {check.within}/{check.compared} requests "
            f"(server time - daemon total: mean {check.mean_difference_ms:.3f} ms, "
            f"min {check.min_difference_ms:.3f}, max {check.max_difference_ms:.3f}; "
            f"tolerance -{analyzer.CLOCK_SLACK_MS}..+{tolerance_ms} ms)"
        )
    else:
        console.print("no request carries the daemon's timing: nothing to cross-check")
    if save_dir is not None:
        run_dir = rundir.new_run_dir("analyze", save_dir)
        rows = [item.as_dict() for item in items]
        columns = [c for c in rows[0] if c != "daemon_phases_ms"] if rows else ["name"]
        rundir.write_csv(run_dir / "requests.csv", columns, rows)
        from fluidedge.measure import outputs  # noqa: PLC0415 - imports the plotting stack

        rundir.write_json(
            run_dir / outputs.RESULTS_JSON,
            {
                "kind": "analyze",
                "created": outputs.now_iso(),
                "interrupted": False,
                "config": {
                    "capture": str(capture_path),
                    "dataplane": str(dataplane_path) if dataplane_path else None,
                    "api_port": api_port,
                    "tolerance_ms": tolerance_ms,
                },
                "figures": [],
                "raw": ["requests.csv"],
                "cross_check": check.as_dict(),
                "requests": rows,
            },
        )
        rundir.write_json(run_dir / outputs.MACHINE_JSON, machine.describe())
        console.print(f"outputs: {run_dir}")
    return items, check


def _stream(path: Path, counts: capture.Counts) -> Iterator[capture.IpPacket]:
    """The IP packets of the capture at ``path`` (``-``: standard input), streamed."""
    if str(path) == "-":
        yield from capture.stream_packets(sys.stdin.buffer, counts)
    else:
        try:
            source = path.open("rb")
        except OSError as exc:
            raise CaptureError(f"cannot read {path}: {exc.strerror}") from exc
        with source:
            yield from capture.stream_packets(source, counts)
    if counts.damage is not None:
        Console(stderr=True).print(
            f"[yellow]warning: {path}: {counts.damage} (the packets before it were analysed)"
            "[/yellow]"
        )


def _fetch(api: Api, item: Instantiation) -> Instantiation:
    try:
        view = api.get(f"/v1/instances/{item.name}")
    except ClientError:
        return item
    return analyzer.with_daemon_timing(item, view)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _analyze_table(items: list[Instantiation]) -> Table:
    table = Table(title="POST /v1/instances as captured (ms)", title_justify="left")
    for column in ("#", "name", "status", "path", "wire", "server", "daemon", "diff", "1st pkt"):
        table.add_column(
            column,
            justify="left" if column in ("name", "path") else "right",
            no_wrap=column == "name",
            min_width=12 if column == "name" else None,
        )
    for index, item in enumerate(items):
        table.add_row(
            str(index),
            item.name or "?",
            str(item.status) if item.status is not None else "-",
            item.path or "-",
            _fmt(item.wire_ms),
            _fmt(item.server_ms),
            _fmt(item.daemon_total_ms),
            _fmt(item.difference_ms),
            _fmt(item.first_packet_ms),
        )
    return table
