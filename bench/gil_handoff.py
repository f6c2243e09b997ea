"""What a daemon thread that takes the GIL costs a Python data plane (issue 17).

    .venv/bin/python bench/gil_handoff.py [--requests 2000] [--work-ms 2] [--period-ms 20]
        [--threads 2] [--intervals 0.005,0.0005]

The mechanism behind ``[tof] switch_interval`` (docs/superfluid.md, "Resume latency"), shown
without a lab. One *server* process models the daemon: a "data plane" thread that polls a UDP
socket, receives a datagram, runs a little Python and sends it back (each system call releases
the GIL), beside ``--threads`` "daemon" threads that wake every ``--period-ms`` and run
``--work-ms`` of pure Python each time (timers, the API, pool workers, a store write). A
*client* process (its own GIL) sends one datagram at a time and measures the round trip with
its own clock. The server's switch interval is changed every 100 requests, in turn, so every
setting sees the same seconds of machine load; one row per setting, plus a baseline row with
the daemon threads idle (``--work-ms 0`` is that baseline alone).

A thread that wakes while the data plane is inside a system call takes the GIL; the data plane
then waits until that thread blocks or the switch interval ends. With ``--work-ms`` longer than
the interval, the wait is the interval; shorter, it is the work.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import select
import socket
import sys
import threading
import time

from _tof_common import percentile
from fluidedge.linux import heldcalls

CHUNK = 100
MSG_DONTWAIT = 0x40


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:  # pure Python: holds the GIL, as a handler would
        x += 1


def server(port_queue: multiprocessing.Queue[int], args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port_queue.put(sock.getsockname()[1])
    _, peer = sock.recvfrom(64)  # the client's hello: from now on a connected pair
    sock.connect(peer)
    sock.setblocking(False)
    fd = sock.fileno()
    buffer = ctypes.create_string_buffer(2048)
    work = [args.work_ms / 1000]
    held = [False]
    stop = threading.Event()

    def daemon_thread() -> None:
        while not stop.wait(args.period_ms / 1000):
            if work[0]:
                _spin(work[0])

    threads = [threading.Thread(target=daemon_thread, daemon=True) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    while True:
        poller.poll(1000)
        if held[0]:  # the data plane's non-blocking calls keep the GIL (linux.heldcalls)
            n = heldcalls.libc.recv(fd, buffer, 2048, MSG_DONTWAIT)
            if n < 0:
                continue
            data = buffer.raw[:n]
        else:
            try:
                data = sock.recv(2048)
            except BlockingIOError:
                continue
        if data.startswith(b"S"):  # control: switch interval (s), work on/off, held calls
            interval, on, keep = data[1:].split(b",")
            sys.setswitchinterval(float(interval))
            work[0] = args.work_ms / 1000 if on == b"1" else 0.0
            held[0] = keep == b"1"
        elif data == b"Q":
            stop.set()
            sock.send(b"ok")
            return
        _spin(0.00002)  # the packet's own processing (20 us)
        if held[0]:
            heldcalls.libc.send(fd, data, len(data), MSG_DONTWAIT)
        else:
            sock.send(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per setting")
    parser.add_argument("--work-ms", type=float, default=2.0)
    parser.add_argument("--period-ms", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--intervals", default="0.005,0.0005")
    args = parser.parse_args()
    intervals = [float(v) for v in args.intervals.split(",") if v]
    settings = [(i, True, False) for i in intervals] + [(intervals[-1], True, True)]
    settings.append((intervals[0], False, False))
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=server, args=(ports, args), daemon=True)
    proc.start()
    port = ports.get(timeout=10)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(5)
    sock.send(b"hello")
    samples: dict[tuple[float, bool, bool], list[float]] = {s: [] for s in settings}
    rounds = -(-args.requests // CHUNK)
    for _ in range(rounds):
        for setting in settings:
            interval, on, keep = setting
            sock.send(f"S{interval},{int(on)},{int(keep)}".encode())
            sock.recv(64)
            for _ in range(CHUNK):
                time.sleep(0.001 + len(samples[setting]) % 7 / 1000)
                begin = time.perf_counter()
                sock.send(b"x")
                sock.recv(64)
                samples[setting].append((time.perf_counter() - begin) * 1000)
    sock.send(b"Q")
    sock.recv(64)
    proc.join(5)
    p = percentile
    print(
        f"GIL hand-off: {args.threads} daemon threads waking every {args.period_ms:g} ms, "
        f"{args.work_ms:g} ms of Python each; {rounds * CHUNK} requests per setting, "
        f"interleaved (round trip from another process, ms)\n"
    )
    print(f"{'setting':40}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>8}")
    for (interval, on, keep), values in samples.items():
        label = f"switch interval {interval * 1000:g} ms"
        label += ", calls keep the GIL" if keep else ""
        label += "" if on else ", threads idle"
        print(
            f"{label:40}{p(values, 0.5):8.3f}{p(values, 0.9):8.3f}{p(values, 0.99):8.3f}"
            f"{p(values, 0.999):8.3f}{max(values):8.3f}"
        )


if __name__ == "__main__":
    main()
