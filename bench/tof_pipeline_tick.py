"""What the TOF pipeline's timers cost per tick at 10 and at 100,000 bearers.

    .venv/bin/python bench/tof_pipeline_tick.py [--sizes 10,100000] [--flows-per 10]

For each size N, a fresh :class:`~fluidedge.tof.pipeline.Pipeline` learns N bearers (uplink
and downlink G-PDUs: no Pinger runs) and N x ``--flows-per`` / 2 offloaded flows (half the
bearers use the bench service), then ticks every 50 ms for 5 s of its clock (five idle
purges included) with nothing due (``idle_timeout`` 300 s, ``flow_timeout`` 60 s): "tick" is
the mean cost of one tick. "scan tick" runs the same ticks through the full scans the
pipeline used before its expiry wheels (every bearer every tick, every bearer, flow and pair
every second), for comparison. "expiry" then moves the clock past every deadline: the purge
that retires everything, per item.

Pure CPU, no root; the ratios to the first size are what to read (shared machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from fluidedge.codec.net import ipv4, udp  # noqa: E402
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame  # noqa: E402
from fluidedge.tof.config import TofConfig  # noqa: E402
from fluidedge.tof.models import Service  # noqa: E402
from fluidedge.tof.pipeline import ENB, SGW, Action, Pipeline  # noqa: E402

ENB_IP = IPv4Address("198.18.0.11").packed
SGW_IP = IPv4Address("198.18.0.21").packed
PDN = IPv4Address("198.18.200.10").packed
SVC = IPv4Address("198.18.50.1").packed
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
TICK = 0.05


class ScanPipeline(Pipeline):
    """The tick and purge as they were: full scans of the tables (the baseline)."""

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        self._clock = now
        give_up = self.config.pinger_give_up
        for bearer in list(self.bearers.values()):
            if bearer.pinger_since is not None:
                if bearer.dl_teid is not None or now - bearer.pinger_since > give_up:
                    bearer.pinger_since = None
                elif now >= bearer.pinger_next:
                    out.extend(self._ping(bearer, now))
            queue = bearer.queue
            while queue and queue[0][0] < now:
                queue.popleft()
        if now >= self._next_purge:
            self._next_purge = now + 1.0
            idle = now - self.config.idle_timeout
            for bearer in list(self.bearers.values()):
                if bearer.last_seen < idle:
                    self._retire(bearer, "idle", now)
            stale = now - self.config.flow_timeout
            for key, flow in list(self.flows.items()):
                if flow.last_seen < stale:
                    del self.flows[key]
            for pair, flow in list(self.pairs.items()):
                if flow.last_seen < stale:
                    del self.pairs[pair]
        return out


def g_pdu(teid: int, src: bytes, dst: bytes, sport: int, dport: int, *, up: bool = True) -> bytes:
    inner = ipv4.encode(src, dst, 17, udp.encode(src, dst, sport, dport, b""))
    if up:
        return ethernet_frame(MAC_B, MAC_A, encapsulate_gpdu(ENB_IP, SGW_IP, teid, inner))
    return ethernet_frame(MAC_A, MAC_B, encapsulate_gpdu(SGW_IP, ENB_IP, teid, inner))


def ue_of(i: int) -> bytes:
    return bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])


def filled(cls: type[Pipeline], n: int, per: int) -> Pipeline:
    config = TofConfig(
        backend="none",
        idle_timeout=300,
        flow_timeout=60,
        max_tunnels=n + 10,
        max_flows=n * per + 10,
    )
    p = cls(config)
    p.set_services({"bench": Service("bench", str(IPv4Address(SVC)), "198.19.0.10")})
    for i in range(n):
        p.from_s1(g_pdu(0x100000 + i, ue_of(i), PDN, 1000, 53), ENB, 0.0)
        p.from_s1(g_pdu(0x800000 + i, PDN, ue_of(i), 53, 1000, up=False), SGW, 0.0)
        if i % 2 == 0:
            for port in range(per):
                p.from_s1(g_pdu(0x100000 + i, ue_of(i), SVC, 20000 + port, 9), ENB, 0.0)
    p.tick(0.0)
    return p


def tick_cost(p: Pipeline, start: float, seconds: float = 5.0) -> float:
    """Mean seconds per tick over ``seconds`` of the pipeline's clock at the 50 ms cadence."""
    ticks = int(seconds / TICK)
    t0 = time.perf_counter()
    for k in range(ticks):
        p.tick(start + k * TICK)
    return (time.perf_counter() - t0) / ticks


def measure(n: int, per: int) -> dict[str, float]:
    out: dict[str, float] = {}
    p = filled(Pipeline, n, per)
    out["flows"] = len(p.flows)
    out["tick_us"] = tick_cost(p, 10.0) * 1e6
    items = len(p.bearers) + len(p.flows) + len(p.pairs)
    t0 = time.perf_counter()
    p.tick(1000.0)  # past every deadline: everything retires / expires
    out["expiry_us_per_item"] = (time.perf_counter() - t0) / max(items, 1) * 1e6
    assert not p.bearers, "the purge retired every bearer"
    assert not p.flows, "the purge expired every flow"
    del p
    scan = filled(ScanPipeline, n, per)
    out["scan_tick_us"] = tick_cost(scan, 10.0) * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100000")
    parser.add_argument("--flows-per", type=int, default=10, help="flows per offloaded bearer")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for n in sizes:
        results[n] = measure(n, args.flows_per)
        print(f"measured N={n}", file=sys.stderr, flush=True)
    base = results[sizes[0]]
    print(f"TOF pipeline timers per tick ({time.ctime()}); ratios to N={sizes[0]} in this run\n")
    rows = [
        ("flows", "flows", "{:,.0f}"),
        ("tick_us", "tick (us)", "{:,.1f}"),
        ("scan_tick_us", "scan tick, before (us)", "{:,.1f}"),
        ("expiry_us_per_item", "expiry (us/item)", "{:,.2f}"),
    ]
    print(f"{'metric':26}" + "".join(f"{'N=' + format(n, ','):>16}" for n in sizes))
    for key, label, fmt in rows:
        print(f"{label:26}" + "".join(f"{fmt.format(results[n][key]):>16}" for n in sizes))
    for key in ("tick_us", "scan_tick_us", "expiry_us_per_item"):
        ratios = "".join(f"{results[n][key] / base[key]:>15.2f}x" for n in sizes)
        print(f"{key + ' / N=' + str(sizes[0]):26}{ratios}")


if __name__ == "__main__":
    main()
