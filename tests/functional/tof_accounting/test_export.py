"""The exporter on real loopback sockets and files: UDP and TCP collectors (our decoder), the
spool while the collector is down, JSON Lines rotation, and the restart marker."""

from __future__ import annotations

import json
import socket
import stat
import time
from pathlib import Path

import pytest

from fluidedge.tof.accounting import ipfix, policy
from fluidedge.tof.accounting.config import AccountingConfig
from fluidedge.tof.accounting.export import Exporter
from fluidedge.tof.accounting.usage import UsageRecord
from tests.fixtures.wait import wait_until

PEN = 32473


def record(i: int, trigger: str = policy.VOLUME) -> UsageRecord:
    return UsageRecord(
        ue=f"198.18.100.{i % 250 + 1}",
        enb="198.18.0.11",
        sgw="198.18.0.21",
        uplink_teid=i + 1,
        downlink_teid=i + 2,
        service="web",
        service_ip="198.18.50.1",
        uplink_packets=1,
        uplink_bytes=1000 + i,
        downlink_packets=1,
        downlink_bytes=2000 + i,
        first=1000.0 + i,
        last=1001.0 + i,
        closed=1002.0 + i,
        trigger=trigger,
    )


def free_udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def receive_udp(sock: socket.socket, decoder: ipfix.Decoder, want: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while len(rows) < want and time.monotonic() < deadline:
        message, _ = decoder.decode(sock.recv(65535))
        rows += message.records
    return rows


def exporter(tmp_path: Path, pending: list[UsageRecord], **cfg: object) -> Exporter:
    config = AccountingConfig.model_validate({"enabled": True, **cfg})

    def take() -> list[UsageRecord]:
        out = list(pending)
        pending.clear()
        return out

    return Exporter(config, tmp_path / "acct", take, lambda: [])


def test_udp_collector_down_spools_and_delivers_in_order_after(tmp_path: Path) -> None:
    sock = free_udp()
    port = sock.getsockname()[1]
    pending: list[UsageRecord] = []
    exp = exporter(tmp_path, pending, ipfix={"collector": f"127.0.0.1:{port}"})
    exp.start()
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        decoder = ipfix.Decoder(PEN)
        pending.extend(record(i) for i in range(3))
        exp.pump()
        rows = receive_udp(sock, decoder, 6)
        assert [r["octetDeltaCount"] for r in rows] == [1000, 2000, 1001, 2001, 1002, 2002]
        sock.close()  # the collector goes down: ICMP port unreachable on the connected socket
        pending.extend(record(i) for i in range(3, 8))
        exp.pump()
        assert exp.spool is not None
        assert exp.spool.size() > 0
        spool_dir = tmp_path / "acct" / "spool"
        assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in spool_dir.iterdir())
        pending.extend(record(i) for i in range(8, 10))  # later records queue behind the spool
        exp.pump()
        # The collector returns on the same port: everything arrives, in order, once.
        back.bind(("127.0.0.1", port))
        back.settimeout(5)
        deadline = time.monotonic() + 30
        rows = []
        while len(rows) < 14 and time.monotonic() < deadline:
            exp.pump()
            try:
                message, _ = decoder.decode(back.recv(65535))
            except TimeoutError:
                continue
            rows += message.records
        assert [r["uplinkTEID"] for r in rows[::2]] == [i + 1 for i in range(3, 10)]
        # The export thread removes a spool file after its send returned: the collector can
        # have the records a moment before the file is gone.
        spool = exp.spool
        assert wait_until(lambda: spool.size() == 0, 10)
        exp.pump()
        back.settimeout(0.5)
        with pytest.raises(TimeoutError):  # once: nothing is sent again
            back.recv(65535)
    finally:
        back.close()
        sock.close()
        exp.stop([])


def test_tcp_collector_gets_templates_once_per_connection(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    pending = [record(i) for i in range(40)]
    exp = exporter(tmp_path, pending, ipfix={"collector": f"127.0.0.1:{port}", "transport": "tcp"})
    exp.start()
    conn, _ = listener.accept()
    conn.settimeout(10)
    try:
        exp.pump()
        pending.extend(record(i) for i in range(40, 50))
        exp.pump()
        exp.stop([record(99, policy.SHUTDOWN)])
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        decoder = ipfix.Decoder(PEN)
        rows, templates, seqs = [], 0, []
        while data:
            message, used = decoder.decode(data)
            data = data[used:]
            templates += len(message.templates) > 0
            seqs.append(message.sequence)
            rows += message.records
        assert templates == 1
        assert len(rows) == 2 * 51
        assert rows[-1]["reportTrigger"] == ipfix.TRIGGER_CODES[policy.SHUTDOWN]
        assert seqs == sorted(seqs)
    finally:
        conn.close()
        listener.close()


def test_spool_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    sock = free_udp()
    port = sock.getsockname()[1]
    sock.close()  # nobody listens
    pending = [record(i) for i in range(100)]
    exp = exporter(
        tmp_path, pending, ipfix={"collector": f"127.0.0.1:{port}"}, spool_max_bytes=5000
    )
    exp.start()
    try:
        exp.pump()
        assert exp.spool is not None
        assert 0 < exp.spool.size() <= 5000
        kept = sum(len(p.read_bytes().splitlines()) for p in exp.spool.files())
        assert kept + exp.spool.dropped == 100
        assert exp.stats()["spool"]["dropped"] == exp.spool.dropped  # type: ignore[index]
    finally:
        exp.stop([])


def test_jsonl_rotates_and_keeps(tmp_path: Path) -> None:
    pending: list[UsageRecord] = []
    exp = exporter(tmp_path, pending, jsonl={"max_bytes": 2048, "keep": 2})
    exp.start()
    try:
        for i in range(60):
            pending.append(record(i))
            exp.pump()
    finally:
        exp.stop([])
    records_dir = tmp_path / "acct" / "records"
    rotated = sorted(records_dir.glob("usage-*.jsonl"))
    assert len(rotated) == 2
    rows = [
        json.loads(line)
        for p in [*rotated, records_dir / "usage.jsonl"]
        for line in p.read_text().splitlines()
    ]
    ids = [r["uplink_teid"] - 1 for r in rows]
    assert ids == list(range(ids[0], 60))  # the newest, contiguous; older files deleted
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in records_dir.iterdir())


def test_kill_marks_open_records_lost_at_the_next_start(tmp_path: Path) -> None:
    config = AccountingConfig.model_validate({"enabled": True, "jsonl": {}})
    open_now = [
        {
            "ue": "198.18.100.7",
            "enb": "198.18.0.11",
            "sgw": "198.18.0.21",
            "uplink_teid": 5,
            "downlink_teid": 6,
            "service": "web",
            "service_ip": "198.18.50.1",
            "first": 1000.0,
        }
    ]
    first = Exporter(config, tmp_path / "acct", list, lambda: open_now)
    first.start()  # writes the marker ...
    first._stop.set()  # ... and "dies": no stop(), the marker stays
    assert (tmp_path / "acct" / "open.json").exists()
    second = Exporter(config, tmp_path / "acct", list, lambda: [])
    second.start()
    second.stop([])
    rows = [
        json.loads(line)
        for line in (tmp_path / "acct" / "records" / "usage.jsonl").read_text().splitlines()
    ]
    assert [(r["ue"], r["trigger"], r["lost"]) for r in rows] == [
        ("198.18.100.7", "lost", True),
        ("", "lost", True),
    ]
    assert rows[0]["uplink_bytes"] == 0
    assert not (tmp_path / "acct" / "open.json").exists()  # a clean stop leaves no marker
    third = Exporter(config, tmp_path / "acct", list, lambda: [])
    third.start()
    third.stop([])
    lines = (tmp_path / "acct" / "records" / "usage.jsonl").read_text().splitlines()
    assert len(lines) == 2  # nothing lost after a clean stop


def test_a_failing_round_is_counted_and_the_thread_goes_on(tmp_path: Path) -> None:
    pending: list[UsageRecord] = []
    exp = exporter(tmp_path, pending, jsonl={})
    exp.start()
    try:
        # The records directory is replaced by a file: every write fails (root or not).
        records_dir = tmp_path / "acct" / "records"
        records_dir.rename(tmp_path / "moved")
        records_dir.write_text("not a directory")
        pending.append(record(1))
        assert wait_until(lambda: sum(exp.errors.values()) > 0, timeout=30)
        assert exp._thread is not None
        assert exp._thread.is_alive()
        assert exp.stats()["held"] == {"records": 1, "dropped": 0}  # kept, not lost
        # The directory comes back: the held record is written at the next round.
        records_dir.unlink()
        (tmp_path / "moved").rename(records_dir)
        assert wait_until(lambda: exp.stats()["held"] == {"records": 0, "dropped": 0}, timeout=30)
        rows = (records_dir / "usage.jsonl").read_text().splitlines()
        assert [json.loads(r)["uplink_teid"] for r in rows] == [2]
    finally:
        exp.stop([])


def test_held_records_count_until_they_are_written(tmp_path: Path) -> None:
    """A failed round's records stay counted as held while their retry is being written:
    "held 0" in /stats means written, never "on their way"."""
    pending: list[UsageRecord] = [record(1)]
    exp = exporter(tmp_path, pending, jsonl={})
    assert exp.jsonl is not None
    writer = exp.jsonl
    real_write = writer.write
    seen: list[object] = []

    def failing(records: list[UsageRecord]) -> None:
        raise OSError(28, "No space left on device")

    def watched(records: list[UsageRecord]) -> None:
        seen.append(exp.stats()["held"])  # what a reader sees while the write is under way
        real_write(records)

    writer.write = failing  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        exp.pump()
    assert exp.stats()["held"] == {"records": 1, "dropped": 0}
    writer.write = watched  # type: ignore[method-assign]
    exp.pump()
    assert seen == [{"records": 1, "dropped": 0}]
    assert exp.stats()["held"] == {"records": 0, "dropped": 0}
    rows = (tmp_path / "acct" / "records" / "usage.jsonl").read_text().splitlines()
    assert [json.loads(r)["uplink_teid"] for r in rows] == [2]
