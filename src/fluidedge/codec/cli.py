"""``fluidedge decode``: decode captured frames (pcap, pcapng or hex) and print what the TOF
would see.

Each frame gets one row; a frame that does not decode shows which header failed, at which
offset and why, in its row (never a traceback). ``--json`` prints the same as JSON records,
``--layouts`` the field tables of every header with their spec references.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("decode")
    def decode_command(
        file: Annotated[
            Path | None,
            typer.Argument(
                help="A pcap or pcapng file (Ethernet frames are decoded).", show_default=False
            ),
        ] = None,
        hex_frames: Annotated[
            list[str] | None,
            typer.Option("--hex", help="A frame as hex (repeatable); spaces and ':' allowed."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
        layouts: Annotated[
            bool, typer.Option("--layouts", help="Print the header field tables and exit.")
        ] = False,
    ) -> None:
        """Decode Ethernet/IP/UDP/GTP-U/inner-IP frames and summarise each one."""
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from fluidedge.codec.errors import CodecError
        from fluidedge.codec.pcap import LINKTYPE_ETHERNET, read_packets
        from fluidedge.codec.stack import decode_frame
        from fluidedge.codec.summary import TABLE_COLUMNS, all_layouts, frame_record, table_row

        console = Console(soft_wrap=not as_json)
        if layouts:
            for layout in all_layouts():
                console.print(f"[bold]{layout.name}[/bold]  ({layout.spec}, {layout.size} bytes)")
                for line in layout.describe():
                    console.print("  " + line, markup=False, highlight=False)
            return
        frames: list[bytes | memoryview] = []
        try:
            if file is not None:
                try:
                    data = file.read_bytes()
                except OSError as exc:
                    _fail(f"cannot read {file}: {exc.strerror}")
                other: set[int] = set()
                for packet in read_packets(data):
                    if packet.linktype == LINKTYPE_ETHERNET:
                        frames.append(packet.data)
                    else:
                        other.add(packet.linktype)
                if other and not frames:
                    _fail(f"{file}: link type {min(other)}; only Ethernet (1) is decoded")
                if other:
                    kinds = ", ".join(map(str, sorted(other)))
                    typer.secho(
                        f"warning: {file}: skipped frames of link type {kinds} (not Ethernet)",
                        err=True,
                        fg=typer.colors.YELLOW,
                    )
        except CodecError as exc:
            # a broken file: say where; frames before the damage were still collected
            if not frames:
                _fail(f"{file}: {exc}")
            typer.secho(f"warning: {file}: {exc}", err=True, fg=typer.colors.YELLOW)
        for text in hex_frames or []:
            cleaned = "".join(text.replace(":", "").split())
            try:
                frames.append(bytes.fromhex(cleaned))
            except ValueError:
                _fail(f"--hex {text[:40]!r}: not hexadecimal")
        if not frames:
            _fail("nothing to decode: give a capture FILE or --hex")
        records = [frame_record(i + 1, decode_frame(f), len(f)) for i, f in enumerate(frames)]
        if as_json:
            typer.echo(json.dumps(records, indent=2))
            return
        table = Table(title=f"{len(records)} frame(s)")
        for name in TABLE_COLUMNS:
            table.add_column(name, overflow="fold")
        for record in records:
            # Text cells: addresses like [fd00::7]:53 must not be read as rich markup
            cells = [Text(cell) for cell in table_row(record)]
            table.add_row(*cells, style="red" if record["error"] else None)
        console.print(table)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"fluidedge decode: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)
