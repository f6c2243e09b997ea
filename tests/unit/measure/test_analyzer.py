"""The message analyzer on captures built packet by packet (scapy builds the frames)."""

from __future__ import annotations

import io
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Ether
from scapy.packet import Raw
from tests.fixtures.captures import editcap_pcapng

from fluidedge.codec import pcap
from fluidedge.measure import analyze, analyzer, capture
from fluidedge.measure.errors import CaptureError

T0 = 1_700_000_000 * 1_000_000_000
CLIENT, SERVER, PORT = "127.0.0.1", "127.0.0.1", 8181
INSTANCE_IP = "198.18.5.7"


def _ms(value: float) -> int:
    return T0 + int(value * 1_000_000)


class Conn:
    """Builds the frames of one TCP connection, with explicit timestamps in ms after T0."""

    def __init__(self, client_port: int, *, ipv6: bool = False) -> None:
        self.cport = client_port
        self.cseq = 1000
        self.sseq = 50_000
        self.ipv6 = ipv6
        self.records: list[pcap.Record] = []

    def _frame(self, to_server: bool, flags: str, seq: int, payload: bytes) -> bytes:
        ip = IPv6(src="::1", dst="::1") if self.ipv6 else IP(src=CLIENT, dst=SERVER)
        sport, dport = (self.cport, PORT) if to_server else (PORT, self.cport)
        layer = TCP(sport=sport, dport=dport, flags=flags, seq=seq)
        return (
            bytes(Ether() / ip / layer / Raw(payload)) if payload else bytes(Ether() / ip / layer)
        )

    def add(self, at_ms: float, to_server: bool, payload: bytes = b"", flags: str = "PA") -> None:
        seq = self.cseq if to_server else self.sseq
        frame = self._frame(to_server, flags, seq, payload)
        self.records.append(pcap.Record(_ms(at_ms), frame, len(frame)))
        advance = len(payload) + (1 if "S" in flags else 0)
        if to_server:
            self.cseq += advance
        else:
            self.sseq += advance

    def replay(self, at_ms: float, to_server: bool, seq_back: int, payload: bytes) -> None:
        """A retransmission of bytes already sent (same seq, later time)."""
        seq = (self.cseq if to_server else self.sseq) - seq_back
        frame = self._frame(to_server, "PA", seq, payload)
        self.records.append(pcap.Record(_ms(at_ms), frame, len(frame)))

    def handshake(self, at_ms: float) -> None:
        self.add(at_ms, True, flags="S")
        self.add(at_ms + 0.01, False, flags="SA")


def _post(name: str) -> tuple[bytes, bytes]:
    body = json.dumps({"name": name, "template": "idle"}).encode()
    head = (
        f"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def _response(name: str, total: float, *, chunked: bool = False) -> tuple[bytes, bytes]:
    view = {
        "name": name,
        "path": "warm",
        "timing": {"accept": 0.2, "shell": 0.5, "start": total - 0.7, "total": total},
        "interfaces": [{"name": "eth0", "addresses": [f"{INSTANCE_IP}/24"]}],
    }
    body = json.dumps(view).encode()
    if chunked:
        head = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
        head += b"transfer-encoding: chunked\r\n\r\n"
        half = len(body) // 2
        body = (
            f"{half:x}\r\n".encode() + body[:half] + b"\r\n"
            + f"{len(body) - half:x}\r\n".encode() + body[half:] + b"\r\n0\r\n\r\n"
        )  # fmt: skip
        return head, body
    head = f"HTTP/1.1 201 Created\r\ncontent-length: {len(body)}\r\n\r\n".encode()
    return head, body


def _analyse(
    records: list[pcap.Record],
) -> tuple[list[analyzer.Exchange], list[analyzer.Instantiation]]:
    data = pcap.build(sorted(records, key=lambda r: r.timestamp_ns))
    cap = capture.read_capture(data)
    conns = analyzer.reassemble(capture.tcp_segments(cap, PORT), PORT)
    exchanges = analyzer.exchanges(conns)
    items = analyzer.instantiations(exchanges, cap.packets)
    # the streaming path (what `fluidedge analyze` runs) gives the same, with bounded state
    streamed = analyze.run_analyze(
        _file(data), api_port=PORT, console=Console(file=io.StringIO(), width=200)
    )[0]
    assert streamed == items
    return exchanges, items


_files = itertools.count()


def _file(data: bytes) -> Path:
    path = Path(tempfile.gettempdir()) / f"fe-analyze-{os.getpid()}-{next(_files)}.pcap"
    path.write_bytes(data)
    _CREATED.append(path)
    return path


_CREATED: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_files() -> Iterator[None]:
    yield
    while _CREATED:
        _CREATED.pop().unlink(missing_ok=True)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 50), max_size=8),
    st.lists(st.tuples(st.integers(0, 60), st.sampled_from("abc"), st.sampled_from("abc")),
             max_size=40),
)  # fmt: skip
def test_first_packets_answers_exactly_for_every_mark(
    marks: list[int], packets: list[tuple[int, str, str]]
) -> None:
    """Bounded state, same answer as keeping every packet (in capture-time order)."""
    events = sorted([(t, 0, "", "") for t in marks] + [(t, 1, s, d) for t, s, d in packets])
    first = analyzer.FirstPackets()
    for t, kind, src, dst in events:
        if kind == 0:
            first.mark(t)
        else:
            first.packet(t, src, dst)
    for mark in marks:
        for addresses in (("a",), ("b", "c"), ("a", "b", "c"), ("z",)):
            want = min(
                (t for t, s, d in packets if t >= mark and {s, d} & set(addresses)), default=None
            )
            assert first.first_at_or_after(addresses, mark) == want
    kept = sum(len(v) for v in first.seen.values())
    assert kept <= 3 * (len(set(marks)) + 1)


def test_post_timings_and_cross_check() -> None:
    conn = Conn(40000)
    conn.handshake(0.0)
    head, body = _post("web-1")
    conn.add(1.0, True, head)  # request split in two segments
    conn.add(1.5, True, body)
    conn.replay(1.7, True, len(body), body)  # retransmission: must not move the timestamps
    rhead, rbody = _response("web-1", 3.0)
    conn.add(5.0, False, rhead)
    conn.add(5.2, False, rbody)
    # keep-alive: a second request on the same connection (a GET, not an instantiation)
    conn.add(6.0, True, b"GET /v1/instances/web-1 HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.add(6.5, False, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
    # the instance's first data-plane packet
    frame = bytes(Ether() / IP(src=INSTANCE_IP, dst="198.18.5.1") / TCP(flags="S"))
    conn.records.append(pcap.Record(_ms(7.25), frame, len(frame)))

    exchanges, items = _analyse(conn.records)
    assert [(e.method, e.path, e.status) for e in exchanges] == [
        ("POST", "/v1/instances", 201),
        ("GET", "/v1/instances/web-1", 200),
    ]
    assert len(items) == 1
    item = items[0]
    assert item.name == "web-1"
    assert item.path == "warm"
    assert item.addresses == (INSTANCE_IP,)
    assert item.wire_ms == pytest.approx(4.2, abs=1e-3)  # 1.0 -> 5.2
    assert item.server_ms == pytest.approx(3.5, abs=1e-3)  # 1.5 -> 5.0
    assert item.daemon_total_ms == 3.0
    assert item.difference_ms == pytest.approx(0.5, abs=1e-3)
    assert item.first_packet_ms == pytest.approx(6.25, abs=1e-3)
    assert item.daemon_phases_ms["shell"] == 0.5
    check = analyzer.cross_check(items, tolerance_ms=1.0)
    assert check.agrees
    assert check.compared == 1
    assert not analyzer.cross_check(items, tolerance_ms=0.1).agrees


def test_several_connections_chunked_and_ipv6() -> None:
    records = []
    for index, (port, ipv6) in enumerate([(40001, False), (40002, True)]):
        conn = Conn(port, ipv6=ipv6)
        start = 10.0 * index
        conn.handshake(start)
        head, body = _post(f"app-{index}")
        conn.add(start + 1, True, head + body)
        rhead, rbody = _response(f"app-{index}", 2.0 + index, chunked=True)
        conn.add(start + 4, False, rhead + rbody[:10])
        conn.add(start + 4.5, False, rbody[10:])
        records.extend(conn.records)
    _, items = _analyse(records)
    assert [i.name for i in items] == ["app-0", "app-1"]
    assert [i.daemon_total_ms for i in items] == [2.0, 3.0]
    assert items[1].wire_ms == pytest.approx(3.5, abs=1e-3)
    assert items[0].server_ms == pytest.approx(3.0, abs=1e-3)


def test_request_without_response_and_error_response() -> None:
    conn = Conn(40003)
    conn.handshake(0)
    head, body = _post("bad")
    conn.add(1, True, head + body)
    conn.add(2, False, b'HTTP/1.1 404 Not Found\r\ncontent-length: 13\r\n\r\n{"detail":"x"}'[:-1])
    head, body = _post("lost")
    conn.add(3, True, head + body)
    _, items = _analyse(conn.records)
    assert [(i.name, i.status) for i in items] == [("bad", 404), ("lost", None)]
    assert items[0].daemon_total_ms is None
    assert items[1].wire_ms is None
    assert analyzer.cross_check(items, 1.0).compared == 0
    assert not analyzer.cross_check(items, 1.0).agrees


def test_linux_cooked_capture() -> None:
    frame = bytes(CookedLinux(proto=0x0800) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())
    data = pcap.build([frame], linktype=capture.LINKTYPE_LINUX_SLL)
    cap = capture.read_capture(data)
    assert [(p.source, p.destination, p.protocol) for p in cap.packets] == [
        ("10.0.0.1", "10.0.0.2", 6)
    ]


def test_pcapng_capture_reads_like_the_pcap_one(tmp_path: Path) -> None:
    frames = [
        bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=8080) / Raw(b"x" * n))
        for n in (1, 100)
    ]
    classic = pcap.build(frames, start_ns=1_700_000_000_000_001_000)
    converted = capture.read_capture(editcap_pcapng(classic, tmp_path).read_bytes())
    assert converted == capture.read_capture(classic)
    assert len(converted.packets) == 2


def test_garbage_is_skipped_or_refused() -> None:
    data = pcap.build([b"\x00" * 10, bytes(Ether() / IP() / TCP())])
    cap = capture.read_capture(data)
    assert cap.skipped == 1
    assert len(cap.packets) == 1
    with pytest.raises(CaptureError):
        capture.read_capture(b"not a pcap at all, clearly")


def test_daemon_timing_can_be_filled_later() -> None:
    item = analyzer.Instantiation("x", 201, T0, 5.0, 4.0, None, {}, None, ())
    filled = analyzer.with_daemon_timing(item, {"timing": {"accept": 1.0, "total": 3.5}})
    assert filled.daemon_total_ms == 3.5
    assert filled.difference_ms == pytest.approx(0.5)
    assert analyzer.with_daemon_timing(item, None) is item


def test_capture_started_mid_connection() -> None:
    """No SYN in the capture (a keep-alive connection opened before tcpdump started)."""
    conn = Conn(40004)
    conn.cseq, conn.sseq = 4_294_967_000, 77  # and the client's sequence numbers wrap
    for index in range(2):
        head, body = _post(f"mid-{index}")
        conn.add(10.0 * index + 1, True, head + body)
        rhead, rbody = _response(f"mid-{index}", 1.0)
        conn.add(10.0 * index + 3, False, rhead + rbody)
    _, items = _analyse(conn.records)
    assert [(i.name, i.status) for i in items] == [("mid-0", 201), ("mid-1", 201)]
    assert items[1].server_ms == pytest.approx(2.0, abs=1e-3)


def test_analyze_command_reads_a_file_or_standard_input_alike() -> None:
    from typer.testing import CliRunner

    from fluidedge.cli import app

    conn = Conn(40000)
    conn.handshake(0.0)
    head, body = _post("web-9")
    conn.add(1.0, True, head + body)
    rhead, rbody = _response("web-9", 3.0)
    conn.add(5.0, False, rhead + rbody)
    data = pcap.build(sorted(conn.records, key=lambda r: r.timestamp_ns))
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    from_file = runner.invoke(app, ["analyze", str(_file(data)), "--api-port", str(PORT)], env=env)
    from_stdin = runner.invoke(app, ["analyze", "-", "--api-port", str(PORT)], input=data, env=env)
    assert from_file.exit_code == 0, from_file.output
    assert from_stdin.exit_code == 0, from_stdin.output
    assert "web-9" in from_file.stdout
    assert "1 instantiation requests" in from_file.stdout
    assert from_stdin.stdout.splitlines()[1:] == from_file.stdout.splitlines()[1:]


def test_streamed_capture_cut_short_keeps_what_was_complete() -> None:
    frames = [bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=80)) for _ in range(3)]
    data = pcap.build(frames)[:-5]
    counts = capture.Counts()
    got = list(capture.stream_packets(io.BytesIO(data), counts))
    assert len(got) == counts.packets == 2
    assert counts.damage is not None
    assert "pcap record" in counts.damage
    with pytest.raises(CaptureError, match="not a readable capture"):
        list(capture.stream_packets(io.BytesIO(b"garbage" * 10), capture.Counts()))
