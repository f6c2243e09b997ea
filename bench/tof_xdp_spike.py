"""Spike: native XDP on the S1 veths (XDP_REDIRECT through a devmap) vs the tc fast path.

    .venv/bin/python bench/tof_xdp_spike.py [--sizes 64,imix]

One invocation, the minimal topology of the functional tests (trafgen in the eNB namespace
straight into ``s1enb``, pass-through counted at the SGW's interface, 3 s per cell):

* ``kernel``: the host namespace IP-forwards the frames (the baseline);
* ``tc``: the product's fast path (``FastPathBackend``, tc clsact ``s1_ingress``);
* ``xdp``: the same backend running, plus ``tof_xdp_spike.bpf.c`` attached in native (driver)
  mode on ``s1enb`` and ``s1sgw``: the learned tunnel is looked up in its own map of the same
  layout and the frame redirected through a devmap; anything else falls through to tc. The far
  ends of the veths carry an ``XDP_PASS`` program, which a veth needs to receive redirected XDP
  frames. Only pass-through is measured: offload in XDP (decapsulation, NAT, routing) is not
  written; the spike decides whether it is worth writing.

Frames are 64 B (raised to the smallest G-PDU) and/or the lab's iMIX. Ratios are to the kernel
column of the same run. Used for docs/adr/0003-tof-xdp.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.functional.tof_fastpath.topo import MAC_SGW, topology  # noqa: E402

from fluidedge.lab.gen import IMIX_SEQUENCE  # noqa: E402
from fluidedge.linux.libbpf import BpfMap, BpfObject, pin  # noqa: E402
from fluidedge.linux.netns import call_in_netns  # noqa: E402
from fluidedge.linux.proc import run  # noqa: E402
from fluidedge.linux.tc import BPFFS, ensure_bpffs  # noqa: E402
from fluidedge.tof.config import TofConfig  # noqa: E402
from fluidedge.tof.fastpath import layout as L  # noqa: E402
from fluidedge.tof.fastpath.backend import FastPathBackend  # noqa: E402
from tof_fastpath import _direct_frame, _trafgen_rate, measure_direct  # noqa: E402

SPIKE_C = REPO / "bench" / "tof_xdp_spike.bpf.c"


def _compile(out_dir: Path) -> Path:
    includes = [f"-I{p.parent}" for p in Path("/usr/include").glob("*-linux-gnu/asm")]
    obj = out_dir / "xdp.o"
    subprocess.run(
        [
            "clang",
            "-O2",
            "-g",
            "-Wall",
            "-target",
            "bpf",
            *includes,
            "-c",
            str(SPIKE_C),
            "-o",
            str(obj),
        ],
        check=True,
    )
    return obj


def _attach_xdp(ns: str, dev: str, obj: BpfObject, prog: str) -> None:
    ensure_bpffs()
    with tempfile.TemporaryDirectory(dir=BPFFS, prefix="fluidedge-xdp-") as tmp:
        pinned = Path(tmp) / prog
        pin(obj.prog_fd(prog), pinned)
        run(["ip", "-n", ns, "link", "set", "dev", dev, "xdpdrv", "pinned", str(pinned)])
        pinned.unlink()


def _ifindex(ns: str, dev: str) -> int:
    return int(call_in_netns(ns, lambda: socket.if_nametoindex(dev)))


def measure_xdp(sizes: list[str], obj_file: Path, cfg: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    with topology("xd") as t:
        backend = FastPathBackend(TofConfig(netns=t.host, pinger_target="198.18.200.10"))
        backend.start()
        obj = BpfObject(obj_file)
        try:
            tx = BpfMap(obj.map_fd("tx"), 4, 4)
            enb_if, sgw_if = _ifindex(t.host, "s1enb"), _ifindex(t.host, "s1sgw")

            def fill_devmap() -> None:  # a devmap resolves ifindexes in the writer's netns
                tx.update(L.U32.pack(0), L.U32.pack(enb_if))
                tx.update(L.U32.pack(1), L.U32.pack(sgw_if))

            call_in_netns(t.host, fill_devmap)
            BpfMap(obj.map_fd("enb_ifindex"), 4, 4).update(L.U32.pack(0), L.U32.pack(enb_if))
            tunnels = BpfMap(obj.map_fd("tunnels"), L.TUNNEL_KEY_SIZE, L.TUNNEL_VAL.size)
            for ns in (t.enb, t.sgw):
                _attach_xdp(ns, "s1", obj, "xdp_pass")
            for dev in ("s1enb", "s1sgw"):
                _attach_xdp(t.host, dev, obj, "s1_xdp")
            for size in sizes:
                frame_sizes = IMIX_SEQUENCE if size == "imix" else (int(size),)
                frames = [_direct_frame(fs, "198.18.200.10", MAC_SGW) for fs in frame_sizes]
                key = frames[0][14 + 12 : 14 + 20] + frames[0][14 + 28 + 4 : 14 + 28 + 8]
                tunnels.update(
                    key, L.TUNNEL_VAL.pack(0, 0, 0, 0, frames[0][14 + 28 + 8 + 12 :][:4])
                )
                results[f"pass_{size}_pps"] = _trafgen_rate(t.enb, cfg, frames, (t.sgw, "s1"))
                raw = tunnels.lookup(key)
                results[f"xdp_{size}_packets"] = L.TUNNEL_VAL.unpack(raw)[0] if raw else 0
        finally:
            for ns, dev in ((t.host, "s1enb"), (t.host, "s1sgw"), (t.enb, "s1"), (t.sgw, "s1")):
                run(["ip", "-n", ns, "link", "set", "dev", dev, "xdpdrv", "off"], check=False)
            obj.close()
            backend.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,imix")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    with tempfile.TemporaryDirectory(prefix="fluidedge-xdp-") as tmp:
        obj_file = _compile(Path(tmp))
        fd, name = tempfile.mkstemp(prefix="fluidedge-bench-", suffix=".trafgen")
        os.close(fd)
        cfg = Path(name)
        try:
            kernel = measure_direct("kernel", tuple(sizes), -1)
            tc = measure_direct("fastpath", tuple(sizes), -1)
            xdp = measure_xdp(sizes, obj_file, cfg)
        finally:
            cfg.unlink(missing_ok=True)
    print(f"XDP spike: pass-through, trafgen straight into s1enb ({time.ctime()})\n")
    print(f"{'size':8}{'kernel pps':>14}{'tc pps':>14}{'xdp pps':>14}{'tc/kernel':>11}"
          f"{'xdp/kernel':>12}{'xdp/tc':>9}{'xdp hits':>12}")  # fmt: skip
    for size in sizes:
        k, c, x = kernel[f"pass_{size}_pps"], tc[f"pass_{size}_pps"], xdp[f"pass_{size}_pps"]
        print(
            f"{size:8}{k:>14,.0f}{c:>14,.0f}{x:>14,.0f}{c / k:>10.2f}x{x / k:>11.2f}x"
            f"{x / c:>8.2f}x{xdp[f'xdp_{size}_packets']:>12,.0f}"
        )
    for size in sizes:
        ratio = tc[f"offload_{size}_pps"] / kernel[f"offload_{size}_pps"]
        print(
            f"offload {size} (tc only): {tc[f'offload_{size}_pps']:,.0f} pps, {ratio:.2f}x kernel"
        )


if __name__ == "__main__":
    main()
