"""A paced, sequence-numbered UDP sender, run as its own process inside a host's namespace.

    python -m tests.functional.chains.udp_stream DST_IP PORT RATE COUNT [SPORT]

Datagram ``i`` carries ``i`` (8 bytes, network order) and is due ``i / RATE`` seconds after
the start. A sender that was descheduled catches up in bursts of at most :data:`BURST`, then
gives the rest of its lateness up (the schedule moves): on a loaded machine the rate drops
for a moment rather than a burst of hundreds of datagrams overflowing a queue of the
datapath (which is loss the machine makes, not the chain). A process of its own: the test's
threads (the receiver) do not steal its GIL. Prints the number sent and the mean rate.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fluidedge.linux.sockbuf import size_buffers

BURST = 16


def main(argv: list[str]) -> None:
    dst, port, rate, count = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    size_buffers(s, send=4 << 20)
    s.bind(("0.0.0.0", int(argv[4]) if len(argv) > 4 else 0))
    start = t0 = time.monotonic()
    sent = 0
    while sent < count:
        due = start + sent / rate
        now = time.monotonic()
        if now < due:
            time.sleep(min(due - now, 0.0005))
            continue
        if now - due > BURST / rate:
            start += now - due - BURST / rate
        s.sendto(struct.pack("!Q", sent), (dst, port))
        sent += 1
    elapsed = time.monotonic() - t0
    sys.stdout.write(f"{sent} {sent / elapsed:.0f}\n")


def start(netns: str, dst: str, port: int, rate: float, count: int, *, sport: int = 0) -> Any:
    """This sender as a process of its own inside ``netns`` (``communicate()`` gives its
    output: the number sent and the mean rate)."""
    root = Path(__file__).resolve().parents[3]
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m",
            "tests.functional.chains.udp_stream", dst, str(port), str(rate), str(count),
            str(sport)]  # fmt: skip
    return subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, text=True)


if __name__ == "__main__":
    main(sys.argv[1:])
