"""What the TOF does to a peer's GTP-U sequence numbers (S flag), measured frame by frame.

docs/tof.md ("Sequence numbers") states the decision: the TOF does not renumber. These tests
pin exactly what the peers then see: pass-through frames keep their numbers (byte-identical),
each offloaded uplink G-PDU is one missing number toward the core, each swallowed Pinger reply
one missing number toward the eNB, and the frames the TOF builds carry no sequence number.
"""

from __future__ import annotations

import itertools

from tests.unit.tof.bearer_frames import echo_reply, pinger_seq_of
from tests.unit.tof.test_pipeline import (
    APP,
    ENB1,
    MAC_ENB,
    MAC_SGW,
    PDN,
    SERVICE,
    SGW1,
    SVC_IP,
    UE1,
    pipeline,
    udp_packet,
)

from fluidedge.codec.stack import classify, encapsulate_gpdu, ethernet_frame
from fluidedge.tof.pipeline import APPS, ENB, SGW, Pipeline


def seq_frame(src: bytes, dst: bytes, teid: int, inner: bytes, seq: int, *, uplink: bool) -> bytes:
    outer = encapsulate_gpdu(src, dst, teid, inner, sequence=seq, udp_checksum=False)
    macs = (MAC_SGW, MAC_ENB) if uplink else (MAC_ENB, MAC_SGW)
    return ethernet_frame(macs[0], macs[1], outer)


def sequence_of(frame: bytes) -> int | None:
    """The GTP-U sequence number, or None when the S flag is clear."""
    c = classify(frame)
    assert c.udp_offset is not None
    gtp = c.udp_offset + 8
    if not frame[gtp] & 0x02:
        return None
    return (frame[gtp + 8] << 8) | frame[gtp + 9]


def gaps(numbers: list[int]) -> int:
    return sum((b - a - 1) & 0xFFFF for a, b in itertools.pairwise(numbers))


def run_uplink(p: Pipeline, pattern: list[bool], now: float) -> tuple[list[int], int]:
    """Send one S-numbered uplink stream (True = to the service); return the numbers the SGW
    side received and how many frames were offloaded."""
    at_core: list[int] = []
    offloaded = 0
    for seq, to_service in enumerate(pattern):
        dst = SVC_IP if to_service else PDN
        frame = seq_frame(ENB1, SGW1, 0x100, udp_packet(UE1, dst, 4000, 8080), seq, uplink=True)
        for port, out in p.from_s1(frame, ENB, now):
            if port == SGW and out is frame:
                number = sequence_of(out)
                assert number is not None
                at_core.append(number)
            elif port == APPS:
                offloaded += 1
    return at_core, offloaded


def test_uplink_offload_leaves_one_gap_per_offloaded_frame() -> None:
    p = pipeline()
    p.set_services({"web": SERVICE})
    p.from_s1(
        seq_frame(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 53, 4000), 0, uplink=False), SGW, 0.0
    )
    pattern = [i % 4 == 1 for i in range(400)]  # every 4th packet to the service
    at_core, offloaded = run_uplink(p, pattern, 1.0)
    assert offloaded == 100
    assert len(at_core) == 300
    assert at_core == sorted(at_core)  # order kept, numbers unchanged
    assert gaps(at_core) == offloaded - (1 if pattern[-1] else 0)


def test_swallowed_pinger_reply_consumes_one_downlink_number_and_tof_frames_carry_none() -> None:
    p = pipeline(pinger_interval=10.0)
    p.set_services({"web": SERVICE})
    up = seq_frame(ENB1, SGW1, 0x100, udp_packet(UE1, SVC_IP, 4000, 8080), 7, uplink=True)
    out = p.from_s1(up, ENB, 1.0)
    ping = next(f for port, f in out if port == SGW)
    assert sequence_of(ping) is None  # the Pinger's G-PDU has no S flag
    assert p.from_apps(udp_packet(APP, UE1, 8080, 4000), 1.1) == []
    # The SGW numbers its downlink: 10 = the Pinger's answer (swallowed), 11, 12 = user data.
    at_enb: list[int | None] = []
    reply = echo_reply(UE1, pinger_seq_of(ping))
    frames = [seq_frame(SGW1, ENB1, 0x200, reply, 10, uplink=False)] + [
        seq_frame(SGW1, ENB1, 0x200, udp_packet(PDN, UE1, 53, 4000), n, uplink=False)
        for n in (11, 12)
    ]
    for frame in frames:
        for port, f in p.from_s1(frame, SGW, 1.2):
            assert port == ENB
            at_enb.append(sequence_of(f))
    # The queued app reply (built by the TOF: no number) goes first, then 11 and 12; 10 is gone.
    assert at_enb == [None, 11, 12]
    out = p.from_apps(udp_packet(APP, UE1, 8080, 4000), 1.3)
    assert [sequence_of(f) for _, f in out] == [None]
