"""serviceIP == applicationIP: offloaded by decapsulation alone, no address is rewritten."""

from __future__ import annotations

from tests.unit.tof.bearer_frames import down_to
from tests.unit.tof.test_pipeline import (
    APP,
    ENB1,
    PDN,
    SGW1,
    UE1,
    assert_checksums,
    gpdu,
    inner_of,
    pipeline,
    udp_packet,
)

from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, SGW


def test_same_address_offload_and_reply_are_unchanged_packets() -> None:
    p = pipeline()
    p.set_services({"here": Service("here", "198.19.0.10", "198.19.0.10")})
    p.from_s1(down_to(SGW1, ENB1, 0x200, UE1), SGW, 0.5)
    packet = udp_packet(UE1, APP, 40000, 8080, b"GET /")
    out = p.from_s1(gpdu(ENB1, SGW1, 0x100, packet), ENB, 1.0)
    assert out == [(APPS, packet)]  # decapsulated, not one octet rewritten
    reply = udp_packet(APP, UE1, 8080, 40000, b"200 OK")
    out = p.from_apps(reply, 1.1)
    assert [port for port, _ in out] == [ENB]
    inner, teid = inner_of(out[0][1])
    assert teid == 0x200
    assert inner == reply  # re-encapsulated as is: source is the address the UE used
    assert_checksums(inner)
    assert p.service_counters["here"].up_packets == 1
    assert p.service_counters["here"].down_packets == 1
    # Other destinations still pass through.
    other = gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, PDN, 40000, 53))
    assert p.from_s1(other, ENB, 1.2)[0][1] is other
