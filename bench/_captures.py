"""Large captures of real-shaped traffic for the streaming benchmarks, written in constant memory.

G-PDUs shaped like what osmo-ggsn (and most real cores) send on Gn/S1-U: GTP-U flags 0x32 (the S
flag and a per-tunnel sequence number), UDP checksum set, inner IPv4 carrying ICMP echo
(ping's 56-byte payload) or TCP (bare ACKs and small segments), both directions, many UEs and
TEIDs. A pool of distinct frames is built with the codec's encoders (correct checksums), then
written round-robin with each tunnel's sequence number advanced and the outer UDP checksum
updated incrementally (RFC 1624), so every frame of the file is a valid, distinct-enough
G-PDU and the 1,000,000-frame file takes seconds, not minutes, to write.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from fluidedge.codec.net import checksum, ipv4
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame

MAC_ENB, MAC_SGW = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
ENB, SGW = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
SERVER = bytes([198, 19, 0, 10])
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
_RECORD = struct.Struct("<IIII")
GTP_OFFSET = 42  # Ethernet 14 + IPv4 20 + UDP 8
UDP_CHECKSUM_OFFSET = 40


def _icmp(ident: int, seq: int, reply: bool) -> bytes:
    body = bytearray(struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + bytes(56))
    struct.pack_into("!H", body, 2, checksum.checksum(body))
    return bytes(body)


def _tcp(src: bytes, dst: bytes, ports: tuple[int, int], seq: int, payload: bytes) -> bytes:
    sport, dport = ports
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, 0x18, 502, 0, 0))
    seg += payload
    struct.pack_into("!H", seg, 16, checksum.transport_checksum(src, dst, 6, seg))
    return bytes(seg)


def frame_pool(ues: int = 256) -> list[bytes]:
    """Distinct real-shaped G-PDU frames: per UE, ICMP and TCP, uplink and downlink."""
    frames = []
    for n in range(ues):
        ue = bytes([10, 45, n // 250, 1 + n % 250])
        up_teid, down_teid = 0x100 + n, 0x8000 + n
        for i in range(4):
            reply = bool(i % 2)
            src, dst = (SERVER, ue) if reply else (ue, SERVER)
            icmp = ipv4.encode(src, dst, 1, _icmp(0x4000 + n, i, reply), identification=i)
            payload = b"" if i < 2 else bytes(60 + 40 * i)
            sport, dport = (443, 40000 + n) if reply else (40000 + n, 443)
            tcp = ipv4.encode(src, dst, 6, _tcp(src, dst, (sport, dport), 1000 * i, payload))
            for inner in (icmp, tcp):
                outer_src, outer_dst, teid = (SGW, ENB, down_teid) if reply else (ENB, SGW, up_teid)
                packet = encapsulate_gpdu(outer_src, outer_dst, teid, inner, sequence=0)
                macs = (MAC_ENB, MAC_SGW) if reply else (MAC_SGW, MAC_ENB)
                frames.append(ethernet_frame(*macs, packet))
    return frames


def _with_sequence(frame: bytes, seq: int) -> bytes:
    """``frame`` with GTP-U sequence number ``seq`` and its UDP checksum updated to match."""
    out = bytearray(frame)
    old = frame[GTP_OFFSET + 8 : GTP_OFFSET + 10]
    new = seq.to_bytes(2, "big")
    out[GTP_OFFSET + 8 : GTP_OFFSET + 10] = new
    (csum,) = struct.unpack_from("!H", out, UDP_CHECKSUM_OFFSET)
    if csum:
        fixed = checksum.update(csum, old, new)
        struct.pack_into("!H", out, UDP_CHECKSUM_OFFSET, fixed or 0xFFFF)
    return bytes(out)


def gpdus(count: int, pool: list[bytes] | None = None) -> Iterator[bytes]:
    """``count`` frames round-robin over the pool, sequence numbers advancing per tunnel."""
    pool = pool or frame_pool()
    seqs: dict[bytes, int] = {}
    for i in range(count):
        frame = pool[i % len(pool)]
        tunnel = frame[26:34] + frame[GTP_OFFSET + 4 : GTP_OFFSET + 8]
        seq = seqs.get(tunnel, 0)
        seqs[tunnel] = (seq + 1) & 0xFFFF
        yield _with_sequence(frame, seq)


def write_pcap(path: Path, frames: Iterator[bytes], *, start_ns: int = 1_700_000_000 * 10**9,
               step_ns: int = 10_000) -> int:  # fmt: skip
    """Write a little-endian microsecond pcap, streaming; the number of frames written."""
    n = 0
    with path.open("wb", buffering=1 << 20) as out:
        out.write(_PCAP_HEADER)
        ts = start_ns
        for frame in frames:
            sec, ns = divmod(ts, 1_000_000_000)
            out.write(_RECORD.pack(sec, ns // 1000, len(frame), len(frame)))
            out.write(frame)
            ts += step_ns
            n += 1
    return n


LOOPBACK = bytes([127, 0, 0, 1])
MAC_LO = bytes(6)
API_PORT = 8181


def _api_frame(to_server: bool, cport: int, seq: int, flags: int, payload: bytes) -> bytes:
    sport, dport = (cport, API_PORT) if to_server else (API_PORT, cport)
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, flags, 65535, 0, 0))
    seg += payload
    struct.pack_into("!H", seg, 16, checksum.transport_checksum(LOOPBACK, LOOPBACK, 6, seg))
    return ethernet_frame(MAC_LO, MAC_LO, ipv4.encode(LOOPBACK, LOOPBACK, 6, bytes(seg)))


def _exchange(k: int) -> list[bytes]:
    """One ``POST /v1/instances`` on its own connection and the instance's first packet."""
    import json

    name = f"web-{k}"
    address = f"198.18.{5 + k // 250 % 200}.{1 + k % 250}"
    body = json.dumps({"name": name, "template": "idle"}).encode()
    request = (
        f"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    view = json.dumps({
        "name": name, "path": "warm",
        "timing": {"accept": 0.001, "shell": 0.002, "start": 0.002, "total": 0.005},
        "interfaces": [{"addresses": [f"{address}/24"]}],
    }).encode()  # fmt: skip
    response = (
        f"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
        f"content-length: {len(view)}\r\n\r\n"
    ).encode() + view
    cport = 20000 + k % 40000
    instance = ipv4.encode(
        bytes(int(x) for x in address.split(".")), SERVER, 6,
        _tcp(bytes(int(x) for x in address.split(".")), SERVER, (33000, 80), 0, b""),
    )  # fmt: skip
    return [
        _api_frame(True, cport, 999, 0x02, b""),  # SYN
        _api_frame(False, cport, 49999, 0x12, b""),  # SYN-ACK
        _api_frame(True, cport, 1000, 0x18, request),
        ethernet_frame(MAC_ENB, MAC_SGW, instance),
        _api_frame(False, cport, 50000, 0x18, response),
    ]


def api_frames(count: int, pool: list[bytes] | None = None, every: int = 1000) -> Iterator[bytes]:
    """``count`` frames: G-PDU traffic with one API exchange (5 frames) in every ``every``."""
    traffic = gpdus(count, pool)
    n = k = 0
    while n < count:
        if n % every == 0 and count - n >= 5:
            yield from _exchange(k)
            n += 5
            k += 1
            continue
        yield next(traffic)
        n += 1


def write_api_capture(path: Path, count: int, pool: list[bytes] | None = None) -> int:
    """A capture for ``fluidedge analyze``; the number of POST exchanges it holds."""
    write_pcap(path, api_frames(count, pool))
    return (count + 999) // 1000
