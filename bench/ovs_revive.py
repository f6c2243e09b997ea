"""How long an ``ovs`` network is down after its switch's ``ovs-vswitchd`` is killed, one run.

A switch of ours (the registry of :mod:`fluidedge.ovs.bridges`, as the instances part keeps it)
in a namespace of its own, one bridge, two hosts (namespaces on veths) on it. Each round kills
``ovs-vswitchd`` with SIGKILL (an OOM kill) and then, as the daemon's check does when it next
runs (every ``[instances] switch_check_interval_s``, 1 s by default, so add up to that for the
detection), calls :func:`bridges.revive`:

- ``revive``: the call's duration (the pair restarted from its database, the restorers, the
  learning-switch flow);
- ``to traffic``: from the call to the first ping answered through the bridge;
- baseline: ``start`` of the same pair after a clean stop (what any restart costs at least),
  measured in the same run; the ratio says what revive adds to it.

Run as root: ``.venv/bin/python bench/ovs_revive.py [--rounds 10]``. Everything runs in
namespaces and a directory it creates (removed at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluidedge.linux import netns
from fluidedge.ovs import bridges
from fluidedge.ovs.daemons import OvsDaemons

TAG = f"ob{os.getpid() % 100000}"
BRIDGE = f"{TAG}br"


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def pings(host: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", host, "ping", "-c", "1", "-W", "1", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def kill(daemons: OvsDaemons) -> None:
    pid = int(daemons.vswitchd_pidfile.read_text())
    os.kill(pid, signal.SIGKILL)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    logging.getLogger("fluidedge").setLevel(logging.CRITICAL)  # each round logs the death
    switch, a, b = f"{TAG}s", f"{TAG}a", f"{TAG}b"
    revive_ms: list[float] = []
    traffic_ms: list[float] = []
    start_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        for ns in (switch, a, b):
            netns.create(ns)
            stack.callback(netns.delete, ns)
        bridges.configure(Path(tmp) / "state")
        bridges.ensure_bridge(BRIDGE, switch, "net")
        daemons = bridges.switch(switch)
        stack.callback(daemons.destroy)
        for index, host in enumerate((a, b)):
            port = f"{TAG}p{index}"
            ip("-n", switch, "link", "add", port, "type", "veth", "peer", "eth0", "netns", host)
            ip("-n", host, "addr", "add", f"10.78.0.{index + 1}/24", "dev", "eth0")
            ip("-n", host, "link", "set", "eth0", "up")
            ip("-n", switch, "link", "set", port, "up")
            bridges.add_port(BRIDGE, switch, port, {"fluidedge-network": "net"})
        if not pings(a, "10.78.0.2"):
            raise SystemExit("no ping through the bridge before the first kill")
        for _ in range(args.rounds):
            kill(daemons)
            began = time.perf_counter()
            if bridges.revive() != [switch]:
                raise SystemExit("revive did not restore the switch")
            revived = time.perf_counter()
            while not pings(a, "10.78.0.2"):
                pass
            revive_ms.append((revived - began) * 1000)
            traffic_ms.append((time.perf_counter() - revived) * 1000)
            daemons.stop()  # the baseline: a start of the same pair, from a clean stop
            began = time.perf_counter()
            daemons.start()
            start_ms.append((time.perf_counter() - began) * 1000)
            bridges.ensure_bridge(BRIDGE, switch, "net")  # its flow back, for the next round

    print(f"ovs: an ovs-vswitchd killed, then bridges.revive(), {args.rounds} rounds, ms")
    for label, values in (
        ("revive (restart + restorers + base flow)", revive_ms),
        ("revive -> first ping answered", traffic_ms),
        ("baseline: start of the pair, clean stop", start_ms),
    ):
        print(f"  {label:<42} p50 {statistics.median(values):8.1f}  max {max(values):8.1f}")
    ratio = statistics.median(revive_ms) / statistics.median(start_ms)
    print(f"  revive p50 / start p50 = {ratio:.2f}x")


if __name__ == "__main__":
    main()
