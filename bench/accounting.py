"""Usage accounting's cost on the userspace TOF's offload path, and records exported per second.

    .venv/bin/python bench/accounting.py [--base REV] [--quick] [--json]

One invocation, same frames, rounds interleaved (the machine is shared: only ratios count;
the offload rounds are timed in this thread's CPU time, so time other processes take from us
on the 2 shared cores does not count, while cache and frequency effects still do):

* ``offload``: the pure pipeline (:class:`fluidedge.tof.pipeline.Pipeline`, what the userspace
  backend runs per packet) offloading uplink G-PDUs of 1,000 UEs to a service and encapsulating
  the app's replies, accounting off vs on (periodic reports every 60 s), and accounting off vs
  the pipeline of git revision ``--base`` (default ``main``; its ``pipeline.py`` loaded as a
  separate module, as bench/classify_ab.py does): what the hooks cost when accounting is off.
  The ratio on/off of packets per second is the worst case for the TOF: the real data plane
  also spends time in recvmmsg/sendmmsg and the TUN, which accounting does not touch.
* ``records``: 100,000 UEs with an open record each; the policy check closes them all (a
  period boundary), then the IPFIX encoder packs them (two Data Records each): records/s of
  the policy + close, of the encoder, and of both (what the export thread must keep up with).
* ``gc``: CPython's collector pauses in a data plane of 100,000 UEs with a flow and an open
  record each (the pipeline, accounting on), learning them and then across a period boundary
  (every record closed over 200 ticks and reopened by the UEs' next packets, the closed ones
  drained as the exporter does), 2,500 uplink packets between 50 ms ticks: the longest
  collection (``gc.callbacks``) and the longest tick with its packets, with the data plane's
  :class:`fluidedge.tof.gcfreeze.Freezer` (what the backends run in their tick) and without it
  (the behaviour before it). Each variant runs in a fresh interpreter (``--gc-variant``).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame
from fluidedge.tof.accounting.ipfix import Encoder
from fluidedge.tof.accounting.usage import Accountant
from fluidedge.tof.config import TofConfig
from fluidedge.tof.dataplane_common import allocated
from fluidedge.tof.gcfreeze import Freezer
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import ENB, SGW, Bearer, Pipeline

ROOT = Path(__file__).resolve().parent.parent
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
ENB_IP, SGW_IP = bytes([198, 18, 0, 11]), bytes([198, 18, 0, 21])
PDN, SVC, APP = bytes([198, 18, 200, 10]), bytes([198, 18, 50, 1]), bytes([198, 19, 0, 10])


def ue(i: int) -> bytes:
    return bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])


def load_base(rev: str) -> ModuleType:
    """``src/fluidedge/tof/pipeline.py`` of ``rev`` as module ``pipeline_base``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/fluidedge/tof/pipeline.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "pipeline_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pipeline_base", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pipeline_base"] = module
    spec.loader.exec_module(module)
    return module


def pipeline(
    accounting: bool, ues: int, cls: type[Pipeline] = Pipeline
) -> tuple[Pipeline, list[bytes], list[bytes]]:
    acct = {"enabled": True, "period": 60, "jsonl": {}} if accounting else {}
    p = cls(TofConfig(backend="none", max_tunnels=10**6, accounting=acct))  # type: ignore[arg-type]
    p.set_services({"bench": Service("bench", "198.18.50.1", "198.19.0.10")})
    ups, downs = [], []
    for i in range(ues):
        a = ue(i)
        learn = encapsulate_gpdu(
            SGW_IP,
            ENB_IP,
            0x10000 + i,
            ipv4.encode(PDN, a, 17, udp.encode(PDN, a, 53, 1, b"x")),
            udp_checksum=False,
        )
        p.from_s1(ethernet_frame(MAC_A, MAC_B, learn), SGW, 0.0)
        inner = ipv4.encode(a, SVC, 17, udp.encode(a, SVC, 40000, 8080, bytes(64)))
        ups.append(
            ethernet_frame(
                MAC_B, MAC_A, encapsulate_gpdu(ENB_IP, SGW_IP, i + 1, inner, udp_checksum=False)
            )
        )
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
    elapsed = time.thread_time() - start
    return 2 * len(ups) * repeat / elapsed


def records_bench(ues: int) -> dict[str, float]:
    from fluidedge.tof.accounting.config import AccountingConfig

    acct = Accountant(AccountingConfig(period=60), wall_offset=0.0)
    for i in range(ues):
        bearer = Bearer(ENB_IP, SGW_IP, ue(i), ul_teid=i + 1, dl_teid=0x10000 + i)
        usage = acct.open(bearer, "bench", SVC, 1.0)
        usage.ul_packets, usage.ul_bytes, usage.dl_packets, usage.dl_bytes = 10, 1000, 12, 9000
    scans, tick = [], 30.0
    while True:  # a round over every open record with nothing due (the steady state)
        t0 = time.perf_counter()
        acct.check(tick)
        scans.append(time.perf_counter() - t0)
        tick += 0.05
        if acct.next_check > tick:
            break
    start = time.perf_counter()
    closed, pauses, tick = 0, [], 61.0
    while closed < ues:  # a period boundary: every record is due, closed over several ticks
        t0 = time.perf_counter()
        closed += acct.check(tick)
        pauses.append(time.perf_counter() - t0)
        tick += 0.05
    records = acct.drain(limit=ues)
    policy_s = time.perf_counter() - start
    assert closed == ues == len(records)
    encoder = Encoder(1, 32473, 1400)
    start = time.perf_counter()
    messages = encoder.messages(records, 61, with_templates=True)
    encode_s = time.perf_counter() - start
    return {
        "ues": ues,
        "ticks_per_scan_round": len(scans),
        "longest_scan_tick_ms": round(1000 * max(scans), 1),
        "ticks_to_close_all": len(pauses),
        "longest_tick_pause_ms": round(1000 * max(pauses), 1),
        "policy_close_records_per_s": round(ues / policy_s),
        "ipfix_encode_records_per_s": round(ues / encode_s),
        "end_to_end_records_per_s": round(ues / (policy_s + encode_s)),
        "ipfix_messages": len(messages),
        "ipfix_bytes": sum(len(m) for m in messages),
    }


def gc_bench(ues: int, freeze: bool) -> dict[str, object]:
    """One variant of the ``gc`` row (see the module docstring), in this interpreter."""
    pauses: list[float] = []
    started = [0.0]

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - started[0])

    freezer = Freezer() if freeze else None
    p = Pipeline(
        TofConfig.model_validate(
            {
                "backend": "none",
                "max_tunnels": 10**6,
                "accounting": {"enabled": True, "period": 60, "jsonl": {}},
            }
        )
    )
    p.set_services({"bench": Service("bench", "198.18.50.1", "198.19.0.10")})
    acct = p.accounting
    assert acct is not None
    per_tick = 2500

    def tick(now: float) -> None:
        p.tick(now)
        if freezer is not None:
            freezer.tick(allocated(p))
        acct.drain(limit=ues)  # the exporter takes the closed records

    ups, ticks = [], []
    t0 = time.perf_counter()
    tick(58.0)  # the data plane's first tick, before traffic (freezes the start-up heap)
    first_tick_s = time.perf_counter() - t0
    gc.callbacks.append(timer)
    learn_start = time.perf_counter()
    for i in range(ues):  # learning: a downlink G-PDU then an uplink one per UE
        a = ue(i)
        inner = ipv4.encode(PDN, a, 17, udp.encode(PDN, a, 53, 1, b"x"))
        gpdu = encapsulate_gpdu(SGW_IP, ENB_IP, 0x10000 + i, inner, udp_checksum=False)
        p.from_s1(ethernet_frame(MAC_A, MAC_B, gpdu), SGW, 58.0)
        inner = ipv4.encode(a, SVC, 17, udp.encode(a, SVC, 40000, 8080, bytes(64)))
        gpdu = encapsulate_gpdu(ENB_IP, SGW_IP, i + 1, inner, udp_checksum=False)
        ups.append(ethernet_frame(MAC_B, MAC_A, gpdu))
        p.from_s1(ups[-1], ENB, 58.0)  # its flow and its open record
        if i % per_tick == per_tick - 1:
            tick(58.0)
    learn_s = time.perf_counter() - learn_start
    learn_pauses = list(pauses)
    del pauses[:]
    assert len(acct.active) == ues
    assert len(p.bearers) == ues
    now, sent = 59.0, 0
    while now < 59.0 + 0.05 * 320:  # across the boundary at 60 s: ~220 ticks of closes
        t0 = time.perf_counter()
        for _ in range(per_tick):
            p.from_s1(ups[sent % ues], ENB, now)
            sent += 1
        tick(now)
        ticks.append(time.perf_counter() - t0)
        now += 0.05
    gc.callbacks.remove(timer)
    assert acct.records["periodic"] == ues, acct.records  # every record closed once...
    assert len(acct.active) == ues  # ...and reopened by the UEs' packets
    return {
        "freeze": freeze,
        "ues": ues,
        "learn_s": round(learn_s, 1),
        "learn_full_collections": len(learn_pauses),
        "learn_longest_full_ms": round(1000 * max(learn_pauses, default=0.0), 1),
        "boundary_full_collections": len(pauses),
        "boundary_longest_full_ms": round(1000 * max(pauses, default=0.0), 1),
        "boundary_longest_tick_ms": round(1000 * max(ticks), 1),
        "boundary_median_tick_ms": round(1000 * statistics.median(ticks), 1),
        "first_tick_ms": round(1000 * first_tick_s, 1),
        "freezes": freezer.freezes if freezer else 0,
        "frozen_objects": gc.get_freeze_count(),
    }


def gc_row(ues: int) -> dict[str, object]:
    """Both variants of the ``gc`` row, each in a fresh interpreter (the freeze is global)."""
    out: dict[str, object] = {}
    for variant in ("off", "freeze"):
        result = subprocess.run(
            [sys.executable, __file__, "--gc-variant", variant, "--gc-ues", str(ues)],
            check=True,
            capture_output=True,
            text=True,
        )
        out[variant] = json.loads(result.stdout)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 10,000 record UEs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--base", default="main", help="git revision for the off/base ratio")
    parser.add_argument("--only-gc", action="store_true", help="the gc row only")
    parser.add_argument("--gc-variant", choices=("off", "freeze"), help=argparse.SUPPRESS)
    parser.add_argument("--gc-ues", type=int, default=100_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gc_variant:
        print(json.dumps(gc_bench(args.gc_ues, args.gc_variant == "freeze")))
        return
    gc_ues = 10_000 if args.quick else 100_000
    if args.only_gc:
        print_gc(gc_row(gc_ues))
        return
    rounds, repeat = (10, 2) if args.quick else (60, 2)  # short rounds: best-of beats the noise
    base = pipeline(False, 1000, load_base(args.base).Pipeline)
    off = pipeline(False, 1000)
    on = pipeline(True, 1000)
    ratios, base_ratios, off_pps, on_pps, base_pps = [], [], [], [], []
    for r in range(rounds):
        # Rotate which goes first: none profits from a warmer cache or a quieter moment.
        trio = [base, off, on]
        order = trio[r % 3 :] + trio[: r % 3]
        rates = {id(p): offload_round(*p, repeat) for p in order}
        off_pps.append(rates[id(off)])
        on_pps.append(rates[id(on)])
        base_pps.append(rates[id(base)])
        ratios.append(rates[id(on)] / rates[id(off)])
        base_ratios.append(rates[id(off)] / rates[id(base)])
    acct = on[0].accounting
    assert acct is not None
    assert len(acct.active) == 1000  # every UE counted on the "on" side
    result = {
        "offload": {
            "ues": 1000,
            "rounds": rounds,
            "off_pps_median": round(statistics.median(off_pps)),
            "on_pps_median": round(statistics.median(on_pps)),
            "ratio_on_off_median": round(statistics.median(ratios), 3),
            "ratio_on_off_min": round(min(ratios), 3),
            "ratio_on_off_max": round(max(ratios), 3),
            "ratio_best_rounds": round(max(on_pps) / max(off_pps), 3),
            "base": args.base,
            "base_pps_median": round(statistics.median(base_pps)),
            "ratio_off_base_median": round(statistics.median(base_ratios), 3),
            "ratio_off_base_best_rounds": round(max(off_pps) / max(base_pps), 3),
        },
        "records": records_bench(10_000 if args.quick else 100_000),
        "gc": gc_row(gc_ues),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    o = result["offload"]
    print(
        f"offload (pipeline, {o['ues']} UEs, {o['rounds']} interleaved rounds): "
        f"off {o['off_pps_median']} pps, on {o['on_pps_median']} pps; "
        f"on/off median {o['ratio_on_off_median']} "
        f"(min {o['ratio_on_off_min']}, max {o['ratio_on_off_max']}; "
        f"best round on / best round off {o['ratio_best_rounds']})"
    )
    print(
        f"accounting off vs {o['base']} ({o['base_pps_median']} pps): "
        f"off/base median {o['ratio_off_base_median']} "
        f"(best round off / best round base {o['ratio_off_base_best_rounds']})"
    )
    rec = result["records"]
    print(
        f"records at {rec['ues']} active UEs: policy+close {rec['policy_close_records_per_s']}/s, "
        f"IPFIX encode {rec['ipfix_encode_records_per_s']}/s, "
        f"both {rec['end_to_end_records_per_s']}/s "
        f"({rec['ipfix_messages']} messages, {rec['ipfix_bytes']} bytes)\n"
        f"data-plane ticks: a scan round {rec['ticks_per_scan_round']} ticks "
        f"(longest {rec['longest_scan_tick_ms']} ms); a period boundary closed over "
        f"{rec['ticks_to_close_all']} ticks (longest {rec['longest_tick_pause_ms']} ms)"
    )
    print_gc(result["gc"])


def print_gc(row: dict[str, object]) -> None:
    for variant, r in row.items():
        assert isinstance(r, dict)
        print(
            f"gc {variant:6} {r['ues']} UEs: learning ({r['learn_s']} s) "
            f"{r['learn_full_collections']} full collections, longest "
            f"{r['learn_longest_full_ms']} ms; period boundary "
            f"{r['boundary_full_collections']} full collections, longest "
            f"{r['boundary_longest_full_ms']} ms, ticks with their packets median "
            f"{r['boundary_median_tick_ms']} ms, longest {r['boundary_longest_tick_ms']} ms; "
            f"{r['freezes']} freezes (the first, before traffic, {r['first_tick_ms']} ms), "
            f"{r['frozen_objects']} objects frozen"
        )


if __name__ == "__main__":
    main()
