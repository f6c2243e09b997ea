"""A service update under traffic: each packet goes to the old app or the new one, intact.

The ordering is exact, not timed: every frame carries its sequence number; the sender publishes
the number of the frame it is *about* to send, so a frame numbered above what the test read
after ``apply()`` returned began its send after the new mapping was in place and must reach the
new app. What reached the app before ``apply()`` was called went to the old one.
"""

from __future__ import annotations

import select
import threading
import time

import pytest

from fluidedge.codec.net import checksum as ck
from fluidedge.codec.net import udp
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.models import Service

from .scenario import ENB1, SVC, UE1, config, inner_udp, learn_bearer, up
from .topo import APP_IP, ip, topology

pytestmark = pytest.mark.root

APP2_IP = "198.19.0.11"
AFTER = 300  # frames sent after apply() returned
MAX_FRAMES = 60_000  # the sender's bound if the test never gets to apply()
SVC_PACKED = bytes(int(x) for x in SVC.split("."))


def _frame(seq: int) -> bytes:
    return up(ENB1, 0x100, inner_udp(UE1, SVC_PACKED, 41000, 7000, seq.to_bytes(4, "big")))


def _to_app(got: list[bytes]) -> dict[int, str]:
    """Sequence number -> app address of each offloaded frame, checked intact."""
    seen: dict[int, str] = {}
    for frame in got:
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        packet = frame[14:]
        assert ck.checksum(packet[:20]) == 0
        assert udp.checksum_ok(packet[12:16], packet[16:20], packet[20:])
        assert packet[12:16] == UE1  # source untouched
        index = int.from_bytes(packet[28:32], "big")
        dst = ".".join(str(b) for b in packet[16:20])
        assert dst in (APP_IP, APP2_IP)
        assert index not in seen  # none duplicated into the apps
        seen[index] = dst
    return seen


def test_put_moves_the_flow_between_apps_without_a_mixed_packet() -> None:
    with topology("u") as t:
        ip(t.app, "addr", "add", f"{APP2_IP}/24", "dev", "eth0")
        backend = FastPathBackend(config(t))
        backend.start()
        try:
            backend.apply({"web": Service("web", SVC, APP_IP)})
            learn_bearer(t)
            sending = [0]  # the sequence number of the frame being sent (set before its send)
            last = [MAX_FRAMES - 1]  # the sender stops after this one

            def sender() -> None:
                seq = 0
                while seq <= last[0]:
                    frame = _frame(seq)
                    sending[0] = seq
                    t.send("enb", frame)
                    seq += 1
                    time.sleep(0.0007)  # ~1,400 pps: below the punt rate, nothing switched

            thread = threading.Thread(target=sender)
            thread.start()
            before: list[bytes] = []
            deadline = time.monotonic() + 30
            while not _to_app(before) and time.monotonic() < deadline:
                select.select([t.socks["app"]], [], [], 0.1)
                before += t.drain("app")
            backend.apply({"web": Service("web", SVC, APP2_IP)})  # PUT: same name, new app
            moved_at = sending[0] + 1  # this frame and every later one began after apply()
            last[0] = moved_at + AFTER - 1
            thread.join()
            after = t.collect(0.5)["app"]
        finally:
            last[0] = -1
            backend.stop()
    old = _to_app(before)
    assert old, "no frame reached the old app before the update"
    assert set(old.values()) == {APP_IP}  # the old mapping was in force before
    seen = _to_app(before + after)
    assert sorted(seen) == list(range(moved_at + AFTER))  # none lost, none duplicated
    assert all(seen[i] == APP2_IP for i in range(moved_at, moved_at + AFTER))
