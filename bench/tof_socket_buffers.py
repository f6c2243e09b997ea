"""What a burst costs the userspace TOF's S1 socket on a stock host: before and after.

    .venv/bin/python bench/tof_socket_buffers.py [--frames 3000] [--size 1400] [--rounds 5]

Root. For the run, ``net.core.rmem_max``/``wmem_max`` are set to a stock Debian host's
212,992 bytes (these development machines have 4 MiB; the values found are put back). In a
namespace of its own, a veth pair: on one end two receiving sockets made as the TOF makes its
S1 sockets (``open_packet_socket``: promiscuous, vnet headers), one with the buffers set the
old way (``before``: a plain ``SO_RCVBUF`` of 4 MiB, which the sysctl caps) and one the new way
(``after``: ``fluidedge.linux.sockbuf``, ``SO_RCVBUFFORCE``). A burst of ``--frames`` G-PDU-sized
frames is sent into the other end while neither socket is read, as when the data-plane thread
is busy with a batch or waits for the GIL. Then each socket is drained: the frames it held,
and the kernel's count of those it dropped (``PACKET_STATISTICS``). Medians over
``--rounds``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics

from fluidedge.linux import netns, sockbuf
from fluidedge.linux.packet import packet_socket
from fluidedge.linux.proc import run
from fluidedge.tof.dataplane_common import open_packet_socket, packet_drops

STOCK = sockbuf.STOCK_CAP
NS = f"fe-sockbuf-{os.getpid()}"


def _before(ifname: str) -> socket.socket:
    """The S1 socket as it was made: the same options, then a plain 4 MiB (capped)."""
    sock = open_packet_socket(ifname)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return sock


def _drain(sock: socket.socket) -> int:
    held = 0
    sock.setblocking(False)
    while True:
        try:
            sock.recv(70000)
        except BlockingIOError:
            return held
        held += 1


def _round(frames: int, size: int) -> dict[str, tuple[int, int]]:
    def burst() -> dict[str, tuple[int, int]]:
        socks = {"before": _before("s1"), "after": open_packet_socket("s1")}
        sender = packet_socket("peer", 0)
        try:
            for sock in socks.values():
                packet_drops(sock)  # zeroed: the counters are per read
            frame = b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x08\x00" + bytes(size)
            for _ in range(frames):
                sender.send(frame)
            return {name: (_drain(s), packet_drops(s)) for name, s in socks.items()}
        finally:
            sender.close()
            for sock in socks.values():
                sock.close()

    return netns.call_in_netns(NS, burst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", type=int, default=1400, help="bytes after the Ethernet header")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    netns.create(NS)
    try:
        run(["ip", "-n", NS, "link", "add", "s1", "type", "veth", "peer", "name", "peer"])
        for dev in ("s1", "peer"):
            run(["ip", "-n", NS, "link", "set", dev, "up"])

        with sockbuf.stock_caps():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                sockbuf.size_buffers(probe, receive=4 << 20)
                forced = sockbuf.sizes(probe)[0]  # twice the size set (socket(7))
            rounds = [_round(args.frames, args.size) for _ in range(args.rounds)]
    finally:
        netns.delete(NS)
    print(
        f"burst of {args.frames} frames of {args.size + 14} bytes into the S1 socket, "
        f"net.core.rmem_max = {STOCK} (stock); medians of {args.rounds} rounds"
    )
    print(f"{'S1 socket':34s} {'held':>6s} {'dropped':>8s}")
    medians = {}
    for name, label in (
        ("before", "before (SO_RCVBUF 4 MiB, capped)"),
        ("after", f"after (SO_RCVBUFFORCE, {forced // 2 >> 20} MiB)"),
    ):
        kept = statistics.median(r[name][0] for r in rounds)
        lost = statistics.median(r[name][1] for r in rounds)
        medians[name] = (kept, lost)
        print(f"{label:34s} {kept:6.0f} {lost:8.0f}")
    before, after = medians["before"], medians["after"]
    print(f"frames held after / before = {after[0] / max(before[0], 1):.1f}x")


if __name__ == "__main__":
    main()
