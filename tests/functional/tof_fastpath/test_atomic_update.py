"""A service update under traffic: each packet goes to the old app or the new one, intact."""

from __future__ import annotations

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
COUNT = 1500
SVC_PACKED = bytes(int(x) for x in SVC.split("."))


def test_put_moves_the_flow_between_apps_without_a_mixed_packet() -> None:
    with topology("u") as t:
        ip(t.app, "addr", "add", f"{APP2_IP}/24", "dev", "eth0")
        backend = FastPathBackend(config(t))
        backend.start()
        try:
            backend.apply({"web": Service("web", SVC, APP_IP)})
            learn_bearer(t)
            t.collect(0.3)
            frames = [
                up(ENB1, 0x100, inner_udp(UE1, SVC_PACKED, 41000, 7000, i.to_bytes(4, "big")))
                for i in range(COUNT)
            ]
            progress = [0]

            def sender() -> None:
                for i, frame in enumerate(frames):
                    t.send("enb", frame)
                    progress[0] = i
                    time.sleep(0.0007)  # ~1,400 pps: below the punt rate, nothing switched

            thread = threading.Thread(target=sender)
            thread.start()
            time.sleep(0.5)
            backend.apply({"web": Service("web", SVC, APP2_IP)})  # PUT: same name, new app
            moved_at = progress[0] + 1  # sent after apply() returned
            thread.join()
            got = t.collect(0.5)["app"]
        finally:
            backend.stop()
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
        seen[index] = dst
    assert sorted(seen) == list(range(COUNT))  # none lost, none duplicated into the core
    assert all(seen[i] == APP2_IP for i in range(moved_at, COUNT))
    assert seen[0] == APP_IP  # the old mapping was in force before
    assert 0 < moved_at < COUNT
