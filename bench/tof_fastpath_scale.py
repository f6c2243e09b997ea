"""The TOF fast path at operator scale: packet rate, agent cost and memory vs table sizes.

    .venv/bin/python bench/tof_fastpath_scale.py [--sizes 10,10000,100000] [--flows-per 20]

For each size N (one fresh minimal topology per size, the one the functional tests use:
eNB ns -- host ns with the fast path -- SGW ns, + app ns), in one invocation:

* the agent learns N bearers (uplink + downlink key each; half of them also get
  ``--flows-per`` offloaded flows to the bench service, so 100,000 bearers carry 1,000,000
  flows) by running the reference pipeline on synthetic frames, then syncs the maps. "learn/s"
  is bearers learned and written to the kernel per second by the agent (the wire's punt budget
  is a separate, configured limit);
* "sync 1 change" is the median time of one incremental sync after one new bearer (the goal:
  independent of N), next to "full projection", what every change cost before the dirty set;
* "fold" is one full fold of kernel counters into the pipeline (what ``GET /tunnels`` runs:
  batches read outside the agent's lock, bench/tof_fastpath_fold.py has the lock's waits);
* memory: the kernel maps' ``memlock`` (``/proc/self/fdinfo``) and the agent's RSS growth,
  per bearer (tunnels + downlink) and per flow;
* packets/s: trafgen sends 64 B uplink G-PDUs of 256 bearers spread over the table (pass-through:
  to the PDN; offload: to the service, flows established) straight into ``s1enb``, counted at
  the SGW / app interface over 3 s, reported with the ratio to the N = first size figure of the
  same run (goal: >= 0.9x at 100,000 bearers);
* the same packet rates with the agent's lock held (no timers, no purge scans, no punts
  served: none happen in these streams), and the agent thread's CPU use while idle: on a
  2-core host the agent's per-tick scans of the pipeline compete with the generator and the
  softirq that runs the program;
* churn: 1,000 re-attaches (reused uplink TEID, new UE address) through the pipeline + sync,
  per second; afterwards the maps equal the pipeline's projection and a re-attached bearer's
  packet is switched by the kernel (pass-through counter +1), printed as "churn correct".

The machine is shared (2 cores): read ratios within one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.functional.tof_fastpath.topo import MAC_ENB, MAC_SGW, topology  # noqa: E402

from fluidedge.codec.net import ipv4, udp  # noqa: E402
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame  # noqa: E402
from fluidedge.tof.config import TofConfig  # noqa: E402
from fluidedge.tof.fastpath import layout as L  # noqa: E402
from fluidedge.tof.fastpath.backend import FastPathBackend  # noqa: E402
from fluidedge.tof.models import Service  # noqa: E402
from fluidedge.tof.pipeline import ENB, SGW  # noqa: E402
from tof_fastpath import _trafgen_rate  # noqa: E402

ENB_IP = IPv4Address("198.18.0.11").packed
SGW_IP = IPv4Address("198.18.0.21").packed
PDN = IPv4Address("198.18.200.10").packed
SVC = "198.18.50.1"
APP = "198.19.0.10"
SAMPLE = 256  # distinct bearers in the trafgen stream


def ue_of(i: int) -> bytes:
    return bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])


def g_pdu(teid: int, src: bytes, dst: bytes, sport: int, dport: int, *, up: bool) -> bytes:
    inner = ipv4.encode(src, dst, 17, udp.encode(src, dst, sport, dport, b""))
    if up:
        outer = encapsulate_gpdu(ENB_IP, SGW_IP, teid, inner, udp_checksum=False)
        return ethernet_frame(MAC_SGW, MAC_ENB, outer)
    outer = encapsulate_gpdu(SGW_IP, ENB_IP, teid, inner, udp_checksum=False)
    return ethernet_frame(MAC_ENB, MAC_SGW, outer)


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def memlock(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as handle:
        for line in handle:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    return 0


def agent_cpu(backend: FastPathBackend, seconds: float = 3.0) -> float:
    """CPU seconds per second the agent's thread uses while idle (its timers at this size)."""
    thread = backend._thread
    tid = thread.native_id if thread is not None else None
    if tid is None:
        return float("nan")
    path = f"/proc/self/task/{tid}/stat"

    def ticks() -> int:
        with open(path) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    t0, c0 = time.monotonic(), ticks()
    time.sleep(seconds)
    return (ticks() - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)


def learn(backend: FastPathBackend, first: int, count: int, now: float) -> None:
    p = backend.pipeline
    with backend._lock:
        for i in range(first, first + count):
            p.from_s1(g_pdu(0x100000 + i, ue_of(i), PDN, 1000, 53, up=True), ENB, now)
            p.from_s1(g_pdu(0x800000 + i, PDN, ue_of(i), 53, 1000, up=False), SGW, now)
            if (i - first) % 64 == 63:
                backend._sync()
        backend._sync()


def add_flows(backend: FastPathBackend, n: int, per: int, now: float) -> int:
    p = backend.pipeline
    svc = IPv4Address(SVC).packed
    made = 0
    with backend._lock:
        for i in range(0, n, 2):  # half the bearers use the service
            for port in range(per):
                p.from_s1(g_pdu(0x100000 + i, ue_of(i), svc, 20000 + port, 9, up=True), ENB, now)
                made += 1
            if i % 128 == 126:
                backend._sync()
        backend._sync()
    return made


def bench_config(netns: str, *, max_tunnels: int, max_flows: int | None = None) -> TofConfig:
    """The fast-path benches' TOF: timers that never expire what they hold, the UE pool of
    :func:`ue_of`, maps sized by the caller (``max_flows`` None: the config's default)."""
    config = TofConfig(
        netns=netns,
        pinger_target="198.18.200.10",
        idle_timeout=3600,
        flow_timeout=3600,
        ue_pools=["10.0.0.0/8"],
        max_tunnels=max_tunnels,
    )
    if max_flows is None:
        return config
    return TofConfig.model_validate({**config.model_dump(), "max_flows": max_flows})


def measure(n: int, per: int, cfg: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    with topology("x") as t:
        config = bench_config(
            t.host, max_tunnels=max(n + 2000, 10), max_flows=max(n * per, 10) + 1000
        )
        backend = FastPathBackend(config)
        backend.start()
        try:
            backend.apply({"bench": Service("bench", SVC, APP)})
            now = time.time()
            rss0 = rss_bytes()
            t0 = time.perf_counter()
            learn(backend, 0, n, now)
            out["learn_per_s"] = n / (time.perf_counter() - t0)
            rss1 = rss_bytes()
            flows = add_flows(backend, n, per, now)
            rss2 = rss_bytes()
            report = backend.map_report()
            assert report["tunnels"]["entries"] == 2 * n, report
            assert report["flows"]["entries"] == flows, report
            maps = backend._maps
            kernel_bearer = memlock(maps["tunnels"].fd) + memlock(maps["downlink"].fd)
            out["kernel_bytes_per_bearer"] = kernel_bearer / n
            out["kernel_bytes_per_flow"] = memlock(maps["flows"].fd) / max(flows, 1)
            out["agent_bytes_per_bearer"] = (rss1 - rss0) / n
            out["agent_bytes_per_flow"] = (rss2 - rss1) / max(flows, 1)
            out["flows"] = flows
            # One change at this size: incremental sync vs the old full projection.
            syncs, fulls = [], []
            for k in range(30):
                with backend._lock:
                    i = n + 1000 + k
                    frame = g_pdu(0x100000 + i, ue_of(i), PDN, 1000, 53, up=True)
                    backend.pipeline.from_s1(frame, ENB, now)
                    s0 = time.perf_counter()
                    backend._sync()
                    syncs.append(time.perf_counter() - s0)
                    if k < 3:
                        s0 = time.perf_counter()
                        L.project(backend.pipeline, backend._slots)
                        fulls.append(time.perf_counter() - s0)
            out["sync_one_change_us"] = statistics.median(syncs) * 1e6
            out["full_projection_ms"] = statistics.median(fulls) * 1e3
            s0 = time.perf_counter()
            backend._fold()  # takes the agent's lock itself, batch by batch
            out["fold_ms"] = (time.perf_counter() - s0) * 1e3
            # Packet rates over SAMPLE bearers spread across the table.
            step = max(1, n // SAMPLE)
            picks = list(range(0, n, step))[:SAMPLE]
            svc = IPv4Address(SVC).packed
            pass_frames = [g_pdu(0x100000 + i, ue_of(i), PDN, 1000, 53, up=True) for i in picks]
            off_picks = [i - i % 2 for i in picks]
            off_frames = [
                g_pdu(0x100000 + i, ue_of(i), svc, 20000 + (i // 2) % per, 9, up=True)
                for i in off_picks
            ]
            out["pass_pps"] = _trafgen_rate(t.enb, cfg, pass_frames, (t.sgw, "s1"))
            out["offload_pps"] = _trafgen_rate(t.enb, cfg, off_frames, (t.app, "eth0"))
            # The same with the agent held (its lock taken: no timers, no purge scans), to
            # tell the kernel's own cost at this size from the agent's CPU on a 2-core host.
            with backend._lock:
                out["pass_pps_agent_held"] = _trafgen_rate(t.enb, cfg, pass_frames, (t.sgw, "s1"))
                out["offload_pps_agent_held"] = _trafgen_rate(
                    t.enb, cfg, off_frames, (t.app, "eth0")
                )
            out["agent_cpu_s_per_s"] = agent_cpu(backend)
            fast = backend.stats()["fastpath"]
            assert isinstance(fast, dict)
            out["punted"] = fast["punted_from_enb"] + fast["punted_from_sgw"]
            # Churn: 1,000 re-attaches with reused TEIDs (new UE address).
            churn = min(1000, n)
            with backend._lock:
                c0 = time.perf_counter()
                for j in range(churn):
                    i = picks[j % len(picks)] if j < len(picks) else j
                    frame = g_pdu(0x100000 + i, ue_of(i + 0x200000), PDN, 1000, 53, up=True)
                    backend.pipeline.from_s1(frame, ENB, now)
                    if j % 64 == 63:
                        backend._sync()
                backend._sync()
                out["reattach_per_s"] = churn / (time.perf_counter() - c0)
                want = L.project(backend.pipeline, backend._slots)
                consistent = want.tunnels == backend._installed.tunnels and (
                    want.tunnel_ues == backend._installed.tunnel_ues
                )
            before = backend.stats()["fastpath"]
            assert isinstance(before, dict)
            t.send(
                "enb", g_pdu(0x100000 + picks[0], ue_of(picks[0] + 0x200000), PDN, 1, 2, up=True)
            )
            t.collect(0.3)
            after = backend.stats()["fastpath"]
            assert isinstance(after, dict)
            switched = after["passthrough_uplink"] - before["passthrough_uplink"] == 1
            out["churn_correct"] = float(consistent and switched)
        finally:
            backend.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,10000,100000")
    parser.add_argument("--flows-per", type=int, default=20, help="flows per offloaded bearer")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    fd, name = tempfile.mkstemp(prefix="fluidedge-bench-", suffix=".trafgen")
    os.close(fd)
    cfg = Path(name)
    results = {}
    try:
        for n in sizes:
            results[n] = measure(n, args.flows_per, cfg)
            print(f"measured N={n}", file=sys.stderr, flush=True)
    finally:
        cfg.unlink(missing_ok=True)
    base = results[sizes[0]]
    print(f"TOF fast path at scale ({time.ctime()}); ratios to N={sizes[0]} in this run\n")
    rows = [
        ("flows", "flows", "{:,.0f}"),
        ("pass_pps", "pass-through pps", "{:,.0f}"),
        ("offload_pps", "offload pps", "{:,.0f}"),
        ("pass_pps_agent_held", "pass pps, agent held", "{:,.0f}"),
        ("offload_pps_agent_held", "offload pps, agent held", "{:,.0f}"),
        ("agent_cpu_s_per_s", "agent idle CPU (cores)", "{:.2f}"),
        ("learn_per_s", "agent learn bearers/s", "{:,.0f}"),
        ("reattach_per_s", "agent re-attaches/s", "{:,.0f}"),
        ("churn_correct", "churn correct (1=yes)", "{:.0f}"),
        ("sync_one_change_us", "sync 1 change (us)", "{:,.0f}"),
        ("full_projection_ms", "full projection (ms)", "{:,.1f}"),
        ("fold_ms", "fold counters (ms)", "{:,.1f}"),
        ("kernel_bytes_per_bearer", "kernel B/bearer", "{:,.0f}"),
        ("kernel_bytes_per_flow", "kernel B/flow", "{:,.0f}"),
        ("agent_bytes_per_bearer", "agent B/bearer", "{:,.0f}"),
        ("agent_bytes_per_flow", "agent B/flow", "{:,.0f}"),
        ("punted", "punted during pps", "{:,.0f}"),
    ]
    print(f"{'metric':24}" + "".join(f"{'N=' + format(n, ','):>16}" for n in sizes))
    for key, label, fmt in rows:
        cells = "".join(f"{fmt.format(results[n][key]):>16}" for n in sizes)
        print(f"{label:24}{cells}")
    for key in (
        "pass_pps",
        "offload_pps",
        "pass_pps_agent_held",
        "offload_pps_agent_held",
        "sync_one_change_us",
    ):
        ratios = "".join(f"{results[n][key] / base[key]:>15.2f}x" for n in sizes)
        print(f"{key + ' / N=' + str(sizes[0]):24}{ratios}")


if __name__ == "__main__":
    main()
