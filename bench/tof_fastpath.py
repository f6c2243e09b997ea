"""TOF eBPF fast path vs the userspace reference vs plain kernel forwarding, in one run.

    .venv/bin/python bench/tof_fastpath.py [--quick] [--json]

Modes (each on its own lab, same machine, same frames, same invocation):

* ``kernel``: the lab in "routed" mode: the host namespace IP-forwards S1 (the baseline).
* ``userspace``: the lab in "tof" mode, the reference backend (AF_PACKET + TUN, Python per
  packet) running in this process.
* ``fastpath``: the lab in "tof" mode, :class:`fluidedge.tof.fastpath.backend.FastPathBackend`.

Throughput uses the lab's generator (trafgen replaying uplink G-PDUs of every bearer from the
eNB side): pass-through pps is what arrives at the SGWs; offloaded pps replays the same frames
addressed to a registered service and counts arrivals at the edge app. Sizes 64 (raised to the
smallest G-PDU, 82 B), 256, 1024, 1518 and the lab's iMIX. Latency is UE ping RTT p50/p99 to
the PDN (pass-through) and to the service IP (offloaded both ways), through the lab's eNB/SGW
emulators; "added" is the difference to the kernel run's RTT to the PDN. The machine has 2
cores (trafgen takes one) and is shared: the figures are what this run measured.

A second table ("direct") measures the backends' own capacity without the lab's RAN bridge and
emulators: trafgen in an eNB namespace sends straight into ``s1enb`` of a minimal topology (the
one the functional tests use) and the rate is read at the SGW (pass-through) or app
(offloaded) interface; kernel = the host namespace IP-forwarding the same frames.

A third table ("cpu") answers what the first two cannot on a 2-core machine whose generator
saturates first: what each packet costs the host, i.e. the packets one core could forward.
trafgen sends the same 64 B frames back to back with sendto (``--cpu-gap-us 0``, the default;
a positive gap offers a steady, lower rate instead; trafgen's ``--rate`` is not used because
it sends line-rate bursts) for three windows of a few seconds (medians reported). Around each
window the machine's busy CPU time is read (``/proc/stat``: user, nice, system, irq, softirq,
both cores; steal excluded), with what entered the host namespace ("offered") and what came
out ("delivered"). A "sink" run (the same frames into the host namespace with nothing
attached, where the kernel drops each on receipt) gives the generator's and the receive's cost
per offered packet; that share is subtracted ("net"), and net / delivered is the CPU cost of
one forwarded packet ("ns/pkt"; "pps/core" is its inverse). Kernel forwarding and the fast path
run in the sender's softirq, on the generator's core, so there the generator slows down as the
forwarding work grows; the userspace reference runs on the other core and drops what it cannot
take (offered > delivered).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Protocol

from _tof_common import SERVICE_IP, Run, offload_rate, percentile, ping_rtts, write_offload_pcap
from fluidedge.lab.config import default_text, loads
from fluidedge.lab.gen import IMIX_SEQUENCE, Generator, stop_group
from fluidedge.lab.lab import Lab
from fluidedge.tof.config import TofConfig
from fluidedge.tof.launch import lab_tof_section
from fluidedge.tof.models import Service

REPO = Path(__file__).resolve().parent.parent


class _Backend(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def apply(self, services: dict[str, Service]) -> None: ...
    def stats(self) -> dict[str, object]: ...


def _userspace(config: TofConfig) -> _Backend:
    from fluidedge.tof.userspace import UserspaceBackend

    return UserspaceBackend(config)


def _fastpath(config: TofConfig) -> _Backend:
    from fluidedge.tof.fastpath.backend import FastPathBackend

    return FastPathBackend(config)


BACKENDS: dict[str, Callable[[TofConfig], _Backend]] = {
    "userspace": _userspace,
    "fastpath": _fastpath,
}


def measure(mode: str, prefix: str, args: argparse.Namespace) -> Run:
    lab = Lab.up(loads(default_text()), prefix=prefix, mode="routed" if mode == "kernel" else "tof")
    backend: _Backend | None = None
    run = Run(mode)
    try:
        if mode != "kernel":
            section = lab_tof_section(lab, idle_timeout=600)
            backend = BACKENDS[mode](TofConfig(**section))  # type: ignore[arg-type]
            backend.start()
            app = str(next(iter(lab.apps.values())))
            backend.apply({"bench": Service("bench", SERVICE_IP, app)})
        pdn = str(lab.pdn_address)
        for ue in lab.ues:  # warm the path: ARP, tunnel learning
            lab.run(ue, ["ping", "-c", "2", "-i", "0.1", "-W", "1", pdn])
        rtts = ping_rtts(lab, "ue1", pdn, args.pings)
        run.results["rtt_pdn_p50_ms"] = percentile(rtts, 0.5)
        run.results["rtt_pdn_p99_ms"] = percentile(rtts, 0.99)
        if mode != "kernel":
            lab.run("ue1", ["ping", "-c", "2", "-i", "0.1", "-W", "1", SERVICE_IP])
            rtts = ping_rtts(lab, "ue1", SERVICE_IP, args.pings)
            run.results["rtt_service_p50_ms"] = percentile(rtts, 0.5)
            run.results["rtt_service_p99_ms"] = percentile(rtts, 0.99)
        gen = Generator(lab)
        streams = {s.name: s for s in gen.write_streams()}
        for size in args.sizes:
            offer = gen.offer(streams[f"plain-{size}"].pcap, duration=args.duration)
            run.results[f"pass_{size}_pps"] = offer.pps
            sizes: tuple[int, ...] = IMIX_SEQUENCE
            if size != "imix":
                sizes = (int(size),)
            pcap = write_offload_pcap(lab, gen, size, sizes)
            if mode == "kernel":
                # The kernel baseline for offload is the kernel forwarding the same frames.
                run.results[f"offload_{size}_pps"] = gen.offer(pcap, duration=args.duration).pps
            else:
                run.results[f"offload_{size}_pps"] = offload_rate(lab, gen, pcap, args.duration)[0]
        if backend is not None:
            stats = backend.stats()
            drops = stats.get("drops")
            run.results["drops"] = float(sum(drops.values())) if isinstance(drops, dict) else 0.0
            fast = stats.get("fastpath")
            if isinstance(fast, dict):
                run.results["punted"] = float(
                    fast.get("punted_from_enb", 0) + fast.get("punted_from_sgw", 0)
                )
                run.results["punt_rate_limited"] = float(fast.get("punt_rate_limited", 0))
    finally:
        if backend is not None:
            backend.stop()
        lab.down()
    return run


# --- direct: minimal topology, trafgen straight into s1enb ----------------------------------


def _direct_frame(size: int, inner_dst: str, dst_mac: bytes) -> bytes:
    from fluidedge.codec.net import ipv4, udp
    from fluidedge.codec.stack import encapsulate_gpdu

    enb, sgw = IPv4Address("198.18.0.11").packed, IPv4Address("198.18.0.21").packed
    ue, dst = IPv4Address("198.18.100.1").packed, IPv4Address(inner_dst).packed
    pad = max(0, size - 4 - 82)
    inner = ipv4.encode(ue, dst, 17, udp.encode(ue, dst, 1000, 9, bytes(pad)))
    outer = encapsulate_gpdu(enb, sgw, 0x100, inner, udp_checksum=False)
    return dst_mac + bytes.fromhex("02000000e001") + b"\x08\x00" + outer


def _start_trafgen(
    ns: str, cfg_path: Path, frames: list[bytes], *extra: str
) -> subprocess.Popen[bytes]:
    """trafgen in ``ns`` cycling through ``frames`` out of ``s1`` until stopped (its group)."""
    cfg_path.write_text("".join("{ " + ", ".join(f"0x{b:02x}" for b in f) + " }\n" for f in frames))
    argv = ["ip", "netns", "exec", ns, "trafgen", "-o", "s1", "-i", str(cfg_path), "-P", "1"]
    return subprocess.Popen(
        [*argv, "-q", "-n", "0", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _rx_packets(where: tuple[str, str]) -> int:
    """The receive counter of interface ``where[1]`` in namespace ``where[0]``."""
    path = f"/sys/class/net/{where[1]}/statistics/rx_packets"
    out = subprocess.run(
        ["ip", "netns", "exec", where[0], "cat", path], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def _trafgen_rate(ns: str, cfg_path: Path, frames: list[bytes], counter: tuple[str, str]) -> float:
    """trafgen cycles through ``frames`` at full speed; the arrival rate at ``counter``."""
    proc = _start_trafgen(ns, cfg_path, frames)
    try:
        time.sleep(1.0)
        r0, t0 = _rx_packets(counter), time.monotonic()
        time.sleep(DIRECT_SECONDS)
        r1, t1 = _rx_packets(counter), time.monotonic()
    finally:
        stop_group(proc)
    return (r1 - r0) / (t1 - t0)


DIRECT_SECONDS = 3.0
CPU_SECONDS = 3.0
CPU_WINDOWS = 3


def _busy_seconds() -> float:
    """CPU time the whole machine spent working (all cores), from ``/proc/stat``."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _cpu_cost(
    ns: str,
    cfg_path: Path,
    frames: list[bytes],
    offered_at: tuple[str, str],
    counter: tuple[str, str],
    *,
    gap_us: int,
) -> tuple[float, float, float]:
    """Offer ``frames`` one per ``gap_us``; (offered pps, delivered pps, busy cores).

    Offered is read where the frames enter the host namespace, delivered at ``counter``; each
    figure is the median of ``CPU_WINDOWS`` consecutive windows of one trafgen run.
    """
    proc = _start_trafgen(ns, cfg_path, frames, "-t", f"{gap_us}us")
    offered: list[float] = []
    delivered: list[float] = []
    busy: list[float] = []
    try:
        time.sleep(1.0)
        for _ in range(CPU_WINDOWS):
            o0, r0 = _rx_packets(offered_at), _rx_packets(counter)
            b0, t0 = _busy_seconds(), time.monotonic()
            time.sleep(CPU_SECONDS)
            b1, t1 = _busy_seconds(), time.monotonic()
            o1, r1 = _rx_packets(offered_at), _rx_packets(counter)
            offered.append((o1 - o0) / (t1 - t0))
            delivered.append((r1 - r0) / (t1 - t0))
            busy.append((b1 - b0) / (t1 - t0))
    finally:
        stop_group(proc)
    return statistics.median(offered), statistics.median(delivered), statistics.median(busy)


def measure_direct(mode: str, sizes: tuple[str, ...], cpu_gap: int) -> dict[str, float]:
    sys.path.insert(0, str(REPO))
    from tests.functional.tof_fastpath.topo import MAC_SGW, topology

    from fluidedge.linux.proc import run

    results: dict[str, float] = {}
    with topology(f"b{mode[0]}") as t:
        backend: _Backend | None = None
        mac_sgw = MAC_SGW
        fd, name = tempfile.mkstemp(prefix="fluidedge-bench-", suffix=".trafgen")
        os.close(fd)
        cfg = Path(name)
        if mode == "kernel" and cpu_gap >= 0:
            # The sink: the same offer, received by the host namespace and dropped there
            # (forwarding off, no address): the generator's and the veth's own cost.
            frame = _direct_frame(64, "198.18.200.10", MAC_SGW)
            where = (t.host, "s1enb")
            _, pps, cores = _cpu_cost(t.enb, cfg, [frame], where, where, gap_us=cpu_gap)
            results["sink_cpu_pps"], results["sink_cpu_cores"] = pps, cores
        if mode == "kernel":
            h = ["ip", "-n", t.host]
            run(["ip", "netns", "exec", t.host, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            run([*h, "addr", "add", "198.18.0.1/25", "dev", "s1enb"])
            run([*h, "addr", "add", "198.18.0.129/25", "dev", "s1sgw"])
            for dst in ("198.18.0.21/32", "198.18.50.1/32"):
                run([*h, "route", "add", dst, "via", "198.18.0.130"])
            run([*h, "neigh", "add", "198.18.0.130", "lladdr", MAC_SGW.hex(":"), "dev", "s1sgw"])
            out = run(["ip", "netns", "exec", t.host, "cat", "/sys/class/net/s1enb/address"])
            mac_sgw = bytes.fromhex(out.stdout.strip().replace(":", ""))
        else:
            config = TofConfig(netns=t.host, pinger_target="198.18.200.10", idle_timeout=600)
            backend = BACKENDS[mode](config)
            backend.start()
            backend.apply({"bench": Service("bench", SERVICE_IP, "198.19.0.10")})
        try:
            for size in sizes:
                frame_sizes = IMIX_SEQUENCE if size == "imix" else (int(size),)
                for kind, dst, where in (
                    ("pass", "198.18.200.10", (t.sgw, "s1")),
                    ("offload", SERVICE_IP, (t.app, "eth0")),
                ):
                    # The kernel baseline forwards both streams to the SGW side.
                    counter = (t.sgw, "s1") if mode == "kernel" else where
                    frames = [_direct_frame(fs, dst, mac_sgw) for fs in frame_sizes]
                    for frame in sorted(set(frames)):
                        t.send("enb", frame)  # learning / first packet of the flow
                    time.sleep(0.3)
                    results[f"{kind}_{size}_pps"] = _trafgen_rate(t.enb, cfg, frames, counter)
                    if cpu_gap >= 0 and size == sizes[0]:
                        offered, pps, cores = _cpu_cost(
                            t.enb, cfg, frames, (t.host, "s1enb"), counter, gap_us=cpu_gap
                        )
                        results[f"{kind}_cpu_offered"] = offered
                        results[f"{kind}_cpu_pps"], results[f"{kind}_cpu_cores"] = pps, cores
        finally:
            cfg.unlink(missing_ok=True)
            if backend is not None:
                backend.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short offers, two frame sizes")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--modes", default="kernel,userspace,fastpath")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct table")
    parser.add_argument("--no-lab", action="store_true", help="skip the lab table")
    parser.add_argument(
        "--cpu-gap-us",
        type=int,
        default=0,
        help="trafgen gap of the cpu table (0: back to back); -1 skips it",
    )
    args = parser.parse_args()
    args.duration = 1.5 if args.quick else 3.0
    args.sizes = ("64", "1024") if args.quick else ("64", "256", "1024", "1518", "imix")
    args.pings = 100 if args.quick else 300
    modes = tuple(args.modes.split(","))
    base = f"fb{os.getpid() % 100000}"
    runs = {m: Run(m) if args.no_lab else measure(m, f"{base}{m[0]}", args) for m in modes}
    if args.json:
        print(json.dumps({m: r.results for m, r in runs.items()}, indent=2))
        return
    kernel = runs["kernel"].results if "kernel" in runs else {}
    user = runs["userspace"].results if "userspace" in runs else {}
    print(f"\nTOF fast path vs userspace reference vs kernel forwarding ({time.ctime()})\n")
    head = f"{'metric':<22}" + "".join(f"{m:>12}" for m in modes)
    print(head + f"{'fast/kernel':>13}{'fast/user':>11}")
    fast = runs["fastpath"].results if "fastpath" in runs else {}
    for kind in ("pass", "offload"):
        for size in args.sizes:
            key = f"{kind}_{size}_pps"
            line = f"{key:<22}"
            for m in modes:
                value = runs[m].results.get(key)
                line += f"{value:>12,.0f}" if value is not None else f"{'-':>12}"
            k = kernel.get(f"pass_{size}_pps") or float("nan")
            u = user.get(key) or float("nan")
            f = fast.get(key, float("nan"))
            print(line + f"{f / k:>12.1%}{f / u:>10.1f}x")
    for key in ("rtt_pdn_p50_ms", "rtt_pdn_p99_ms", "rtt_service_p50_ms", "rtt_service_p99_ms"):
        line = f"{key:<22}"
        for m in modes:
            value = runs[m].results.get(key)
            line += f"{value:>12.3f}" if value is not None else f"{'-':>12}"
        base_key = key.replace("service", "pdn")
        added = fast.get(key, float("nan")) - kernel.get(base_key, float("nan"))
        print(line + f"   added {added:+.3f} ms")
    if not args.no_direct:
        direct = {m: measure_direct(m, args.sizes, args.cpu_gap_us) for m in modes}
        print(f"\ndirect (trafgen straight into s1enb, {DIRECT_SECONDS:.0f} s per cell)\n")
        print(head + f"{'fast/kernel':>13}{'fast/user':>11}")
        for kind in ("pass", "offload"):
            for size in args.sizes:
                key = f"{kind}_{size}_pps"
                line = f"{key:<22}" + "".join(f"{direct[m].get(key, 0):>12,.0f}" for m in modes)
                k = direct.get("kernel", {}).get(f"pass_{size}_pps") or float("nan")
                u = direct.get("userspace", {}).get(key) or float("nan")
                f = direct.get("fastpath", {}).get(key, float("nan"))
                print(line + f"{f / k:>12.1%}{f / u:>10.1f}x")
    if not args.no_direct and args.cpu_gap_us >= 0:
        _print_cpu(direct, modes, args.cpu_gap_us)
    print(
        "\nfastpath: punted "
        f"{fast.get('punted', 0):.0f}, rate-limited {fast.get('punt_rate_limited', 0):.0f}, "
        f"drops {fast.get('drops', 0):.0f}; userspace drops {user.get('drops', 0):.0f}"
    )


def _print_cpu(direct: dict[str, dict[str, float]], modes: tuple[str, ...], gap: int) -> None:
    """CPU cost per forwarded packet, net of the sink, and the capacity it implies."""
    sink = direct.get("kernel", {})
    sink_cores = sink.get("sink_cpu_cores", float("nan"))
    print(
        f"\ncpu (64 B, trafgen gap {gap} us; medians of {CPU_WINDOWS} windows of "
        f"{CPU_SECONDS:.0f} s; sink = generator + receive only: "
        f"{sink.get('sink_cpu_pps', 0):,.0f} pps, {sink_cores:.3f} cores busy)\n"
    )
    print(
        f"{'cell':<9}{'mode':<11}{'offered':>9}{'delivered':>11}{'busy':>7}{'net':>7}"
        f"{'ns/pkt':>8}{'pps/core':>10}{'vs user':>9}{'vs kernel':>11}"
    )
    # The generator's own cost scales with what it offers: cores per offered packet.
    per_offered = sink_cores / (sink.get("sink_cpu_pps") or float("nan"))
    for kind in ("pass", "offload"):
        cost: dict[str, float] = {}
        net: dict[str, float] = {}
        for m in modes:
            pps = direct[m].get(f"{kind}_cpu_pps", 0.0)
            offered = direct[m].get(f"{kind}_cpu_offered", 0.0)
            cores = direct[m].get(f"{kind}_cpu_cores", float("nan"))
            net[m] = cores - per_offered * offered
            cost[m] = net[m] / pps if pps > 0 and net[m] > 0 else float("nan")
        for m in modes:
            offered = direct[m].get(f"{kind}_cpu_offered", 0.0)
            pps = direct[m].get(f"{kind}_cpu_pps", 0.0)
            cores = direct[m].get(f"{kind}_cpu_cores", float("nan"))
            c = cost[m]
            print(
                f"{kind:<9}{m:<11}{offered:>9,.0f}{pps:>11,.0f}{cores:>7.3f}"
                f"{net[m]:>7.3f}{c * 1e9:>8,.0f}{1 / c:>10,.0f}"
                f"{cost.get('userspace', float('nan')) / c:>8.1f}x"
                f"{cost.get('kernel', float('nan')) / c:>10.2f}x"
            )


if __name__ == "__main__":
    main()
