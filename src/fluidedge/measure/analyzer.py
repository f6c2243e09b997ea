"""The VIM message analyzer (seed §3.4): phase timings from a capture of the API's messages.

The seed built this with Python and Scapy to time OpenStack and Nomad without touching their code:
the beginning and end of an instantiation are visible on the wire. Here the capture of the API
port is reassembled into TCP byte streams (per direction, by sequence number, first-seen
timestamp per byte), cut into HTTP/1.x messages (Content-Length, chunked, or until close),
requests paired with responses in order on each connection, and each ``POST /v1/instances`` is
timed:

* ``wire_ms``: first request byte -> last response byte (what a client experiences);
* ``server_ms``: last request byte -> first response byte (the daemon's turn, as the wire sees it);
* ``first_packet_ms``: first request byte -> first packet the new instance sends or receives, in
  an optional data-plane capture (or the same one), using the addresses the response reports.

The daemon's own phase breakdown (``timing`` in the response, or fetched afterwards) is then set
against ``server_ms``: the wire time must contain the daemon's total, and exceed it only by what
HTTP parsing and JSON encoding cost. The difference is reported per request and summarised.

Pure functions over decoded packets: no sockets, no files (the CLI reads the capture).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluidedge.measure.capture import IpPacket, TcpSegment

_SEQ_MOD = 1 << 32
_HALF = 1 << 31
INSTANCES_PATH = "/v1/instances"


# --- TCP reassembly ----------------------------------------------------------------------------


@dataclass
class _Direction:
    base: int | None = None
    syn_seen: bool = False
    chunks: list[tuple[int, int, bytes]] = field(default_factory=list)  # (rel offset, ts, data)


@dataclass(frozen=True, slots=True)
class Stream:
    """One direction of a TCP connection as contiguous bytes, with when each span arrived."""

    data: bytes
    spans: tuple[tuple[int, int, int], ...]  # (start offset, end offset, timestamp ns)
    complete: bool  # False when a gap (bytes missing from the capture) cut it short

    def time_at(self, offset: int) -> int:
        """Capture time of the packet that first carried byte ``offset``."""
        for start, end, ts in self.spans:
            if start <= offset < end:
                return ts
        raise IndexError(offset)


ConnKey = tuple[str, int, str, int]  # client ip, client port, server ip, server port


@dataclass
class Connection:
    client: tuple[str, int]
    server: tuple[str, int]
    to_server: Stream
    to_client: Stream


def _add(direction: _Direction, segment: TcpSegment) -> None:
    if segment.syn:
        direction.base = (segment.seq + 1) % _SEQ_MOD
        direction.syn_seen = True
        return
    if not segment.payload:
        return
    if direction.base is None:
        direction.base = segment.seq
    rel = (segment.seq - direction.base) % _SEQ_MOD
    if rel >= _HALF:  # before the first byte we know of (retransmission of unseen data)
        return
    direction.chunks.append((rel, segment.timestamp_ns, segment.payload))


def _assemble(direction: _Direction) -> Stream:
    data = bytearray()
    spans: list[tuple[int, int, int]] = []
    complete = True
    # By offset; for equal offsets the earliest capture time wins (retransmissions come later).
    for rel, ts, payload in sorted(direction.chunks, key=lambda c: (c[0], c[1])):
        end = rel + len(payload)
        if rel > len(data):
            complete = False
            break
        if end <= len(data):
            continue
        new = payload[len(data) - rel :]
        spans.append((len(data), len(data) + len(new), ts))
        data.extend(new)
    return Stream(bytes(data), tuple(spans), complete)


class Reassembler:
    """Segments in, one at a time (streaming); connections out at the end.

    It keeps the payload of the segments to or from ``server_port`` only (the API's own
    bytes, which the exchanges are cut from) and nothing of any other packet."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.halves: dict[ConnKey, tuple[_Direction, _Direction]] = {}

    def add(self, segment: TcpSegment) -> bool:
        """Take ``segment`` if it belongs to a connection to the server port; whether it did."""
        port = self.server_port
        if segment.destination_port == port:
            key = (segment.source, segment.source_port, segment.destination, port)
            outbound = True
        elif segment.source_port == port:
            key = (segment.destination, segment.destination_port, segment.source, port)
            outbound = False
        else:
            return False
        halves = self.halves.get(key)
        if halves is None:
            halves = self.halves[key] = (_Direction(), _Direction())
        _add(halves[0 if outbound else 1], segment)
        return True

    def connections(self) -> list[Connection]:
        """Every connection seen, in order of first appearance, both directions assembled."""
        return [
            Connection((k[0], k[1]), (k[2], k[3]), _assemble(up), _assemble(down))
            for k, (up, down) in self.halves.items()
        ]


def reassemble(segments: Iterable[TcpSegment], server_port: int) -> list[Connection]:
    """Group segments into connections to ``server_port`` and reassemble both directions."""
    reassembler = Reassembler(server_port)
    for segment in segments:
        reassembler.add(segment)
    return reassembler.connections()


class FirstPackets:
    """When each address was first seen after each API request began, in bounded state.

    The analyzer asks "the first packet to or from these addresses at or after time T", where
    T is the capture time of a request's first byte; the addresses are only known once the
    response is parsed, long after the packets went by. Instead of keeping every packet, every
    capture time of a request byte is a *mark* (:meth:`mark`), and a packet's time is kept for
    an address only if no time is kept for it yet since the latest mark before that packet:
    the first packet after any mark is always kept, so :meth:`first_at_or_after` answers
    exactly for every mark. State: a few timestamps per address per request, whatever the
    capture's size. Packets and marks must come in capture-time order, as a capture gives
    them (a separate data-plane capture after the API one is fine: the marks are then all
    known).
    """

    def __init__(self) -> None:
        self.marks: list[int] = []
        self.seen: dict[str, list[int]] = {}

    def mark(self, timestamp_ns: int) -> None:
        marks = self.marks
        if not marks or timestamp_ns >= marks[-1]:
            if not marks or timestamp_ns != marks[-1]:
                marks.append(timestamp_ns)
        else:
            bisect.insort(marks, timestamp_ns)

    def packet(self, timestamp_ns: int, source: str, destination: str) -> None:
        marks = self.marks
        if not marks or timestamp_ns < marks[0]:
            return
        latest = (
            marks[-1]
            if timestamp_ns >= marks[-1]
            else marks[bisect.bisect_right(marks, timestamp_ns) - 1]
        )
        for address in (source, destination):
            kept = self.seen.get(address)
            if kept is None:
                self.seen[address] = [timestamp_ns]
            elif kept[-1] < latest:
                kept.append(timestamp_ns)

    def first_at_or_after(self, addresses: Iterable[str], after_ns: int) -> int | None:
        best: int | None = None
        for address in addresses:
            kept = self.seen.get(address)
            if not kept:
                continue
            at = bisect.bisect_left(kept, after_ns)
            if at < len(kept) and (best is None or kept[at] < best):
                best = kept[at]
        return best


# --- HTTP/1.x ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpMessage:
    start_line: str
    headers: dict[str, str]
    body: bytes
    start: int  # offset of the first byte in the stream
    end: int  # offset after the last byte


def _body_length(headers: dict[str, str], data: bytes, pos: int) -> tuple[bytes, int] | None:
    """(body, end offset) of a body starting at ``pos``; None if incomplete."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size_text = data[pos:line_end].split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                return None
            pos = line_end + 2
            if size == 0:
                trailer_end = data.find(b"\r\n\r\n", pos - 2)
                if trailer_end < 0:
                    return None
                return bytes(body), trailer_end + 4
            if pos + size + 2 > len(data):
                return None
            body.extend(data[pos : pos + size])
            pos += size + 2
    length_text = headers.get("content-length")
    if length_text is None:
        return None
    try:
        length = int(length_text)
    except ValueError:
        return None
    if length < 0 or pos + length > len(data):
        return None
    return data[pos : pos + length], pos + length


def parse_messages(
    data: bytes, *, requests: bool, request_methods: Sequence[str] = ()
) -> list[HttpMessage]:
    """Cut a byte stream into HTTP/1.x messages.

    Requests without a length have no body. Responses to HEAD, and 1xx/204/304 responses,
    have none either; other responses without a length run to the end of the stream.
    """
    messages: list[HttpMessage] = []
    pos = 0
    answered = 0
    while pos < len(data):
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            break
        lines = data[pos:head_end].decode("latin-1").split("\r\n")
        start_line = lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body_start = head_end + 4
        no_body = False
        if requests:
            no_body = "content-length" not in headers and "transfer-encoding" not in headers
        else:
            parts = start_line.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            method = request_methods[answered] if answered < len(request_methods) else ""
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            if not 100 <= status < 200:
                answered += 1
        if no_body:
            body, end = b"", body_start
        else:
            measured = _body_length(headers, data, body_start)
            if measured is None:
                if requests or "content-length" in headers or "transfer-encoding" in headers:
                    break  # incomplete message at the end of the capture
                body, end = data[body_start:], len(data)
            else:
                body, end = measured
        messages.append(HttpMessage(start_line, headers, body, pos, end))
        pos = end
    return messages


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request and its response (``None`` if the capture holds no answer)."""

    client: tuple[str, int]
    server: tuple[str, int]
    method: str
    target: str
    request_body: bytes
    request_first_ns: int
    request_last_ns: int
    status: int | None
    response_body: bytes | None
    response_first_ns: int | None
    response_last_ns: int | None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


def exchanges(connections: Iterable[Connection]) -> list[Exchange]:
    """All request/response pairs, in request order."""
    result: list[Exchange] = []
    for conn in connections:
        requests = parse_messages(conn.to_server.data, requests=True)
        methods = [r.start_line.split(" ", 1)[0] for r in requests]
        responses = [
            r
            for r in parse_messages(conn.to_client.data, requests=False, request_methods=methods)
            if not r.start_line.split(" ")[1:2] or not r.start_line.split(" ")[1].startswith("1")
        ]
        for index, request in enumerate(requests):
            method, _, rest = request.start_line.partition(" ")
            target = rest.rsplit(" ", 1)[0] if " " in rest else rest
            response = responses[index] if index < len(responses) else None
            status = None
            if response is not None:
                parts = response.start_line.split(" ", 2)
                status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            result.append(
                Exchange(
                    client=conn.client,
                    server=conn.server,
                    method=method,
                    target=target,
                    request_body=request.body,
                    request_first_ns=conn.to_server.time_at(request.start),
                    request_last_ns=conn.to_server.time_at(request.end - 1),
                    status=status,
                    response_body=response.body if response else None,
                    response_first_ns=(
                        conn.to_client.time_at(response.start) if response else None
                    ),
                    response_last_ns=conn.to_client.time_at(response.end - 1) if response else None,
                )
            )
    result.sort(key=lambda e: e.request_first_ns)
    return result


# --- instantiations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instantiation:
    """One ``POST /v1/instances`` as the wire and the daemon saw it (all times in ms)."""

    name: str
    status: int | None
    request_at_ns: int
    wire_ms: float | None
    server_ms: float | None
    daemon_total_ms: float | None
    daemon_phases_ms: dict[str, float]
    path: str | None
    addresses: tuple[str, ...]
    first_packet_ms: float | None = None

    @property
    def difference_ms(self) -> float | None:
        """Wire-side server time minus the daemon's own total (>= 0 when consistent)."""
        if self.server_ms is None or self.daemon_total_ms is None:
            return None
        return self.server_ms - self.daemon_total_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "request_at_ns": self.request_at_ns,
            "wire_ms": self.wire_ms,
            "server_ms": self.server_ms,
            "daemon_total_ms": self.daemon_total_ms,
            "difference_ms": self.difference_ms,
            "first_packet_ms": self.first_packet_ms,
            "path": self.path,
            "addresses": list(self.addresses),
            "daemon_phases_ms": self.daemon_phases_ms,
        }


def _json(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def timing_of(view: Any) -> tuple[float | None, dict[str, float]]:
    """(total, phases) from an instance view's ``timing`` object, if it has one."""
    if not isinstance(view, dict) or not isinstance(view.get("timing"), dict):
        return None, {}
    timing = view["timing"]
    phases = {
        str(k): float(v)
        for k, v in timing.items()
        if k != "total" and isinstance(v, int | float) and not isinstance(v, bool)
    }
    total = timing.get("total")
    return (float(total) if isinstance(total, int | float) else None), phases


def _addresses(view: Any) -> tuple[str, ...]:
    found: list[str] = []
    if isinstance(view, dict):
        for iface in view.get("interfaces") or []:
            if isinstance(iface, dict):
                for address in iface.get("addresses") or []:
                    found.append(str(address).split("/", 1)[0])
    return tuple(found)


def _first_packet(
    packets: Sequence[IpPacket], addresses: tuple[str, ...], after_ns: int
) -> int | None:
    if not addresses:
        return None
    wanted = set(addresses)
    for packet in packets:
        if packet.timestamp_ns >= after_ns and (
            packet.source in wanted or packet.destination in wanted
        ):
            return packet.timestamp_ns
    return None


def instantiations(
    all_exchanges: Iterable[Exchange],
    dataplane: Sequence[IpPacket] = (),
    *,
    first_packets: FirstPackets | None = None,
) -> list[Instantiation]:
    """Every ``POST /v1/instances`` with wire timings and the daemon's breakdown.

    The instances' first packets come from ``first_packets`` (streaming) if given, else from
    the ``dataplane`` packets."""
    ordered_dp = sorted(dataplane, key=lambda p: p.timestamp_ns) if first_packets is None else []
    result = []
    for ex in all_exchanges:
        if ex.method != "POST" or ex.path.rstrip("/") != INSTANCES_PATH:
            continue
        request = _json(ex.request_body)
        view = _json(ex.response_body)
        name = ""
        if isinstance(view, dict) and isinstance(view.get("name"), str):
            name = view["name"]
        elif isinstance(request, dict) and isinstance(request.get("name"), str):
            name = request["name"]
        total, phases = timing_of(view)
        addresses = _addresses(view)
        if first_packets is not None:
            first = first_packets.first_at_or_after(addresses, ex.request_first_ns)
        else:
            first = _first_packet(ordered_dp, addresses, ex.request_first_ns)
        result.append(
            Instantiation(
                name=name,
                status=ex.status,
                request_at_ns=ex.request_first_ns,
                wire_ms=(
                    (ex.response_last_ns - ex.request_first_ns) / 1e6
                    if ex.response_last_ns is not None
                    else None
                ),
                server_ms=(
                    (ex.response_first_ns - ex.request_last_ns) / 1e6
                    if ex.response_first_ns is not None
                    else None
                ),
                daemon_total_ms=total,
                daemon_phases_ms=phases,
                path=str(view["path"]) if isinstance(view, dict) and "path" in view else None,
                addresses=addresses,
                first_packet_ms=(first - ex.request_first_ns) / 1e6 if first is not None else None,
            )
        )
    return result


def with_daemon_timing(item: Instantiation, view: Any) -> Instantiation:
    """Fill the daemon's breakdown from a later ``GET /v1/instances/{name}``."""
    total, phases = timing_of(view)
    if total is None:
        return item
    return Instantiation(
        item.name,
        item.status,
        item.request_at_ns,
        item.wire_ms,
        item.server_ms,
        total,
        phases,
        item.path or (str(view.get("path")) if isinstance(view, dict) else None),
        item.addresses or _addresses(view),
        item.first_packet_ms,
    )


@dataclass(frozen=True, slots=True)
class CrossCheck:
    """How well the wire agrees with the daemon, over the requests that have both."""

    compared: int
    mean_difference_ms: float | None
    max_difference_ms: float | None
    min_difference_ms: float | None
    tolerance_ms: float
    within: int

    @property
    def agrees(self) -> bool:
        return self.compared > 0 and self.within == self.compared

    def as_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "mean_difference_ms": self.mean_difference_ms,
            "max_difference_ms": self.max_difference_ms,
            "min_difference_ms": self.min_difference_ms,
            "tolerance_ms": self.tolerance_ms,
            "within": self.within,
            "agrees": self.agrees,
        }


# The capture clock and the daemon's perf_counter are different clocks on the same host; the
# wire can show a slightly shorter time than the daemon only by timestamping jitter.
CLOCK_SLACK_MS = 0.5


def cross_check(items: Sequence[Instantiation], tolerance_ms: float) -> CrossCheck:
    """Agreement means ``-CLOCK_SLACK_MS <= server_ms - daemon_total <= tolerance_ms``."""
    diffs = [d for d in (i.difference_ms for i in items) if d is not None]
    within = sum(1 for d in diffs if -CLOCK_SLACK_MS <= d <= tolerance_ms)
    return CrossCheck(
        compared=len(diffs),
        mean_difference_ms=sum(diffs) / len(diffs) if diffs else None,
        max_difference_ms=max(diffs) if diffs else None,
        min_difference_ms=min(diffs) if diffs else None,
        tolerance_ms=tolerance_ms,
        within=within,
    )
