"""Where a resumed request's time goes: paired requests, timestamped captures (issue 17).

    .venv/bin/python bench/superfluid_trace.py [--pairs 100] [--settle 0.3] [--perf FILE]
        [--backend userspace|fastpath] [--switch-interval S]

One lab in "tof" mode, one daemon (userspace TOF + instance manager, the ``edge`` template of
bench/superfluid.py), two ``shared`` on-demand services: ``running`` (never paused) and
``resume`` (paused after 0.2 s idle). Each *pair* is one request to each, in alternating
order, the ``resume`` one once its instance is frozen and ``--settle`` seconds have passed
(the pause's own bookkeeping done, as when the next request comes long after T1). tcpdump
(buffered, not immediate mode: it must not add wake-ups to the path it measures) records the
TCP handshake at four points, all stamped by the kernel's one clock:

* ``ue``: the UE's eth0 (the SYN leaves, the SYN-ACK arrives);
* ``s1``: the host's s1enb (GTP-U: the eNB emulator's uplink in, the TOF's downlink out);
* ``apps``: the apps bridge (the TOF's SYN routed to the instance, its SYN-ACK back).

Per request: ``ue->s1`` (UE kernel + eNB emulator uplink), ``s1->apps`` (the TOF's uplink:
its receive, the hold/thaw, NAT, the TUN write and the kernel's routing), ``apps->apps``
(the instance's kernel: SYN in, SYN-ACK out), ``apps->s1`` (the TOF's downlink), ``s1->ue``
(eNB emulator downlink + UE kernel). Resume added latency is given both ways: the difference
of two separate p99s (what bench/superfluid.py printed) and the p99 of the per-pair
differences (resume - running of the same pair: the same seconds of machine load).
With ``--perf FILE``, ``perf record`` of the scheduler's events runs during the pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scapy.utils import RawPcapReader

from _tof_common import percentile

sys.path.insert(0, str(Path(__file__).parent))
from fluidedge.core.client import Client
from fluidedge.lab.config import loads
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import (
    TofDaemon,
    lab_instances_section,
    lab_tof_section,
    s1_pairs,
    wait_s1_ready,
)
from superfluid import TEMPLATE, _lab_text, _server_ms, _service, _wait

SYN, ACK = 0x02, 0x10
RESUME_METRIC = "fluidedge_superfluid_resume_seconds"
ANCHOR = Path("/sys/fs/cgroup/freezer/fluidedge/fluidedge-freezer-anchor")


def _tcp(ip: bytes) -> tuple[int, int, int, int, int] | None:
    """(source port, destination port, flags, seq, ack) of an IPv4/TCP packet."""
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
        return None
    off = (ip[0] & 0xF) * 4
    sport, dport, seq, ack = struct.unpack_from("!HHII", ip, off)
    return sport, dport, ip[off + 13], seq, ack


def _inner(frame: bytes, gtp: bool) -> bytes | None:
    if len(frame) < 14 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    if not gtp:
        return ip
    if len(ip) < 20 or ip[9] != 17:
        return None
    udp = ip[(ip[0] & 0xF) * 4 :]
    g = udp[8:]
    if len(g) < 8 or g[1] != 0xFF:
        return None
    hdr = 12 if g[0] & 0x07 else 8
    if g[0] & 0x04:  # extension headers
        while g[hdr - 1] != 0:
            hdr += g[hdr] * 4
    return g[hdr:]


def _events(path: Path, gtp: bool) -> tuple[dict[tuple[int, str], float], list[tuple[int, int]]]:
    """(the SYN's sequence number, "syn"/"synack") -> first time seen (s), and the SYNs'
    sequence numbers in order. The ISN names a connection on every capture point (the TOF
    NATs addresses, not sequence numbers), where a port would not: the UE reuses its ports
    toward different services."""
    out: dict[tuple[int, str], float] = {}
    order: list[tuple[int, int]] = []  # (ISN, UE port) of each connection, in order
    reader = RawPcapReader(str(path))
    scale = 1e9 if getattr(reader, "nano", False) else 1e6
    for data, meta in reader:
        ip = _inner(bytes(data), gtp)
        if ip is None:
            continue
        tcp = _tcp(ip)
        if tcp is None:
            continue
        sport, dport, flags, seq, ack = tcp
        stamp = meta.sec + meta.usec / scale
        if flags & (SYN | ACK) == SYN and dport == 80:
            if (seq, "syn") not in out:
                order.append((seq, sport))
                out[(seq, "syn")] = stamp
            else:
                out[(-1, "retransmitted")] = out.get((-1, "retransmitted"), 0.0) + 1
        elif flags & (SYN | ACK) == SYN | ACK and sport == 80:
            out.setdefault(((ack - 1) & 0xFFFFFFFF, "synack"), stamp)
    return out, order


class Dump:
    def __init__(self, netns: str, iface: str, path: Path, bpf: list[str]) -> None:
        argv = [
            "ip", "netns", "exec", netns, "tcpdump", "-i", iface, "-n", "-s", "200",
            "-B", "8192", "--time-stamp-precision=nano", "-w", str(path), *bpf,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "listening" not in line:
            raise SystemExit(f"tcpdump on {netns}/{iface}: {line}")
        self.path = path

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)


def _curl(lab: Lab, address: str) -> tuple[float, int]:
    argv = ["curl", "-s", "-o", "/dev/null", "-m", "10", "-w", "%{time_connect} %{local_port}"]
    out = lab.run("ue1", [*argv, f"http://{address}/"], timeout=20).stdout.split()
    return float(out[0]) * 1000, int(out[1])


def _paused(client: Client) -> bool:
    return bool(client.get("/service/resume/instances")["instances"][0]["state"] == "paused")


def _anchor(frozen: bool) -> None:
    """Freeze or thaw the instance manager's freezer anchor (the A/B of ``--ab-anchor``)."""
    path = ANCHOR / "freezer.state"
    if path.exists():
        path.write_text("FROZEN" if frozen else "THAWED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--settle", type=float, default=0.3)
    parser.add_argument("--perf", default="", help="perf record the scheduler into this file")
    parser.add_argument("--keep", default="", help="directory to keep the pcaps in")
    parser.add_argument(
        "--ab-anchor", action="store_true",
        help="every other pair with the v1 freezer anchor thawed (the kernel's freezer key "
        "flips on each freeze and thaw of the only frozen instance), the others with it",
    )  # fmt: skip
    parser.add_argument("--backend", choices=("userspace", "fastpath"), default="userspace")
    parser.add_argument(
        "--switch-interval", type=float, default=None,
        help="[tof] switch_interval, s (the daemon's GIL switch interval; default the config's)",
    )  # fmt: skip
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="sft-"))
    work.mkdir(parents=True, exist_ok=True)
    lab = Lab.up(loads(_lab_text(2)), prefix=f"sft{os.getpid() % 10000}", mode="tof")
    rows: list[dict[str, Any]] = []  # in request order: kind, mode, curl ms, server hold ms
    try:
        parts = {"instances": lab_instances_section(lab, builtin_templates=False)}
        tof: dict[str, object] = {"backend": args.backend}
        if args.switch_interval is not None:
            tof["switch_interval"] = args.switch_interval
        with TofDaemon(lab_tof_section(lab, **tof), parts=parts) as daemon:
            client = daemon.client
            client.post("/v1/templates", TEMPLATE)
            if not wait_s1_ready(client, s1_pairs(lab), timeout=30):
                raise SystemExit("S1 not ready")
            client.post("/service", _service("running", "198.18.50.1", lab, "shared",
                                             idlePause=3600))  # fmt: skip
            client.post("/service", _service("resume", "198.18.50.2", lab, "shared",
                                             idlePause=0.2, idleDelete=3600))  # fmt: skip
            _curl(lab, "198.18.50.1")
            _curl(lab, "198.18.50.2")
            dumps = [
                Dump(lab.ns("ue1"), "eth0", work / "ue.pcap", ["tcp", "port", "80"]),
                Dump(lab.host_ns, lab.enb_side_if, work / "s1.pcap", ["udp", "port", "2152"]),
                Dump(lab.host_ns, lab.apps_bridge, work / "apps.pcap", ["tcp", "port", "80"]),
            ]
            perf = None
            if args.perf:
                perf = subprocess.Popen(
                    ["perf", "record", "-a", "-o", args.perf, "-e", "sched:sched_switch",
                     "-e", "sched:sched_wakeup", "-e", "sched:sched_waking",
                     "-e", "sched:sched_migrate_task"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1)
            try:
                for i in range(args.pairs):
                    mode = "no-anchor" if args.ab_anchor and i % 2 else "anchor"
                    _anchor(mode == "anchor")
                    _wait(lambda: _paused(client), 30, "the pause")
                    before = _server_ms(client, RESUME_METRIC, "resume")
                    time.sleep(args.settle)  # also: no API request just before a measured one
                    order = ("run", "res") if (i // 2) % 2 == 0 else ("res", "run")
                    measured = []
                    for kind in order:
                        ip = "198.18.50.1" if kind == "run" else "198.18.50.2"
                        measured.append((kind, *_curl(lab, ip)))
                    after = _server_ms(client, RESUME_METRIC, "resume")
                    for kind, ms, port in measured:
                        held = None
                        if kind == "res" and after[1] == before[1] + 1:
                            held = after[0] - before[0]
                        rows.append(
                            {"kind": kind, "mode": mode, "curl": ms, "port": port, "held": held}
                        )
            finally:
                _anchor(True)
                if perf is not None:
                    perf.send_signal(signal.SIGINT)
                    perf.wait(timeout=60)
                for d in dumps:
                    d.stop()
            client.delete("/service/running")
            client.delete("/service/resume")
    finally:
        lab.down()
    (work / "rows.json").write_text(json.dumps(rows))
    report(work, rows, args.settle)


SEGMENTS = ("ue->s1", "s1->apps", "apps->apps", "apps->s1", "s1->ue")


def report(work: Path, rows: list[dict[str, Any]], settle: float) -> None:
    for row in rows:
        if isinstance(row["curl"], list):
            row["curl"] = row["curl"][0]
    ue, order = _events(work / "ue.pcap", False)
    s1, _ = _events(work / "s1.pcap", True)
    apps, _ = _events(work / "apps.pcap", False)
    print(f"SYNs retransmitted by the UE: {int(ue.get((-1, 'retransmitted'), 0))}")
    if len(order) != len(rows):
        print(f"note: {len(order)} SYNs on the UE for {len(rows)} requests (capture drops)")
    # Each request is the next SYN from its curl's port (a SYN the capture lost: no segments).
    position = 0
    for row in rows:
        isn = None
        for k in range(position, min(position + 4, len(order))):
            if order[k][1] == row.get("port", order[k][1]):
                isn, position = order[k][0], k + 1
                break
        if isn is None:
            continue
        t = [
            ue.get((isn, "syn")),
            s1.get((isn, "syn")),
            apps.get((isn, "syn")),
            apps.get((isn, "synack")),
            s1.get((isn, "synack")),
            ue.get((isn, "synack")),
        ]
        if all(x is not None for x in t):
            stamps = [float(x) for x in t if x is not None]
            row["wire"] = (stamps[5] - stamps[0]) * 1000
            row["host"] = (stamps[4] - stamps[1]) * 1000  # S1 in to S1 out: the TOF + app
            for j, name in enumerate(SEGMENTS):
                row[name] = (stamps[j + 1] - stamps[j]) * 1000
    p = percentile
    print(f"{len(rows) // 2} pairs, settle {settle} s; pcaps and rows.json in {work}")
    for mode in sorted({r["mode"] for r in rows}):
        sel = [r for r in rows if r["mode"] == mode]
        print(f"\n== {mode} ({len(sel) // 2} pairs)")
        print(f"{'segment (ms)':14}{'run p50':>9}{'run p90':>9}{'run max':>9}"
              f"{'res p50':>9}{'res p90':>9}{'res max':>9}")  # fmt: skip
        for name in ("curl", "wire", "host", *SEGMENTS, "held"):
            r = [x[name] for x in sel if x["kind"] == "run" and x.get(name) is not None]
            q = [x[name] for x in sel if x["kind"] == "res" and x.get(name) is not None]
            cols = [p(r, 0.5), p(r, 0.9), max(r, default=float("nan"))] if r else [float("nan")] * 3
            cols += [p(q, 0.5), p(q, 0.9), max(q, default=float("nan"))]
            print(f"{name:14}" + "".join(f"{c:9.3f}" for c in cols))
        for metric in ("curl", "wire", "host"):
            run, res = [], []
            for first, second in zip(sel[::2], sel[1::2], strict=False):
                one = {first["kind"]: first, second["kind"]: second}
                if metric in one["run"] and metric in one["res"]:
                    run.append(one["run"][metric])
                    res.append(one["res"][metric])
            diff = [b - a for a, b in zip(run, res, strict=True)]
            print(f"resume added ({metric}): two separate p50/p99 {p(res, .5) - p(run, .5):+.3f}"
                  f" / {p(res, .99) - p(run, .99):+.3f} ms; per-pair differences p50/p90/p99 "
                  f"{p(diff, .5):+.3f} / {p(diff, .9):+.3f} / {p(diff, .99):+.3f} ms")  # fmt: skip
        for kind in ("res", "run"):
            print(f"slowest {kind} (wire, then the segments, ms):")
            mine = [x for x in sel if x["kind"] == kind and x.get("wire") is not None]
            for x in sorted(mine, key=lambda x: -x["wire"])[:5]:
                print("  " + " ".join(f"{x[n]:8.3f}" for n in ("wire", *SEGMENTS)))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        folder = Path(sys.argv[2])
        report(folder, json.loads((folder / "rows.json").read_text()), float("nan"))
    else:
        main()
