"""One packet script, runnable against any TOF backend on a fresh :mod:`topo` (differential).

Each step injects frames (or makes the app answer) and records, per side, the frames that came
out. Frames are built from the codec, so the script covers what the TOF issue lists: learning
in both directions, colliding TEIDs across peers, pass-through of non-IP/non-GTP/echo,
extension headers (pass-through and offloaded), malformed GTP-U, offload + NAT both ways, the
Pinger (queue, swallowed reply, flush), End Marker, purge and relearn.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Callable
from typing import Protocol

from fluidedge.codec.gtpu import PDU_TYPE_UL, PduSessionContainer, UnknownExtension
from fluidedge.codec.net import checksum as ck
from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate, encapsulate_gpdu, ethernet_frame
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import PINGER_ID, PINGER_MAGIC

from .topo import APP_IP, MAC_ENB, MAC_SGW, Topo


def P(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


ENB1, ENB2 = P("198.18.0.11"), P("198.18.0.12")
SGW1 = P("198.18.0.21")
UE1, UE2, UE3 = P("198.18.100.1"), P("198.18.100.2"), P("198.18.100.3")
PDN = P("198.18.200.10")
SVC = "198.18.50.1"
APP = P(APP_IP)
APP_PORT = 7000
PSC = (PduSessionContainer(pdu_type=PDU_TYPE_UL, qfi=9),)
# Extension chains the receiver may skip (comprehension not required, TS 29.281 §5.2.1): one
# within the program's bound (MAX_EXT_BYTES = 256 after the mandatory header), one past it.
CHAIN_SHORT = (UnknownExtension(0x20, bytes(4 * 20 - 2)), UnknownExtension(0x21, bytes(4 * 20 - 2)))
CHAIN_LONG = (UnknownExtension(0x20, bytes(4 * 40 - 2)), UnknownExtension(0x21, bytes(4 * 40 - 2)))

Outputs = dict[str, list[bytes]]


class Backend(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def apply(self, services: dict[str, Service]) -> None: ...
    def purge(self) -> int: ...
    def stats(self) -> dict[str, object]: ...
    def tunnels(self) -> list[dict[str, object]]: ...
    def tunnels_after(
        self, after: str | None, limit: int | None
    ) -> tuple[list[dict[str, object]], str | None]: ...


def config(t: Topo) -> TofConfig:
    return TofConfig(
        backend="userspace",
        netns=t.host,
        pinger_target="198.18.200.10",
        pinger_interval=30.0,  # exactly one Pinger request per bearer in this script
        pinger_give_up=60.0,
    )


def inner_udp(src: bytes, dst: bytes, sport: int, dport: int, body: bytes) -> bytes:
    return ipv4.encode(src, dst, 17, udp.encode(src, dst, sport, dport, body))


def up(enb: bytes, teid: int, inner: bytes, **kw: object) -> bytes:
    outer = encapsulate_gpdu(enb, SGW1, teid, inner, udp_checksum=False, **kw)  # type: ignore[arg-type]
    return ethernet_frame(MAC_SGW, MAC_ENB, outer)


def bad_udp_length(frame: bytes, delta: int = -2) -> bytes:
    """``frame`` with its outer UDP length off by ``delta`` (IP and GTP-U lengths unchanged)."""
    out = bytearray(frame)
    struct.pack_into("!H", out, 38, struct.unpack_from("!H", out, 38)[0] + delta)
    return bytes(out)


def down(enb: bytes, teid: int, inner: bytes) -> bytes:
    outer = encapsulate_gpdu(SGW1, enb, teid, inner, udp_checksum=False)
    return ethernet_frame(MAC_ENB, MAC_SGW, outer)


def learn_bearer(t: Topo) -> None:
    """UE1's bearer through eNB1 (uplink TEID 0x100, downlink 0x200), learned both ways: returns
    once both learning frames came out on the other side (the agent forwards them, later than
    a fixed quiet period on a loaded machine), so none of them lands in a later collection."""
    t.send("enb", up(ENB1, 0x100, inner_udp(UE1, PDN, 40000, 53, b"learn")))
    t.send("sgw", down(ENB1, 0x200, inner_udp(PDN, UE1, 53, 40000, b"learn")))

    def both(got: dict[str, list[bytes]]) -> bool:
        return any(f.endswith(b"learn") for f in got["sgw"]) and any(
            f.endswith(b"learn") for f in got["enb"]
        )

    got = t.collect(0.3, until=both)
    if not both(got):
        raise AssertionError(f"the learning frames did not both come out: {got}")


def gtp_message(src: bytes, dst: bytes, mtype: int, teid: int, body: bytes = b"") -> bytes:
    msg = struct.pack("!BBHI", 0x32, mtype, len(body) + 4, teid) + b"\x00\x01\x00\x00" + body
    return encapsulate(src, dst, msg, udp_checksum=False)


def echo_reply_for(request_frame: bytes) -> bytes:
    """The PDN's answer to a Pinger request, as the SGW would tunnel it down (TEID 0x302)."""
    inner = bytearray(request_frame[14 + 20 + 8 + 8 :])
    src, dst = bytes(inner[12:16]), bytes(inner[16:20])
    inner[12:16], inner[16:20] = dst, src
    inner[20] = 0
    struct.pack_into("!H", inner, 22, 0)
    struct.pack_into("!H", inner, 22, ck.checksum(inner[20:]))
    struct.pack_into("!H", inner, 10, 0)
    struct.pack_into("!H", inner, 10, ck.checksum(inner[:20]))
    return down(ENB2, 0x302, bytes(inner))


def run_script(
    t: Topo, backend: Backend, gap: float = 0.15, snapshot: dict[str, object] | None = None
) -> list[tuple[str, Outputs]]:
    """Run the script; return ``(step name, frames out per side)`` for every step.

    ``snapshot`` receives ``tunnels()`` and ``stats()`` as they are just before the purge step,
    and, read just before them, ``pages``: every keyset page of one bearer
    (``GET /tunnels?limit=1``; on the fast path each folds only its own bearer's counters).
    """
    app_sock = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    app_sock.bind((APP_IP, APP_PORT))  # offloaded datagrams land here (no ICMP unreachable)
    # The app's replies are sent raw, so their IP identification is ours, not the kernel's
    # random choice (which would differ between the two runs).
    raw = call_in_netns(
        t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    )
    replies = 0
    results: list[tuple[str, Outputs]] = []
    t.collect(0.3)  # drop start-up noise

    def step(name: str, *actions: Callable[[], None], wait: float = gap) -> Outputs:
        for action in actions:
            action()
            time.sleep(0.03)  # pacing the sender (one frame at a time), not a synchronisation
        got = t.collect(wait)
        results.append((name, got))
        return got

    def inject(side: str, frame: bytes) -> Callable[[], None]:
        return lambda: t.send(side, frame)

    def app_reply(ue: bytes, ue_port: int, body: bytes) -> Callable[[], None]:
        def send() -> None:
            nonlocal replies
            replies += 1
            datagram = udp.encode(APP, ue, APP_PORT, ue_port, body)
            packet = ipv4.encode(APP, ue, 17, datagram, identification=0x4000 + replies)
            raw.sendto(packet, (str(ipaddress.ip_address(ue)), 0))

        return send

    def app_raw(packet: bytes) -> Callable[[], None]:
        def send() -> None:
            raw.sendto(packet, (str(ipaddress.ip_address(packet[16:20])), 0))

        return send

    try:
        to_pdn = inner_udp(UE1, PDN, 40000, 53, b"query")
        step("non-ip", inject("enb", MAC_SGW + MAC_ENB + b"\x88\xb5" + bytes(46)))
        plain = ethernet_frame(MAC_SGW, MAC_ENB, inner_udp(ENB1, SGW1, 5000, 5001, b"x" * 30))
        step("non-gtp", inject("enb", plain))
        step("learn-up", inject("enb", up(ENB1, 0x100, to_pdn)))
        step("known-up", *[inject("enb", up(ENB1, 0x100, to_pdn)) for _ in range(3)])
        from_pdn = inner_udp(PDN, UE1, 53, 40000, b"answer")
        step("learn-down", inject("sgw", down(ENB1, 0x200, from_pdn)))
        step("known-down", *[inject("sgw", down(ENB1, 0x200, from_pdn)) for _ in range(3)])
        # Colliding TEID: same TEID, other eNB, other UE.
        other = inner_udp(UE3, PDN, 40001, 53, b"q3")
        step("collide", *[inject("enb", up(ENB2, 0x100, other)) for _ in range(2)])
        step("echo", inject("enb", ethernet_frame(MAC_SGW, MAC_ENB, gtp_message(ENB1, SGW1, 1, 0))))
        step(
            "psc-pass", *[inject("enb", up(ENB1, 0x100, to_pdn, extensions=PSC)) for _ in range(2)]
        )
        bad = bytearray(up(ENB1, 0x100, to_pdn))
        bad[42] = 0x50  # GTP version 2
        step("malformed", inject("enb", bytes(bad)), inject("enb", up(ENB1, 0x100, b"")[:46]))
        backend.apply({"web": Service("web", SVC, APP_IP)})
        to_svc = inner_udp(UE1, P(SVC), 41000, APP_PORT, b"to-edge")
        step("offload-first", inject("enb", up(ENB1, 0x100, to_svc)))
        step("offload", *[inject("enb", up(ENB1, 0x100, to_svc)) for _ in range(3)])
        step("offload-psc", inject("enb", up(ENB1, 0x100, to_svc, extensions=PSC)))
        # Bounded parsing: a chain within the bound is offloaded by the kernel, a longer one
        # is the agent's; the output is the reference's either way.
        step("offload-chain", inject("enb", up(ENB1, 0x100, to_svc, extensions=CHAIN_SHORT)))
        step("long-chain", inject("enb", up(ENB1, 0x100, to_svc, extensions=CHAIN_LONG)))
        step("long-chain-pass", inject("enb", up(ENB1, 0x100, to_pdn, extensions=CHAIN_LONG)))
        # UDP length parity: what the pipeline calls malformed is never offloaded.
        step(
            "udp-length",
            inject("enb", bad_udp_length(up(ENB1, 0x100, to_svc))),
            inject("enb", bad_udp_length(up(ENB1, 0x100, to_svc), +2)),
            inject("enb", bad_udp_length(up(ENB1, 0x100, to_pdn))),
        )
        step("reply", app_reply(UE1, 41000, b"edge-reply-1"), app_reply(UE1, 41000, b"r2"))
        # ICMP errors both ways: their quotes are translated (the agent handles them).
        quoted_up = inner_udp(UE1, APP, 41000, APP_PORT, b"to-edge")
        step("icmp-error-down", app_raw(icmp_error(APP, UE1, quoted_up)))
        quoted_down = inner_udp(P(SVC), UE1, APP_PORT, 41000, b"edge-reply-1")
        step("icmp-error-up", inject("enb", up(ENB1, 0x100, icmp_error(UE1, P(SVC), quoted_down))))
        # Pinger: UE2 only talks to the service; its downlink TEID is unknown.
        ue2_svc = inner_udp(UE2, P(SVC), 42000, APP_PORT, b"ue2")
        got = step("pinger-start", inject("enb", up(ENB2, 0x301, ue2_svc)))
        step("pinger-queue", app_reply(UE2, 42000, b"queued-reply"))
        requests = [
            f for f in got["sgw"] if PINGER_MAGIC in f and PINGER_ID.to_bytes(2, "big") in f
        ]
        if requests:
            step("pinger-reply", inject("sgw", echo_reply_for(requests[0])))
        step("after-pinger", app_reply(UE2, 42000, b"direct-reply"))
        end_marker = ethernet_frame(MAC_ENB, MAC_SGW, gtp_message(SGW1, ENB1, 254, 0x200))
        step("end-marker", inject("sgw", end_marker))
        step("relearn-down", inject("sgw", down(ENB1, 0x201, from_pdn)))
        if snapshot is not None:
            pages: list[list[dict[str, object]]] = []
            marker: str | None = None
            while not pages or marker is not None:
                rows, marker = backend.tunnels_after(marker, 1)
                pages.append(rows)
            snapshot["pages"] = pages
            snapshot["tunnels"] = backend.tunnels()
            snapshot["stats"] = backend.stats()
        backend.purge()
        step(
            "purged-up",
            inject("enb", up(ENB1, 0x100, to_pdn)),
            inject("enb", up(ENB1, 0x100, to_svc)),
        )
        backend.apply({})
        step("deleted", inject("enb", up(ENB1, 0x100, to_svc)))
    finally:
        app_sock.close()
        raw.close()
    return results


def icmp_error(src: bytes, dst: bytes, quoted: bytes) -> bytes:
    """ICMP port unreachable (RFC 792) from ``src`` to ``dst`` quoting ``quoted``."""
    icmp = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + quoted)
    struct.pack_into("!H", icmp, 2, ck.checksum(icmp))
    return ipv4.encode(src, dst, 1, bytes(icmp), identification=0x7000)


def normalise(side: str, frame: bytes) -> bytes | None:
    """What may differ between backends: documented in docs/tof-fastpath.md.

    - Outer IPv4 identification (and so the header checksum) of frames the TOF *builds*:
      toward the eNB (offloaded replies; the reference numbers them with the pipeline's
      counter, the program with its own) and toward the SGW (Pinger requests, numbered by the
      same pipeline counter, which the program's replies no longer advance).
    - Frames that are neither IPv4 nor from the script (ARP, IPv6 router solicitations of
      fresh interfaces) are timing noise of the lab, not TOF output.
    """
    if frame[12:14] != b"\x08\x00":
        return None if side == "app" or frame[12:14] in (b"\x08\x06", b"\x86\xdd") else frame
    if side == "enb" or (side == "sgw" and PINGER_MAGIC in frame):
        f = bytearray(frame)
        f[18:20] = b"\x00\x00"
        f[24:26] = b"\x00\x00"
        return bytes(f)
    return frame
