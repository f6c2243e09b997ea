"""The usage read-outs never hold the data plane's lock across the open records.

``hold`` here runs the call inline and records what each hold read; between two holds it
plays the data plane, counting one more packet (100 bytes) on every open record. The holds
are: one snapshot, then the counters of at most ``CHUNK`` records each; a row's four counters
come from one hold (bytes stay 100 x packets); the filter and the rows are built outside.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from fluidedge.tof.accounting import policy, readout
from fluidedge.tof.accounting.config import AccountingConfig
from fluidedge.tof.accounting.readout import CHUNK
from fluidedge.tof.accounting.usage import Accountant, Usage
from fluidedge.tof.pipeline import Bearer

ENB, SGW = bytes([198, 18, 0, 11]), bytes([198, 18, 0, 21])
N = 2 * CHUNK + 5


def _ue(i: int) -> bytes:
    return ipaddress.IPv4Address(0x0A000000 + i).packed


class Plane:
    """An accountant with N open records (web: even UEs, video: odd), and the hold."""

    def __init__(self) -> None:
        self.accountant = Accountant(AccountingConfig(), wall_offset=1000.0)
        for i in range(N):
            bearer = Bearer(ENB, SGW, _ue(i), 0x100 + i, 0x200 + i)
            usage = self.accountant.open(bearer, "web" if i % 2 == 0 else "video", b"\1\2\3\4", 1.0)
            self.count(usage)
        self.holds: list[str] = []

    @staticmethod
    def count(usage: Usage) -> None:
        usage.ul_packets += 1
        usage.ul_bytes += 100
        usage.dl_packets += 2
        usage.dl_bytes += 400

    def hold(self, call: Callable[[Accountant], Any]) -> Any:
        if self.holds:  # the data plane, between two holds
            for usage in list(self.accountant.active):
                self.count(usage)
        result = call(self.accountant)
        kind = "snapshot" if not isinstance(result, list) else f"counters:{len(result)}"
        self.holds.append(kind)
        return result


def test_usage_view_reads_counters_a_chunk_per_hold_and_each_row_at_one_instant() -> None:
    plane = Plane()
    view = readout.usage_view(plane.hold, None, None)[0]
    assert view is not None
    assert plane.holds == ["snapshot", f"counters:{CHUNK}", f"counters:{CHUNK}", "counters:5"]
    rows = view["open"]
    assert isinstance(rows, list)
    assert len(rows) == N
    for row in rows:
        up, down = row["uplink"], row["downlink"]
        assert up["bytes"] == 100 * up["packets"]
        assert down == {"packets": 2 * up["packets"], "bytes": 400 * up["packets"]}
    # The first chunk was read before the data plane counted again, the last after twice.
    assert [rows[i]["uplink"]["packets"] for i in (0, CHUNK, 2 * CHUNK)] == [2, 3, 4]
    totals = view["totals"]
    assert isinstance(totals, dict)
    assert totals["open"] == N
    packets = sum(r["uplink"]["packets"] for r in rows)
    services = totals["services"]
    assert services["web"]["upPackets"] + services["video"]["upPackets"] == packets


def test_filters_compare_packed_addresses_outside_the_lock() -> None:
    plane = Plane()
    view = readout.usage_view(plane.hold, _ue(7), None)[0]
    assert view is not None
    rows = view["open"]
    assert isinstance(rows, list)
    assert [(r["ue"], r["service"], r["uplinkTEID"]) for r in rows] == [
        ("10.0.0.7", "video", 0x107)
    ]
    assert rows[0]["first"] == 1001.0
    view = readout.usage_view(plane.hold, None, "web")[0]
    assert view is not None
    assert len(view["open"]) == (N + 1) // 2  # type: ignore[arg-type]
    none = readout.usage_view(plane.hold, _ue(N + 1), None)[0]
    assert none is not None
    assert none["open"] == []


def test_totals_add_the_closed_records_once() -> None:
    plane = Plane()
    accountant = plane.accountant
    usage = next(iter(accountant.active))
    accountant.close(usage, policy.VOLUME, 2.0)  # reported now: 1 packet up, out of the open
    totals = readout.totals(plane.hold)
    assert totals is not None
    assert totals["open"] == N - 1
    assert totals["records"] == {policy.VOLUME: 1}
    services = totals["services"]
    assert isinstance(services, dict)
    # Every record counted once: the closed one's 1 packet (reported), the open ones' as
    # their chunk read them (2, 3, then 4 packets: the data plane counts between holds).
    expected = 1 + 2 * CHUNK + 3 * CHUNK + 4 * (N - 1 - 2 * CHUNK)
    assert services["web"]["upPackets"] + services["video"]["upPackets"] == expected


def test_identities_read_no_counters() -> None:
    plane = Plane()
    rows = readout.identities(plane.hold)
    assert plane.holds == ["snapshot"]
    assert len(rows) == N
    assert rows[3] == {
        "ue": "10.0.0.3", "enb": "198.18.0.11", "sgw": "198.18.0.21", "uplink_teid": 0x103,
        "downlink_teid": 0x203, "service": "video", "service_ip": "1.2.3.4", "first": 1001.0,
    }  # fmt: skip


def test_accounting_off_reads_nothing() -> None:
    def off(call: Callable[[Accountant], Any]) -> None:
        return None

    assert readout.usage_view(off, None, None) == (None, None)
    assert readout.totals(off) is None
    assert readout.identities(off) == []


def test_keyset_pages_walk_every_record_once_by_marker() -> None:
    plane = Plane()
    seen: list[str] = []
    after = None
    while True:
        view, after = readout.usage_view(plane.hold, None, "web", after, 100)
        assert view is not None
        rows = view["open"]
        assert isinstance(rows, list)
        assert len(rows) <= 100
        seen += [str(r["ue"]) for r in rows]
        if after is None:
            break
        assert after.endswith("-web")
    assert len(seen) == len(set(seen)) == (N + 1) // 2
    assert seen == sorted(seen, key=lambda t: ipaddress.ip_address(t).packed)
    # Without limit or after: every record, in opening order.
    view, marker = readout.usage_view(plane.hold, None, None)
    assert marker is None
    assert view is not None
    assert [r["ue"] for r in view["open"]][:3] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]  # type: ignore[index]
