"""What the Open vSwitch firewall's check costs per bridge and second, by what it reads.

Each ``[secgroups] check_interval_s`` the OpenFlow renderer checks every bridge it filters.
Until the flows' digest it counted the flows with its cookie (``ovs-ofctl dump-aggregate``:
nothing printed), which misses a flow replaced in place (``ovs-ofctl mod-flows``: the count
kept, the actions another's). Now it dumps them (``dump-flows --no-stats``), counts the lines
and digests them (:func:`fluidedge.ovs.flows.dump_digest`). This times both ways against a
real switch (our ``ovsdb-server`` + ``ovs-vswitchd``, userspace datapath, in a namespace of its
own) holding ``--flows`` flows with our cookie, ``--rounds`` times each, alternated, in one
invocation; the ratio is dump+digest over count at p50.

Run as root: ``.venv/bin/python bench/secgroups_ovs_check_cost.py [--flows 100 1000 10000]
[--rounds 15]``. The namespace and the switch are removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluidedge.linux import netns
from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.flows import dump_digest
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from fluidedge.secgroups import ovs_render

NETNS = "fe-bench-ovschk"


def _flows(count: int) -> list[str]:
    """``count`` flows of ours shaped as the renderer's per-port rules (a source and a TCP
    port each, on to the next table)."""
    return [
        f"add cookie={ovs_render.COOKIE:#x},table=1,priority=100,tcp,"
        f"nw_src=10.{i // 65536}.{(i // 256) % 256}.{i % 256},tp_dst={i % 60000 + 1},"
        "actions=resubmit(,2)"
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flows", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    netns.create(NETNS)
    daemons = OvsDaemons(Path(tempfile.mkdtemp(prefix="fe-bench-")) / "ovs", netns=NETNS)
    try:
        daemons.start()
        Vsctl(daemons).add_bridge("brchk")
        ofctl = Ofctl(daemons, "brchk")
        print("ovs firewall check per bridge, ms (p50 / p90 of --rounds, alternated)")
        for count in args.flows:
            ofctl.bundle([f"delete cookie={ovs_render.COOKIE:#x}/-1", *_flows(count)])
            counted: list[float] = []
            digested: list[float] = []
            for _ in range(args.rounds):
                begin = time.perf_counter()
                have = ofctl.count(ovs_render.owned())
                counted.append((time.perf_counter() - begin) * 1000)
                begin = time.perf_counter()
                lines = ofctl.dump(ovs_render.owned())
                dump_digest(lines)
                digested.append((time.perf_counter() - begin) * 1000)
                if have != count or len(lines) != count:
                    raise RuntimeError(f"{count} flows installed, {have} / {len(lines)} seen")

            def q(values: list[float], p: int) -> float:
                return statistics.quantiles(values, n=10)[p // 10 - 1]

            count_p50, digest_p50 = statistics.median(counted), statistics.median(digested)
            print(
                f"  {count:6d} flows  count (dump-aggregate) p50 {count_p50:7.1f}"
                f" p90 {q(counted, 90):7.1f}   dump + digest p50 {digest_p50:7.1f}"
                f" p90 {q(digested, 90):7.1f}   ratio {digest_p50 / count_p50:5.2f}x"
            )
    finally:
        daemons.stop()
        netns.delete(NETNS)


if __name__ == "__main__":
    main()
