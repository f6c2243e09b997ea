"""Offload policies' cost (per-UE rate limits, fast-path accounting) and the limits' accuracy.

    .venv/bin/python bench/offload_policy.py [--quick] [--json] [--no-fastpath] [--variants V,..]

One invocation, ratios against a baseline measured in the same run (the machine is shared):

* ``pipeline``: the pure pipeline (what the userspace backend runs per packet) offloading
  uplink G-PDUs of 1,000 UEs and encapsulating the app's replies, with no limit vs a limit on
  both directions high enough that nothing is dropped (the bucket's cost on every packet),
  rounds interleaved and timed in this thread's CPU time; the ratio limited / unlimited.
* ``mirror``: the pure pipeline, one UE sending and receiving (the same packets as above),
  that UE not intercepted vs intercepted to a pcap file (a copy of each packet queued for the
  writer thread, which runs meanwhile): rounds interleaved, CPU time of the data-plane thread.
* ``accuracy``: the pure pipeline on a virtual clock: one UE offers 1000-byte packets at 2x
  and 5x its limit (uplink) for 10 s; the delivered rate beyond the burst over the limit.
* ``program`` (root): the fast path's ``s1_ingress`` program run on one offloaded uplink
  G-PDU with ``BPF_PROG_TEST_RUN`` per variant (below): the kernel's own time per packet,
  which the machine's load does not inflate the way it does a generator's rate.
* ``fastpath`` (root): the eBPF fast path on the functional tests' minimal topology, trafgen
  sending 256 B offloaded G-PDUs of one UE straight into ``s1enb`` at full speed: pps at the
  app for each variant, backends alternating over rounds (order rotated): ``off`` (the
  baseline), ``limited`` (a limit above the offered rate, nothing dropped: the cost of the
  per-UE bucket, a hash lookup and a spin lock per packet), ``accounting`` (the per-bearer
  usage counters: a hash lookup and atomic adds per packet, the fold thread every second),
  ``mirrored`` (the one UE sending is a lawful-intercept target with a pcap destination: the
  program clones every packet to the intercept's veth, the agent's reader thread writes the
  pcap; copies it cannot keep up with are dropped and counted, never the offloaded packets).
  Then a limit below the offered rate: the delivered inner bytes/s over the limit. The
  program runs in the sender's softirq on this 2-core machine, so what it costs per packet
  slows trafgen down: the pps ratio is the per-packet cost ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame
from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import APPS, ENB, SGW, Pipeline

REPO = Path(__file__).resolve().parent.parent
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
ENB_IP, SGW_IP = bytes([198, 18, 0, 11]), bytes([198, 18, 0, 21])
PDN, SVC, APP = bytes([198, 18, 200, 10]), bytes([198, 18, 50, 1]), bytes([198, 19, 0, 10])
HIGH = 32_000_000_000  # bit/s: a limit nothing in these runs reaches


def ue(i: int) -> bytes:
    return bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])


def pipeline(limit_bps: int | None, ues: int) -> tuple[Pipeline, list[bytes], list[bytes]]:
    limits = {"services": {"bench": {"uplink": limit_bps, "downlink": limit_bps}}}
    p = Pipeline(
        TofConfig(
            backend="none",
            max_tunnels=10**6,
            ratelimit=limits if limit_bps else {},  # type: ignore[arg-type]
        )
    )
    p.set_services({"bench": Service("bench", "198.18.50.1", "198.19.0.10")})
    ups, downs = [], []
    for i in range(ues):
        a = ue(i)
        learn = encapsulate_gpdu(
            SGW_IP, ENB_IP, 0x10000 + i, ipv4.encode(PDN, a, 17, udp.encode(PDN, a, 53, 1, b"x"))
        )
        p.from_s1(ethernet_frame(MAC_A, MAC_B, learn), SGW, 0.0)
        inner = ipv4.encode(a, SVC, 17, udp.encode(a, SVC, 40000, 8080, bytes(64)))
        outer = encapsulate_gpdu(ENB_IP, SGW_IP, i + 1, inner, udp_checksum=False)
        ups.append(ethernet_frame(MAC_B, MAC_A, outer))
        downs.append(ipv4.encode(APP, a, 17, udp.encode(APP, a, 8080, 40000, bytes(64))))
    for frame in ups:  # flows exist before timing
        p.from_s1(frame, ENB, 0.0)
    return p, ups, downs


def offload_round(p: Pipeline, ups: list[bytes], downs: list[bytes], repeat: int) -> float:
    from_s1, from_apps = p.from_s1, p.from_apps
    start = time.thread_time()
    now = 1.0
    for _ in range(repeat):
        for frame in ups:
            from_s1(frame, ENB, now)
        for packet in downs:
            from_apps(packet, now)
        now += 1.0  # a second per pass: the buckets refill, nothing is dropped
    elapsed = time.thread_time() - start
    return 2 * len(ups) * repeat / elapsed


def pipeline_bench(rounds: int) -> dict[str, Any]:
    off, on = pipeline(None, 1000), pipeline(HIGH, 1000)
    ratios, off_pps, on_pps = [], [], []
    for r in range(rounds):
        order = [off, on] if r % 2 == 0 else [on, off]
        rates = {id(p): offload_round(*p, 2) for p in order}
        off_pps.append(rates[id(off)])
        on_pps.append(rates[id(on)])
        ratios.append(rates[id(on)] / rates[id(off)])
    assert on[0].ratelimit is not None
    assert not on[0].drops  # the limit was never reached
    return {
        "ues": 1000,
        "rounds": rounds,
        "off_pps_median": round(statistics.median(off_pps)),
        "on_pps_median": round(statistics.median(on_pps)),
        "ratio_on_off_median": round(statistics.median(ratios), 3),
        "ratio_on_off_min": round(min(ratios), 3),
        "ratio_on_off_max": round(max(ratios), 3),
        "ratio_best_rounds": round(max(on_pps) / max(off_pps), 3),
    }


def mirror_bench(rounds: int) -> dict[str, Any]:
    p, ups, downs = pipeline(None, 1)
    pcaps = Path(tempfile.mkdtemp(prefix="fluidedge-bench-li-"))

    class Plain:
        def set_mirrors(self, mirrors: list[Any]) -> None:
            p.mirrors = {m.target.ue: m for m in mirrors}

    plain = Plain()
    off_pps, on_pps, ratios = [], [], []
    stats: dict[str, list[int]] = {}
    try:
        for r in range(rounds):
            rates: dict[bool, float] = {}
            for mirrored in (False, True) if r % 2 == 0 else (True, False):
                mirror = start_mirror(plain, pcaps, "10.0.0.0") if mirrored else None
                rates[mirrored] = offload_round(p, ups, downs, 3000)
                if mirror is not None:
                    stop_mirror(plain, mirror, stats)
            off_pps.append(rates[False])
            on_pps.append(rates[True])
            ratios.append(rates[True] / rates[False])
    finally:
        pcaps.rmdir()
    return {
        "rounds": rounds,
        "off_pps_median": round(statistics.median(off_pps)),
        "on_pps_median": round(statistics.median(on_pps)),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_best_rounds": round(max(on_pps) / max(off_pps), 3),
        "copied": sum(stats["copied"]),
        "dropped": sum(stats["dropped"]),
    }


def accuracy_bench() -> dict[str, float]:
    rate = 1_000_000  # bytes/s (8 Mbit/s)
    out: dict[str, float] = {}
    for factor in (2, 5):
        p, _ups, _downs = pipeline(rate * 8, 1)
        inner = ipv4.encode(ue(0), SVC, 17, udp.encode(ue(0), SVC, 40000, 8080, bytes(972)))
        frame = ethernet_frame(MAC_B, MAC_A, encapsulate_gpdu(ENB_IP, SGW_IP, 1, inner))
        pps, seconds = factor * rate // 1000, 10.0
        delivered = 0
        for i in range(int(pps * seconds)):
            out_ = p.from_s1(frame, ENB, 10.0 + i / pps)
            delivered += 1000 * sum(1 for port, _ in out_ if port == APPS)
        burst = rate * 0.1
        out[f"offered_{factor}x_delivered_over_limit"] = round(
            (delivered - burst) / seconds / rate, 4
        )
    return out


FASTPATH_VARIANTS: dict[str, dict[str, Any]] = {
    "off": {},
    # a limit above anything offered: every packet pays the bucket, none is dropped
    "limited": {"ratelimit": {"services": {"bench": {"uplink": HIGH}}}},
    # per-bearer usage counters in the kernel (the fold thread every second)
    "accounting": {"accounting": {"enabled": True, "jsonl": {}}},
    # the sending UE is intercepted to a pcap file (lawful intercept, docs/accounting.md)
    "mirrored": {"_mirror": True},
}
MIRRORED_UE = "198.18.100.1"  # the UE of bench/tof_fastpath.py's _direct_frame


def start_mirror(backend: Any, directory: Path, ue_text: str = MIRRORED_UE) -> Any:
    """A lawful intercept of ``ue_text`` to a pcap file in ``directory``, in force."""
    from fluidedge.tof.intercept.model import Intercept
    from fluidedge.tof.intercept.sink import Mirror, PcapWriter

    path = directory / f"bench-{time.monotonic_ns()}.pcap"
    it = Intercept("bench", ue_text, None, None, None, str(path), time.time())
    mirror = Mirror(it, PcapWriter(path, create=True), 65536)
    mirror.start()
    backend.set_mirrors([mirror])
    return mirror


def stop_mirror(backend: Any, mirror: Any, stats: dict[str, list[int]]) -> None:
    backend.set_mirrors([])
    mirror.stop()
    Path(mirror.intercept.pcap).unlink(missing_ok=True)
    for key in ("copied", "dropped"):
        stats.setdefault(key, []).append(mirror.stats()[key])


def fastpath_bench(rounds: int, variants: tuple[str, ...]) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from tests.functional.tof_fastpath.topo import topology

    from fluidedge.lab.gen import stop_group
    from fluidedge.linux.proc import run
    from fluidedge.tof.fastpath.backend import FastPathBackend
    from tof_fastpath import _direct_frame, _rx_packets, _start_trafgen, _trafgen_rate

    def rx_bytes(ns: str, dev: str) -> int:
        path = f"/sys/class/net/{dev}/statistics/rx_bytes"
        return int(run(["ip", "netns", "exec", ns, "cat", path]).stdout)

    out: dict[str, Any] = {}
    with topology("bop") as t:
        fd, name = tempfile.mkstemp(prefix="fluidedge-bench-", suffix=".trafgen")
        os.close(fd)
        cfg = Path(name)
        frame = _direct_frame(256, "198.18.50.1", bytes.fromhex("02000000e002"))
        inner_len = len(frame) - 14 - 36

        mirror_stats: dict[str, list[int]] = {}
        pcaps = Path(tempfile.mkdtemp(prefix="fluidedge-bench-li-"))

        def run_with(extra: dict[str, Any], measure: str) -> float:
            base = {"netns": t.host, "pinger_target": "198.18.200.10", "idle_timeout": 600}
            extra = dict(extra)
            mirrored = extra.pop("_mirror", False)
            backend = FastPathBackend(TofConfig.model_validate({**base, **extra}))
            backend.start()
            mirror = None
            try:
                backend.apply({"bench": Service("bench", "198.18.50.1", "198.19.0.10")})
                t.send("enb", frame)  # the flow's first packet: the agent creates it
                time.sleep(0.3)
                if mirrored:
                    mirror = start_mirror(backend, pcaps)
                if measure == "pps":
                    return _trafgen_rate(t.enb, cfg, [frame], (t.app, "eth0"))
                # Bytes/s delivered: inner IP bytes (Ethernet header off) at the app.
                app = (t.app, "eth0")
                proc = _start_trafgen(t.enb, cfg, [frame])
                try:
                    time.sleep(1.0)
                    b0, p0, t0 = rx_bytes(*app), _rx_packets(app), time.monotonic()
                    time.sleep(3.0)
                    b1, p1, t1 = rx_bytes(*app), _rx_packets(app), time.monotonic()
                finally:
                    stop_group(proc)
                stats = backend.stats()["fastpath"]
                assert isinstance(stats, dict)
                out["limited_drops"] = stats["rate_limited_uplink"]
                out["limited_offered_pps"] = round(
                    (stats["offloaded_uplink"] + stats["rate_limited_uplink"]) / (t1 - t0 + 1.0)
                )
                return ((b1 - b0) - 14 * (p1 - p0)) / (t1 - t0)
            finally:
                if mirror is not None:
                    stop_mirror(backend, mirror, mirror_stats)
                backend.stop()

        try:
            pps: dict[str, list[float]] = {v: [] for v in variants}
            for r in range(rounds):
                shift = r % len(variants)  # rotate the order: none gets the quieter moments
                for variant in variants[shift:] + variants[:shift]:
                    pps[variant].append(run_with(FASTPATH_VARIANTS[variant], "pps"))
            out["offered_frame_bytes"] = len(frame)
            out["pps"] = {v: [round(x) for x in xs] for v, xs in pps.items()}
            base = statistics.median(pps["off"])
            out["ratio_median"] = {
                v: round(statistics.median(xs) / base, 3) for v, xs in pps.items() if v != "off"
            }
            out["ratio_best_rounds"] = {
                v: round(max(xs) / max(pps["off"]), 3) for v, xs in pps.items() if v != "off"
            }
            if mirror_stats:
                out["mirror_copies_per_round"] = mirror_stats
            if "limited" in variants:
                # A limit at a fifth of what the generator offers (in inner bytes/s), with a
                # 1 s burst: a generator descheduled for less than that (a loaded machine)
                # loses no tokens, so what is measured is the limiter, not the generator.
                limit = int(base * inner_len / 5) * 8
                extra = {"ratelimit": {"services": {"bench": {"uplink": limit, "burst": 1.0}}}}
                delivered = run_with(extra, "bytes")
                out["limit_bps"] = limit
                out["delivered_over_limit"] = round(delivered * 8 / limit, 4)
        finally:
            cfg.unlink(missing_ok=True)
            pcaps.rmdir()
    return out


def program_bench(rounds: int, runs: int, variants: tuple[str, ...]) -> dict[str, Any]:
    """The program's own cost per offloaded uplink packet, per variant: ``s1_ingress`` run on
    the same G-PDU with ``BPF_PROG_TEST_RUN`` (a fresh skb each run, ingress = ``s1enb``),
    ``runs`` times per round; the kernel's duration of each run (ns), medians. Independent of
    the generator and of what else runs on the machine (only preemption inside a run counts).
    """
    import struct

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from tests.functional.tof_fastpath.topo import topology

    from fluidedge.linux.libbpf import prog_test_run
    from fluidedge.linux.netns import call_in_netns
    from fluidedge.tof.fastpath.backend import FastPathBackend
    from tof_fastpath import _direct_frame

    tc_act_redirect = 7
    per_variant: dict[str, list[float]] = {v: [] for v in variants}
    pcaps = Path(tempfile.mkdtemp(prefix="fluidedge-bench-li-"))
    with topology("bpr") as t:
        frame = _direct_frame(256, "198.18.50.1", bytes.fromhex("02000000e002"))
        for r in range(rounds):
            shift = r % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                base = {"netns": t.host, "pinger_target": "198.18.200.10", "idle_timeout": 600}
                extra = dict(FASTPATH_VARIANTS[variant])
                mirrored = extra.pop("_mirror", False)
                config = TofConfig.model_validate({**base, **extra})
                backend = FastPathBackend(config)
                backend.start()
                mirror = None
                try:
                    backend.apply({"bench": Service("bench", "198.18.50.1", "198.19.0.10")})
                    t.send("enb", frame)  # the flow's first packet: the agent creates it
                    time.sleep(0.5)
                    if mirrored:
                        mirror = start_mirror(backend, pcaps)
                    assert backend._obj is not None
                    prog = backend._obj.prog_fd("s1_ingress")
                    ifindex = backend._ifindex("s1enb")
                    ctx = bytes(36) + struct.pack("=II", ifindex, ifindex)

                    def measure(prog: int = prog, ctx: bytes = ctx) -> list[int]:
                        out = []
                        for _ in range(runs):
                            ret, ns = prog_test_run(prog, frame, ctx)
                            assert ret == tc_act_redirect, ret
                            out.append(ns)
                        return out

                    before = backend.stats()["fastpath"]
                    durations = call_in_netns(t.host, measure)
                    after = backend.stats()["fastpath"]
                    assert isinstance(before, dict)
                    assert isinstance(after, dict)
                    # Every run took the offload path (not a punt, not a drop).
                    assert after["offloaded_uplink"] - before["offloaded_uplink"] == runs
                    per_variant[variant].append(statistics.median(durations))
                finally:
                    if mirror is not None:
                        stop_mirror(backend, mirror, {})
                    backend.stop()
    pcaps.rmdir()
    medians = {v: statistics.median(xs) for v, xs in per_variant.items()}
    return {
        "runs_per_round": runs,
        "ns_per_round": {v: [round(x) for x in xs] for v, xs in per_variant.items()},
        "ns_median": {v: round(x) for v, x in medians.items()},
        "ratio_to_off": {v: round(x / medians["off"], 3) for v, x in medians.items() if v != "off"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-fastpath", action="store_true", help="skip the kernel part")
    parser.add_argument(
        "--variants",
        default=",".join(FASTPATH_VARIANTS),
        help="fast-path variants (off is the baseline): " + ", ".join(FASTPATH_VARIANTS),
    )
    args = parser.parse_args()
    result: dict[str, Any] = {
        "pipeline": pipeline_bench(10 if args.quick else 40),
        "mirror": mirror_bench(6 if args.quick else 20),
        "accuracy": accuracy_bench(),
    }
    if not args.no_fastpath and os.geteuid() == 0:
        variants = tuple(dict.fromkeys(["off", *args.variants.split(",")]))
        result["program"] = program_bench(3 if args.quick else 6, 5000, variants)
        result["fastpath"] = fastpath_bench(2 if args.quick else 4, variants)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    p = result["pipeline"]
    print(
        f"pipeline offload ({p['ues']} UEs, {p['rounds']} interleaved rounds): "
        f"off {p['off_pps_median']} pps, limited (nothing dropped) {p['on_pps_median']} pps; "
        f"on/off median {p['ratio_on_off_median']} (min {p['ratio_on_off_min']}, "
        f"max {p['ratio_on_off_max']}; best rounds {p['ratio_best_rounds']})"
    )
    m = result["mirror"]
    print(
        f"pipeline offload of one UE ({m['rounds']} interleaved rounds): not mirrored "
        f"{m['off_pps_median']} pps, mirrored to a pcap {m['on_pps_median']} pps; mirrored/not "
        f"median {m['ratio_median']} (best rounds {m['ratio_best_rounds']}); "
        f"{m['copied']} copies written, {m['dropped']} dropped"
    )
    a = result["accuracy"]
    print(
        "pipeline accuracy (virtual clock, 10 s): delivered beyond the burst / limit = "
        f"{a['offered_2x_delivered_over_limit']} at 2x offered, "
        f"{a['offered_5x_delivered_over_limit']} at 5x"
    )
    g = result.get("program")
    if g:
        print(
            f"fastpath s1_ingress per offloaded packet (BPF_PROG_TEST_RUN, {g['runs_per_round']}"
            " runs a round), median ns per round:"
        )
        for variant, rounds in g["ns_per_round"].items():
            ratio = g["ratio_to_off"].get(variant)
            tail = f"  median {g['ns_median'][variant]} ns" + (
                f", {variant}/off {ratio}" if ratio else ""
            )
            print(f"  {variant:10} {rounds}{tail}")
    f = result.get("fastpath")
    if f:
        print(f"fastpath offload ({f['offered_frame_bytes']} B frames, trafgen), pps per round:")
        for variant, rates in f["pps"].items():
            ratio = f["ratio_median"].get(variant)
            best = f["ratio_best_rounds"].get(variant)
            tail = f"  {variant}/off median {ratio}, best rounds {best}" if ratio else ""
            print(f"  {variant:10} {rates}{tail}")
        if "mirror_copies_per_round" in f:
            m = f["mirror_copies_per_round"]
            print(f"  mirrored: copies written per round {m['copied']}, dropped {m['dropped']}")
        if "limit_bps" in f:
            print(
                f"fastpath accuracy: limit {f['limit_bps']} bit/s (1/5 of the offer), delivered"
                f" / limit {f['delivered_over_limit']}, kernel drops {f['limited_drops']}"
                f" (offered ~{f['limited_offered_pps']} pps)"
            )


if __name__ == "__main__":
    main()
