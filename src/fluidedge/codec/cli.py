"""``fluidedge decode``: decode captured frames (pcap, pcapng or hex) and print what the TOF
would see, streaming.

The capture is read in chunks (:mod:`fluidedge.codec.pcapstream`), from a file or from standard
input (``-``), and every frame is written out as soon as it is decoded, so memory stays flat
whatever the capture's size and ``tcpdump -U -w - | fluidedge decode -`` works live:

* the default is a table, rendered page by page (``--page-size`` rows each);
* ``--json``: JSON Lines, one record per line (``--pretty``: an indented JSON array);
* ``--fields a,b,c``: tab-separated values of the named record fields (tshark's ``-T fields``
  habit; ``--header`` prints the names first).

Filters (``--teid``, ``--ue``, ``--kind``, ``--peer``, ``--port``) are checked on the cheap
classification, before any record is built. A frame that does not decode shows which header
failed, at which offset and why (never a traceback). A damaged capture gives every record
before the damage, then an error on stderr and exit status 1. On a terminal, stderr shows the
progress (frames/s, position) while the records go to a file or a pipe.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, BinaryIO

import typer

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from fluidedge.codec.pcapstream import CaptureReader
    from fluidedge.codec.stack import Buffer, Classified

_FLUSH_EVERY = 512  # lines per write() to stdout
_PROGRESS_EVERY = 8192  # frames per progress refresh


def register(app: typer.Typer) -> None:
    @app.command("decode")
    def decode_command(  # noqa: PLR0917 - one parameter per CLI option
        file: Annotated[
            str | None,
            typer.Argument(
                help="A pcap or pcapng file, or - for standard input (Ethernet frames are "
                "decoded).",
                show_default=False,
            ),
        ] = None,
        hex_frames: Annotated[
            list[str] | None,
            typer.Option("--hex", help="A frame as hex (repeatable); spaces and ':' allowed."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="JSON Lines: one record per line.")
        ] = False,
        pretty: Annotated[
            bool, typer.Option("--pretty", help="With --json: an indented JSON array.")
        ] = False,
        fields: Annotated[
            str | None,
            typer.Option(
                "--fields",
                help="Tab-separated values of these record fields (comma list), e.g. "
                "frame,teid,inner_src,inner_dst.",
                show_default=False,
            ),
        ] = None,
        header: Annotated[
            bool, typer.Option("--header", help="With --fields: print the field names first.")
        ] = False,
        teid: Annotated[
            list[str] | None, typer.Option("--teid", help="Only this TEID (0x hex ok).")
        ] = None,
        ue: Annotated[
            list[str] | None,
            typer.Option("--ue", help="Only G-PDUs to or from this inner (UE) address."),
        ] = None,
        kind: Annotated[
            list[str] | None,
            typer.Option("--kind", help="Only this kind (GTP_GPDU, GTP_OTHER, MALFORMED...)."),
        ] = None,
        peer: Annotated[
            list[str] | None,
            typer.Option("--peer", help="Only frames to or from this outer address."),
        ] = None,
        port: Annotated[
            list[str] | None,
            typer.Option("--port", help="Only frames with this outer or inner port."),
        ] = None,
        page_size: Annotated[
            int, typer.Option("--page-size", min=1, help="Table rows per rendered page.")
        ] = 100,
        progress: Annotated[
            bool | None,
            typer.Option(
                "--progress/--no-progress",
                help="Progress on stderr (default: when stderr is a terminal and the records "
                "go elsewhere).",
                show_default=False,
            ),
        ] = None,
        layouts: Annotated[
            bool, typer.Option("--layouts", help="Print the header field tables and exit.")
        ] = False,
    ) -> None:
        """Decode Ethernet/IP/UDP/GTP-U/inner-IP frames and summarise each one, streaming."""
        from rich.console import Console

        from fluidedge.codec.errors import CodecError
        from fluidedge.codec.filters import FilterError, parse_filter
        from fluidedge.codec.summary import FIELDS, all_layouts

        if layouts:
            console = Console(soft_wrap=True)
            for layout in all_layouts():
                console.print(f"[bold]{layout.name}[/bold]  ({layout.spec}, {layout.size} bytes)")
                for line in layout.describe():
                    console.print("  " + line, markup=False, highlight=False)
            return
        try:
            select = parse_filter(teid=teid, ue=ue, kind=kind, peer=peer, port=port)
        except FilterError as exc:
            _fail(str(exc))
        chosen: list[str] = []
        if fields is not None:
            chosen = [f.strip() for f in fields.split(",") if f.strip()]
            unknown = [f for f in chosen if f not in FIELDS]
            if unknown or not chosen:
                _fail(f"--fields {fields!r}: unknown field(s) {', '.join(unknown) or '(none)'}; "
                      f"known: {', '.join(FIELDS)}")  # fmt: skip
            if as_json:
                _fail("--fields and --json are two output formats: choose one")
        hexes: list[bytes] = []
        for text in hex_frames or []:
            cleaned = "".join(text.replace(":", "").split())
            try:
                hexes.append(bytes.fromhex(cleaned))
            except ValueError:
                _fail(f"--hex {text[:40]!r}: not hexadecimal")
        if file is None and not hexes:
            _fail("nothing to decode: give a capture FILE (or - for stdin) or --hex")

        out = sys.stdout
        if chosen:
            writer: _Writer = _FieldsWriter(out, chosen, header=header)
        elif as_json:
            writer = _JsonWriter(out, pretty=pretty)
        else:
            writer = _TableWriter(page_size)

        source: BinaryIO | None = None
        reader = None
        size: int | None = None
        if file is not None:
            from fluidedge.codec.pcapstream import CaptureReader

            stream: BinaryIO = sys.stdin.buffer
            if file != "-":
                try:
                    stream = Path(file).open("rb")  # noqa: SIM115 - closed in finally
                except OSError as exc:
                    _fail(f"cannot read {file}: {exc.strerror}")
                size = _regular_size(stream)
            source = stream
            reader = CaptureReader(stream)
        show = progress if progress is not None else _progress_wanted(writer)
        counter = _Progress(size) if show and reader is not None else None

        other: dict[int, int] = {}
        pump = _Pump(writer, select if select.active else None, counter)
        failure: str | None = None
        try:
            if reader is not None:
                try:
                    pump.run(reader, other)
                except CodecError as exc:
                    name = "<stdin>" if file == "-" else file
                    failure = f"{name}: {exc} (after {pump.decoded} frame(s))"
            if failure is None:
                pump.run_hex(hexes, reader.records if reader is not None else 0)
            writer.close()
        except BrokenPipeError:
            # the reader of our output left (| head): stop quietly, like other filters
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        finally:
            if counter is not None:
                counter.stop()
            if source is not None and source is not sys.stdin.buffer:
                source.close()
        decoded, shown = pump.decoded, pump.shown
        if failure is not None:
            _fail(failure)
        if other:
            kinds = ", ".join(map(str, sorted(other)))
            if not decoded:
                _fail(f"{file}: link type {kinds}; only Ethernet (1) is decoded")
            typer.secho(
                f"warning: {file}: skipped {sum(other.values())} frame(s) of link type {kinds} "
                "(not Ethernet)",
                err=True,
                fg=typer.colors.YELLOW,
            )
        if isinstance(writer, _TableWriter):
            filtered = f", {shown} shown" if select.active else ""
            writer.console.print(f"{decoded} frame(s){filtered}")


class _Pump:
    """The per-frame loop: classify, filter, write; progress every few thousand frames."""

    def __init__(
        self,
        writer: _Writer,
        select: Callable[[Classified], bool] | None,
        counter: _Progress | None,
    ) -> None:
        self.writer = writer
        self.select = select
        self.counter = counter
        self.decoded = 0
        self.shown = 0

    def run(self, reader: CaptureReader, other: dict[int, int]) -> None:
        """Every record of ``reader``; numbers count every record (like tshark's
        frame.number), other link types than Ethernet are counted in ``other`` and skipped."""
        from fluidedge.codec.stack import classify

        write = self.writer.write
        select = self.select
        counter = self.counter
        decoded = shown = index = 0
        try:
            for ts, data, _original, linktype in reader.raw():
                index += 1
                if linktype != 1:
                    other[linktype] = other.get(linktype, 0) + 1
                    continue
                decoded += 1
                c = classify(data)
                if select is not None and not select(c):
                    continue
                shown += 1
                write(index, ts, data, c)
                if counter is not None and not decoded % _PROGRESS_EVERY:
                    counter.update(reader.position, decoded)
        finally:
            self.decoded += decoded
            self.shown += shown

    def run_hex(self, frames: list[bytes], after: int) -> None:
        from fluidedge.codec.stack import classify

        for index, data in enumerate(frames, after + 1):
            self.decoded += 1
            c = classify(data)
            if self.select is None or self.select(c):
                self.shown += 1
                self.writer.write(index, None, data, c)


class _Writer:
    def write(self, index: int, ts: int | None, data: Buffer, c: Classified) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush what is buffered."""


class _LineWriter(_Writer):
    """Lines buffered and written in batches (one write() per few hundred records)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lines: list[str] = []

    def emit(self, line: str) -> None:
        lines = self.lines
        lines.append(line)
        if len(lines) >= _FLUSH_EVERY:
            self.out.write("".join(lines))
            lines.clear()

    def close(self) -> None:
        if self.lines:
            self.out.write("".join(self.lines))
            self.lines.clear()
        self.out.flush()


class _FieldsWriter(_LineWriter):
    def __init__(self, out: IO[str], names: list[str], *, header: bool) -> None:
        from fluidedge.codec.summary import cell

        super().__init__(out)
        self.cells = [cell(n) for n in names]
        if header:
            self.emit("\t".join(names) + "\n")

    def write(self, index: int, ts: int | None, data: Buffer, c: Classified) -> None:
        lines = self.lines
        lines.append("\t".join([f(index, ts, data, c) for f in self.cells]) + "\n")
        if len(lines) >= _FLUSH_EVERY:
            self.out.write("".join(lines))
            lines.clear()


class _JsonWriter(_LineWriter):
    def __init__(self, out: IO[str], *, pretty: bool) -> None:
        from fluidedge.codec.summary import FrameContext, record

        super().__init__(out)
        self.record = record
        self.context = FrameContext
        self.pretty = pretty
        self.count = 0
        self.dumps: Callable[[object], str] = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False
        ).encode

    def write(self, index: int, ts: int | None, data: Buffer, c: Classified) -> None:
        rec = self.record(self.context(index, ts, data, c))
        if self.pretty:
            self.emit(("[\n" if not self.count else ",\n") + json.dumps(rec, indent=2))
        else:
            self.emit(self.dumps(rec) + "\n")
        self.count += 1

    def close(self) -> None:
        if self.pretty:
            self.emit("\n]\n" if self.count else "[]\n")
        super().close()


class _TableWriter(_Writer):
    """The summary table, one rendered page of ``page_size`` rows at a time."""

    def __init__(self, page_size: int) -> None:
        from rich.console import Console

        from fluidedge.codec.summary import FrameContext, record

        self.console = Console(soft_wrap=False)
        self.page_size = page_size
        self.rows: list[dict[str, object]] = []
        self.record = record
        self.context = FrameContext

    def write(self, index: int, ts: int | None, data: Buffer, c: Classified) -> None:
        self.rows.append(self.record(self.context(index, ts, data, c)))
        if len(self.rows) >= self.page_size:
            self._page()

    def _page(self) -> None:
        from rich.table import Table
        from rich.text import Text

        from fluidedge.codec.summary import TABLE_COLUMNS, table_row

        table = Table(title_justify="left")
        for name in TABLE_COLUMNS:
            table.add_column(name, overflow="fold")
        for rec in self.rows:
            # Text cells: addresses like [fd00::7]:53 must not be read as rich markup
            cells = [Text(cell) for cell in table_row(rec)]
            table.add_row(*cells, style="red" if rec["error"] else None)
        self.console.print(table)
        self.rows.clear()

    def close(self) -> None:
        if self.rows:
            self._page()


def _progress_wanted(writer: _Writer) -> bool:
    """On a terminal only, and only when the records do not go to that same terminal."""
    try:
        return sys.stderr.isatty() and not (isinstance(writer, _TableWriter) or sys.stdout.isatty())
    except (AttributeError, ValueError):
        return False


def _regular_size(source: BinaryIO) -> int | None:
    try:
        st = os.fstat(source.fileno())
    except (OSError, ValueError):
        return None
    import stat

    return st.st_size if stat.S_ISREG(st.st_mode) else None


class _Progress:
    """frames/s and position on stderr (rich), refreshed every few thousand frames."""

    def __init__(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.started = time.perf_counter()
        self.bar: Progress = Progress(
            TextColumn("decode"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[frames]:,} frames, {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task: TaskID = self.bar.add_task("decode", total=total, frames=0, rate=0.0)
        self.bar.start()

    def update(self, position: int, frames: int) -> None:
        rate = frames / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.task, completed=position, frames=frames, rate=rate)

    def stop(self) -> None:
        self.bar.stop()


def _fail(message: str) -> typer.Exit:
    typer.secho(f"fluidedge decode: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)
