"""Usage accounting on the fast path, with real traffic: the bytes the usage records give each
UE equal the bytes captured leaving the offload (uplink at the app, downlink toward the eNB),
while the kernel did the offloading; bearer end and stop lose nothing (docs/accounting.md)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Callable

import pytest

from fluidedge.codec.net import ipv4, udp
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.accounting import policy, readout
from fluidedge.tof.accounting.usage import Accountant, UsageRecord
from fluidedge.tof.config import TofConfig
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service

from .scenario import APP, APP_PORT, ENB1, ENB2, PDN, SVC, UE1, UE2, P, config, down, inner_udp, up
from .topo import APP_IP, Topo, topology

pytestmark = pytest.mark.root

BEARERS = {UE1: (ENB1, 0x100, 0x200), UE2: (ENB2, 0x301, 0x302)}
PORTS = {UE1: 41000, UE2: 42000}
GTP_INNER = 14 + 20 + 8 + 8  # the inner packet in a G-PDU without extensions


def _config(t: Topo) -> TofConfig:
    # check_interval 60: the periodic fold stays out of this test's way, so each step below
    # proves its own fold (GET /usage's, a bearer event's, stop's).
    accounting = {"enabled": True, "jsonl": {}, "period": 3600, "check_interval": 60}
    return TofConfig.model_validate({**config(t).model_dump(), "accounting": accounting})


def _text(ue: bytes) -> str:
    return str(ipaddress.ip_address(ue))


def _captured(got: dict[str, list[bytes]], *, packets: bool = False) -> Counter[tuple[str, str]]:
    """Inner IP bytes (or ``packets``) per (UE, direction) that left the offload: to the app,
    to the eNBs."""
    out: Counter[tuple[str, str]] = Counter()
    for f in got["app"]:
        if f[12:14] == b"\x08\x00" and f[30:34] == APP and f[26:30] in BEARERS:
            out[(_text(f[26:30]), "up")] += 1 if packets else int.from_bytes(f[16:18], "big")
    svc = P(SVC)
    for f in got["enb"]:
        inner = f[GTP_INNER:]
        if f[12:14] == b"\x08\x00" and inner[12:16] == svc and inner[16:20] in BEARERS:
            out[(_text(inner[16:20]), "down")] += (
                1 if packets else int.from_bytes(inner[2:4], "big")
            )
    return out


def _all_of(expected: dict[tuple[bytes, str], int]) -> Callable[[dict[str, list[bytes]]], bool]:
    """A collection's ``until``: every (UE, direction) has reached its packet count. The
    quiet period alone ends early where the machine is slow (an emulated CPU: the VM tier)."""

    def arrived(got: dict[str, list[bytes]]) -> bool:
        counts = _captured(got, packets=True)
        return all(counts[(_text(ue), d)] >= n for (ue, d), n in expected.items())

    return arrived


def _open(backend: FastPathBackend) -> Counter[tuple[str, str]]:
    view = readout.usage_view(backend.with_accounting, None, None)[0] or {}
    rows = view.get("open", [])
    assert isinstance(rows, list)
    out: Counter[tuple[str, str]] = Counter()
    for row in rows:
        for d, key in (("up", "uplink"), ("down", "downlink")):
            counts = row[key]
            assert isinstance(counts, dict)
            out[(str(row["ue"]), d)] += counts["bytes"]
    return out


def _records(records: list[UsageRecord]) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for r in records:
        out[(r.ue, "up")] += r.uplink_bytes
        out[(r.ue, "down")] += r.downlink_bytes
    return out


def test_fast_path_usage_equals_the_bytes_the_offload_carried() -> None:
    with topology("ac") as t:
        backend = FastPathBackend(_config(t))
        backend.start()
        app_sock = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        raw = call_in_netns(
            t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        )
        stopped = False
        try:
            app_sock.bind((APP_IP, APP_PORT))
            for ue, (enb, ul, dl) in BEARERS.items():
                t.send("enb", up(enb, ul, inner_udp(ue, PDN, 40000, 53, b"learn")))
                t.send("sgw", down(enb, dl, inner_udp(PDN, ue, 53, 40000, b"learn")))
            backend.apply({"web": Service("web", SVC, APP_IP)})
            t.collect(0.3)

            def send_up(ue: bytes, n: int) -> None:
                enb, ul, _dl = BEARERS[ue]
                for i in range(n):
                    body = bytes(40 + (i * 97) % 1300)  # sizes vary: bytes, not packets x size
                    t.send("enb", up(enb, ul, inner_udp(ue, P(SVC), PORTS[ue], APP_PORT, body)))

            def reply(ue: bytes, n: int) -> None:
                for i in range(n):
                    datagram = udp.encode(APP, ue, APP_PORT, PORTS[ue], bytes(30 + (i * 61) % 1200))
                    raw.sendto(ipv4.encode(APP, ue, 17, datagram), (_text(ue), 0))

            # The flows' first packets: the agent creates the flows, the kernel gets them.
            send_up(UE1, 1)
            send_up(UE2, 1)
            carried = _captured(t.collect(0.3, _all_of({(UE1, "up"): 1, (UE2, "up"): 1})))
            send_up(UE1, 300)
            send_up(UE2, 60)
            reply(UE1, 200)
            reply(UE2, 40)
            expected = {(UE1, "up"): 300, (UE2, "up"): 60, (UE1, "down"): 200, (UE2, "down"): 40}
            carried += _captured(t.collect(0.5, _all_of(expected)))
            assert carried[(_text(UE1), "up")] > 0
            assert carried[(_text(UE2), "down")] > 0
            before = _open(backend)
            backend.fold_usage()  # what GET /usage does first
            assert _open(backend) == carried
            assert before != carried  # the kernel's share came from the fold
            fast = backend.stats()["fastpath"]
            assert isinstance(fast, dict)
            # The kernel offloaded everything after the flows' first packets.
            assert fast["offloaded_uplink"] == 300 + 60
            assert fast["offloaded_downlink"] == 200 + 40
            assert fast["errors"] == 0
            assert backend.stats()["usageOrphaned"] == {"packets": 0, "bytes": 0}

            # Bearer end: the purge closes the records with everything counted so far.
            send_up(UE1, 40)  # no wait for the fold: the close folds the bearer first
            more = _captured(t.collect(0.3, _all_of({(UE1, "up"): 40})))
            backend.purge()
            closed = backend.with_accounting(lambda a: a.drain()) or []
            assert {r.trigger for r in closed} == {policy.BEARER_END}
            assert _records(closed) == carried + more

            # Stop: what the kernel counted since the last fold reaches the final records.
            for ue, (enb, ul, dl) in BEARERS.items():
                t.send("enb", up(enb, ul, inner_udp(ue, PDN, 40000, 53, b"learn")))
                t.send("sgw", down(enb, dl, inner_udp(PDN, ue, 53, 40000, b"learn")))
            t.collect(0.3)
            send_up(UE2, 50)
            last = _captured(t.collect(0.3, _all_of({(UE2, "up"): 50})))
            backend.stop()
            stopped = True

            def close_all(a: Accountant) -> list[UsageRecord]:
                a.shutdown(time.monotonic())
                return a.drain()

            final = backend.with_accounting(close_all) or []
            assert _records(final) == last
            assert backend.usage_orphaned == {"packets": 0, "bytes": 0}
        finally:
            app_sock.close()
            raw.close()
            if not stopped:
                backend.stop()
