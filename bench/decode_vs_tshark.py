"""`fluidedge decode` against tshark on captures at operator scale, side by side in one run.

    PYTHONPATH=src .venv/bin/python bench/decode_vs_tshark.py [--frames N] [--small N]
        [--repeat R] [--analyze-frames N] [--workdir DIR] [--keep]

Writes real-shaped G-PDU captures (S flag and sequence numbers, ICMP and TCP inside, as
osmo-ggsn sends; see ``bench/_captures.py``) of ``--small`` (100,000) and ``--frames``
(1,000,000) frames into a temporary directory, then measures, as whole processes (wall time
and peak RSS from ``wait4``; output to /dev/null):

Each row gives the wall time, the CPU time (user + system: what a loaded machine changes
least) and the peak RSS.

* ``fluidedge decode FILE --fields frame,teid,outer_src,outer_dst,inner_src,inner_dst,
  udp_dst_port`` against ``tshark -r FILE -T fields -e frame.number -e gtp.teid -e ip.src
  -e ip.dst -e udp.dstport`` (the same information: tshark's ip.src lists outer and inner),
  ``--repeat`` alternating runs each, medians; goal: >= 5x faster, peak RSS <= 100 MiB and the
  same for both capture sizes;
* ``fluidedge decode FILE --json`` (JSON Lines): frames/s and peak RSS;
* the library loop (``CaptureReader`` + ``classify``) in this process: frames/s;
* ``fluidedge analyze`` on a capture of API exchanges within ``--analyze-frames`` frames of
  G-PDU traffic: frames/s and peak RSS, at both sizes.

Before timing, the two decoders' values are compared on the first 2,000 frames (tshark prints
TEIDs in hex and both IP layers' addresses comma-separated; the bench translates). The machine
is shared: ratios are measured in the same run, alternating; read absolute figures with care.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _captures
from fluidedge.codec.pcapstream import CaptureReader
from fluidedge.codec.stack import classify

OURS_FIELDS = "frame,teid,outer_src,outer_dst,inner_src,inner_dst,udp_dst_port"
TSHARK_FIELDS = ["frame.number", "gtp.teid", "ip.src", "ip.dst", "udp.dstport"]
MIB = 1024 * 1024


def fluidedge(*args: str) -> list[str]:
    return [sys.executable, "-m", "fluidedge", *args]


def tshark(path: Path) -> list[str]:
    argv = ["tshark", "-r", str(path), "-T", "fields"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    return argv


def measure(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one process, its output thrown away.

    CPU time (user + system) is what the machine's load changes least: on a shared machine
    the wall time includes waiting for a core."""
    with open(os.devnull, "wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {err.decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # KiB on Linux


def check_same_values(path: Path) -> int:
    """Our --fields against tshark's on the same frames; the number of frames compared."""
    ours = subprocess.run(
        fluidedge("decode", str(path), "--fields", OURS_FIELDS),
        capture_output=True, check=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    theirs = subprocess.run(
        tshark(path), capture_output=True, check=True, text=True
    ).stdout.splitlines()
    if len(ours) != len(theirs):
        raise SystemExit(f"{len(ours)} lines from fluidedge, {len(theirs)} from tshark")
    for mine, other in zip(ours, theirs, strict=True):
        frame, teid, osrc, odst, isrc, idst, dport = mine.split("\t")
        t_frame, t_teid, t_src, t_dst, t_dport = other.split("\t")
        want = (t_frame, int(t_teid, 16), t_src, t_dst, t_dport.split(",")[0])
        if (frame, int(teid), f"{osrc},{isrc}", f"{odst},{idst}", dport) != want:
            raise SystemExit(f"values differ:\n  fluidedge {mine!r}\n  tshark    {other!r}")
    return len(ours)


def library_rate(path: Path) -> float:
    started = time.perf_counter()
    n = 0
    with path.open("rb") as f:
        for _ts, data, _orig, _link in CaptureReader(f).raw():
            classify(data)
            n += 1
    return n / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="the large capture")
    ap.add_argument("--small", type=int, default=100_000, help="the small capture")
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs per capture")
    ap.add_argument("--analyze-frames", type=int, default=None, help="default: --frames")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the captures")
    args = ap.parse_args(argv)
    if shutil.which("tshark") is None:
        raise SystemExit("tshark is not installed (apt-get install tshark)")
    work = Path(tempfile.mkdtemp(prefix="fe-decode-bench-", dir=args.workdir))
    try:
        return run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    version = subprocess.run(
        ["tshark", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    print(f"python {platform.python_version()}, tshark {version}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}, work dir {work}")  # fmt: skip
    pool = _captures.frame_pool()
    sizes = {"small": args.small, "large": args.frames}
    paths = {}
    for label, n in sizes.items():
        paths[label] = work / f"gpdu-{n}.pcap"
        started = time.perf_counter()
        _captures.write_pcap(paths[label], _captures.gpdus(n, pool))
        took = time.perf_counter() - started
        mib = paths[label].stat().st_size / MIB
        print(f"wrote {paths[label].name}: {n:,} frames, {mib:,.1f} MiB in {took:.1f} s")
    check = work / "check.pcap"
    _captures.write_pcap(check, _captures.gpdus(2000, pool))
    print(f"values: fluidedge --fields == tshark -T fields on {check_same_values(check):,} frames")

    print()
    print(
        f"{'capture':>10} {'tool':<30} {'wall s':>8} {'cpu s':>7} {'frames/s':>10} {'peak MiB':>9}"
    )
    print("-" * 79)
    ratios: dict[str, tuple[float, float]] = {}
    peaks = {}
    for label, path in paths.items():
        n = sizes[label]
        runs: dict[str, list[tuple[float, float, float]]] = {
            "fluidedge decode --fields": [],
            "tshark -T fields": [],
        }
        for _ in range(args.repeat):
            runs["fluidedge decode --fields"].append(
                measure(fluidedge("decode", str(path), "--fields", OURS_FIELDS))
            )
            runs["tshark -T fields"].append(measure(tshark(path)))
        med = {
            k: (
                statistics.median(w for w, _, _ in v),
                statistics.median(c for _, c, _ in v),
                max(r for _, _, r in v),
            )
            for k, v in runs.items()
        }
        for tool, (wall, cpu, rss) in med.items():
            row(n, tool, wall, cpu, rss)
        ours, theirs = med["fluidedge decode --fields"], med["tshark -T fields"]
        ratios[label] = (theirs[0] / ours[0], theirs[1] / ours[1])
        peaks[label] = ours[2]
    large = paths["large"]
    n = sizes["large"]
    wall, cpu, rss = measure(fluidedge("decode", str(large), "--json"))
    row(n, "fluidedge decode --json (JSONL)", wall, cpu, rss)
    rate = library_rate(large)
    print(f"{n:>10,} {'library: read + classify':<30} {n / rate:>8.2f} {'':>7} {rate:>10,.0f}")
    analyze_peaks = analyze_rows(args, work, pool)
    print()
    for label in paths:
        wall_ratio, cpu_ratio = ratios[label]
        print(f"decode --fields vs tshark, {sizes[label]:,} frames: {wall_ratio:.1f}x faster "
              f"(wall), {cpu_ratio:.1f}x less CPU (goal >= 5x)")  # fmt: skip
    print(f"decode --fields peak RSS: {peaks['small']:.1f} MiB at {sizes['small']:,} frames, "
          f"{peaks['large']:.1f} MiB at {sizes['large']:,} (goal <= 100 MiB, flat)")  # fmt: skip
    if analyze_peaks:
        (s_n, s_rss), (l_n, l_rss) = analyze_peaks
        print(f"analyze peak RSS: {s_rss:.1f} MiB at {s_n:,} frames, {l_rss:.1f} MiB at {l_n:,}")
    return 0


def row(n: int, tool: str, wall: float, cpu: float, rss: float) -> None:
    print(f"{n:>10,} {tool:<30} {wall:>8.2f} {cpu:>7.2f} {n / wall:>10,.0f} {rss:>9.1f}")


def analyze_rows(
    args: argparse.Namespace, work: Path, pool: list[bytes]
) -> list[tuple[int, float]]:
    """``fluidedge analyze`` on API exchanges spread through G-PDU traffic, at both sizes."""
    large = args.analyze_frames or args.frames
    out = []
    for n in (args.small, large):
        path = work / f"api-{n}.pcap"
        exchanges = _captures.write_api_capture(path, n, pool)
        wall, cpu, rss = measure(fluidedge("analyze", str(path), "--api-port", "8181"))
        row(n, f"fluidedge analyze ({exchanges} POSTs)", wall, cpu, rss)
        out.append((n, rss))
    return out


if __name__ == "__main__":
    sys.exit(main())
