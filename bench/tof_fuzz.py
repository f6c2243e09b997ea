"""Fuzz the live userspace TOF with malformed S1 frames while real UE traffic flows.

    .venv/bin/python bench/tof_fuzz.py [--frames 20000] [--seed N] [--quick]

Brings the lab up in "tof" mode with ``fluidedge serve`` on its host namespace and a service
registered, then injects ``--frames`` broken frames (``fluidedge.tof.fuzz``: truncations at
every layer, lying lengths, bad versions/flags, broken extension chains and IEs, random bytes;
templates are G-PDUs to the service and to the PDN, echoes and error indications) from the
generator port on the eNB side, in bursts, while every UE keeps pinging the PDN and fetching
the service over HTTP. Pass: the daemon is alive afterwards, every malformed frame was counted
(by reason), and UE traffic (pass-through and offloaded) still works. Prints a table.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import threading
import time

from fluidedge.lab.lab import Lab
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.fuzz import malformed_frames
from fluidedge.tof.launch import TofDaemon, lab_tof_section, s1_pairs, wait_s1_ready

SERVICE_IP = "198.18.50.1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 frames")
    args = parser.parse_args()
    count = 2000 if args.quick else args.frames
    lab = Lab.up(prefix=f"tfz{args.seed % 1000}", mode="tof")
    ok = True
    try:
        with TofDaemon(lab_tof_section(lab)) as daemon:
            client = daemon.client
            wait_s1_ready(client, s1_pairs(lab))
            app = str(next(iter(lab.apps.values())))
            client.post("/service", {"name": "fz", "serviceIP": SERVICE_IP, "applicationIP": app})
            stop = threading.Event()
            results = {"ok": 0, "failed": 0}

            def users() -> None:
                while not stop.is_set():
                    for ue in lab.ues:
                        http = lab.run(ue, ["curl", "-s", "-m", "2", f"http://{SERVICE_IP}/"])
                        ping = lab.run(ue, ["ping", "-c", "1", "-W", "1", str(lab.pdn_address)])
                        good = http.returncode == 0 and "edge-app" in http.stdout
                        results["ok" if good and ping.returncode == 0 else "failed"] += 1

            traffic = threading.Thread(target=users, daemon=True)
            traffic.start()
            frames = list(
                malformed_frames(
                    count,
                    enb=lab.enbs["enb1"].packed,
                    sgw=lab.sgws["sgw1"].packed,
                    ue=ipaddress.IPv4Address("198.18.100.1").packed,
                    target=ipaddress.IPv4Address(SERVICE_IP).packed,
                    src_mac=bytes.fromhex("02aa00000001"),
                    seed=args.seed,
                )
            )

            def blast() -> float:
                started = time.monotonic()
                with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                    sock.bind((lab.gen_if, 0))
                    for i, frame in enumerate(frames):
                        sock.send(frame)
                        if i % 500 == 499:
                            time.sleep(0.01)  # bursts: leave the data plane room for users
                return time.monotonic() - started

            elapsed = call_in_netns(lab.ran_ns, blast)
            time.sleep(1.0)
            stop.set()
            traffic.join(timeout=30)
            alive = daemon.process is not None and daemon.process.poll() is None
            stats = client.get("/stats")
            after_http = lab.run("ue2", ["curl", "-s", "-m", "3", f"http://{SERVICE_IP}/"]).stdout
            after_ping = lab.run("ue3", ["ping", "-c", "2", "-W", "1", str(lab.pdn_address)])
            malformed = sum(stats["malformed"].values())
            print(f"\nlive fuzz: {count:,} malformed frames in {elapsed:.2f} s "
                  f"({count / elapsed:,.0f} frames/s offered)")  # fmt: skip
            print(f"{'daemon alive':<40}{alive}")
            print(f"{'frames counted malformed (by reason)':<40}{malformed:,}")
            print(f"{'distinct malformed reasons':<40}{len(stats['malformed'])}")
            print(f"{'drops (by reason)':<40}{stats['drops']}")
            print(f"{'UE rounds during fuzz ok / failed':<40}{results['ok']} / {results['failed']}")
            print(f"{'offload after fuzz':<40}{'edge-app' in after_http}")
            print(f"{'pass-through after fuzz':<40}{after_ping.returncode == 0}")
            top = sorted(stats["malformed"].items(), key=lambda kv: -kv[1])[:8]
            for reason, n in top:
                print(f"    {reason:<50}{n:>8,}")
            ok = alive and "edge-app" in after_http and after_ping.returncode == 0
    finally:
        lab.down()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
