"""Cost of bearer learning and churn in the TOF pipeline, against steady traffic, same run.

    .venv/bin/python bench/tof_bearer_churn.py [--bearers N] [--repeat R]

Rows (pure pipeline, one core, no I/O; best of ``--repeat`` rounds):

* ``steady``:     uplink G-PDUs of N already-learned bearers (the baseline: lookup + pass)
* ``learn``:      the first uplink G-PDU of N new bearers (new key, new UE)
* ``reattach``:   N uplink G-PDUs that each re-use a learned key with a new UE address
                  (old bearer retired with an event, new one learned)
* ``gtpc``:       N Create PDP Context Request/Response pairs (bearer learned from GTP-C)
* ``gtpc-del``:   N Delete PDP Context Requests (bearer retired at once)

Each row gives operations/s and its cost relative to ``steady`` (x slower per operation).
"""

from __future__ import annotations

import argparse
import ipaddress
import time
from collections.abc import Callable

from fluidedge.codec import gtpc
from fluidedge.codec.gtpc import GtpcMessage, IEType, InformationElement, MessageType
from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate, encapsulate_gpdu, ethernet_frame
from fluidedge.tof.config import TofConfig
from fluidedge.tof.pipeline import ENB, SGW, Pipeline

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
ENB_IP = ipaddress.IPv4Address("198.18.0.11").packed
SGW_IP = ipaddress.IPv4Address("198.18.0.21").packed
PDN = ipaddress.IPv4Address("198.18.200.10").packed


def ue(i: int, base: int = 0) -> bytes:
    return (int(ipaddress.IPv4Address("10.0.0.0")) + base + i).to_bytes(4, "big")


def gpdu(teid: int, src: bytes) -> bytes:
    inner = ipv4.encode(src, PDN, 17, udp.encode(src, PDN, 4000, 53, b"x" * 32))
    return ethernet_frame(MAC_B, MAC_A, encapsulate_gpdu(ENB_IP, SGW_IP, teid, inner))


def control(src: bytes, dst: bytes, msg: GtpcMessage) -> bytes:
    outer = encapsulate(src, dst, gtpc.encode(msg), src_port=2123, dst_port=2123)
    return ethernet_frame(MAC_B, MAC_A, outer)


def ie(t: int, v: bytes) -> InformationElement:
    return InformationElement(t, v)


def gtpc_frames(n: int) -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    create: list[tuple[bytes, int]] = []
    delete: list[tuple[bytes, int]] = []
    for i in range(n):
        seq = i & 0xFFFF
        req = GtpcMessage(
            MessageType.CREATE_PDP_CONTEXT_REQUEST,
            0,
            seq,
            (
                ie(IEType.TEID_DATA_I, (0x100000 + i).to_bytes(4, "big")),
                ie(IEType.TEID_CONTROL_PLANE, (0x200000 + i).to_bytes(4, "big")),
                ie(IEType.NSAPI, b"\x05"),
                ie(IEType.END_USER_ADDRESS, b"\xf1\x21"),
                ie(IEType.GSN_ADDRESS, ENB_IP),
                ie(IEType.GSN_ADDRESS, ENB_IP),
            ),
        )
        resp = GtpcMessage(
            MessageType.CREATE_PDP_CONTEXT_RESPONSE,
            0x200000 + i,
            seq,
            (
                ie(IEType.CAUSE, b"\x80"),
                ie(IEType.TEID_DATA_I, (0x300000 + i).to_bytes(4, "big")),
                ie(IEType.TEID_CONTROL_PLANE, (0x400000 + i).to_bytes(4, "big")),
                ie(IEType.END_USER_ADDRESS, b"\xf1\x21" + ue(i, 1 << 20)),
                ie(IEType.GSN_ADDRESS, SGW_IP),
                ie(IEType.GSN_ADDRESS, SGW_IP),
            ),
        )
        create += [(control(ENB_IP, SGW_IP, req), ENB), (control(SGW_IP, ENB_IP, resp), SGW)]
        dele = GtpcMessage(
            MessageType.DELETE_PDP_CONTEXT_REQUEST,
            0x400000 + i,
            (seq + 1) & 0xFFFF,
            (ie(IEType.NSAPI, b"\x05"),),
        )
        delete.append((control(ENB_IP, SGW_IP, dele), ENB))
    return create, delete


def timed(
    make: Callable[[], Pipeline], frames: list[tuple[bytes, int]], ops: int, repeat: int
) -> float:
    best = float("inf")
    for _ in range(repeat):
        p = make()
        start = time.perf_counter()
        for frame, port in frames:
            p.from_s1(frame, port, 1.0)
        best = min(best, time.perf_counter() - start)
    return ops / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bearers", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, r = args.bearers, args.repeat
    config = TofConfig(backend="none", max_tunnels=4 * n, event_log=1000)
    first = [(gpdu(0x1000 + i, ue(i)), ENB) for i in range(n)]
    reattach = [(gpdu(0x1000 + i, ue(i, 1 << 16)), ENB) for i in range(n)]
    create, delete = gtpc_frames(n)

    def fresh() -> Pipeline:
        return Pipeline(config)

    def learned() -> Pipeline:
        p = Pipeline(config)
        for frame, port in first:
            p.from_s1(frame, port, 0.5)
        return p

    def created() -> Pipeline:
        p = Pipeline(config)
        for frame, port in create:
            p.from_s1(frame, port, 0.5)
        return p

    rows = {
        "steady": timed(learned, first, n, r),
        "learn": timed(fresh, first, n, r),
        "reattach": timed(learned, reattach, n, r),
        "gtpc": timed(fresh, create, n, r),
        "gtpc-del": timed(created, delete, n, r),
    }
    check = learned()
    for frame, port in reattach:
        check.from_s1(frame, port, 1.0)
    assert len(check.bearers) == n
    assert check.counters["bearers_retired_uplink_teid_reused"] == n
    print(f"TOF bearer churn, {n} bearers, best of {r} (pipeline only, one core)\n")
    print(f"{'row':<10} {'ops/s':>12} {'cost vs steady':>15}")
    for name, rate in rows.items():
        print(f"{name:<10} {rate:>12,.0f} {rows['steady'] / rate:>14.2f}x")


if __name__ == "__main__":
    main()
