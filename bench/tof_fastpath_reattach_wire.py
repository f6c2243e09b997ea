"""Re-attach churn through the wire: paced re-attaches/s the fast path sustains, and offload after.

    .venv/bin/python bench/tof_fastpath_reattach_wire.py [--bearers 10000] [--rates 1000,2000,4000]
                                                        [--seconds 10]

Needs root. The minimal topology the functional tests use (eNB ns -- host ns with the fast
path -- SGW ns, + app ns). The agent first holds ``--bearers`` bearers (learned through the
reference pipeline, synced to the kernel maps, as bench/tof_fastpath_scale.py does). Then, for
each rate R, a paced sender in the eNB namespace puts R uplink G-PDUs per second on the wire
for ``--seconds``: each re-uses a learned uplink TEID with a *new* UE address (a real core
re-attaching UEs and handing out TEIDs again). The program sees a key whose inner UE changed
(``ue_changed``) and punts it; the agent retires the old bearer and learns the new one. Per
rate:

* "offered/s": what the sender put on the wire (its own pacing, measured);
* "re-attached/s": bearers retired for a re-used TEID (``bearers_retired_uplink_teid_reused``)
  per second of the run, counted until the agent is done (or 5 s after the sender stopped);
* "achieved": re-attached / offered (1.00 = every re-attach handled); "lag ms": how long after
  the sender's last frame the agent finished;
* "over budget": frames over the learning punt budget (switched unchanged, not learned:
  ``punt_limited_learn``); "punt drops": frames the punt socket's queue dropped;
* "maps ok": afterwards the kernel maps equal the pipeline's projection (tunnels and their UEs);
* "offload ok": 64 re-attached UEs (the last round's) then send a new flow's first packet and
  a second one to the offloaded service on their re-used TEID: both reach the app, and the
  second is offloaded by the kernel (``offloaded_uplink`` + 64), "64/64" when all did.

The machine is shared (2 cores): the sender is Python on the same cores as the agent; say the
load (``uptime``) with the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.functional.tof_fastpath.topo import Topo, topology  # noqa: E402

from fluidedge.tof.fastpath import layout as L  # noqa: E402
from fluidedge.tof.fastpath.backend import FastPathBackend  # noqa: E402
from fluidedge.tof.models import Service  # noqa: E402
from tof_fastpath_scale import APP, PDN, SVC, bench_config, g_pdu, learn, ue_of  # noqa: E402

REUSED = "bearers_retired_uplink_teid_reused"
SAMPLE = 64


def _fast(backend: FastPathBackend) -> dict[str, int]:
    fast = backend.stats()["fastpath"]
    if not isinstance(fast, dict):
        raise SystemExit("no fast-path counters")
    return fast


def _reused(backend: FastPathBackend) -> int:
    with backend._lock:
        return int(backend.pipeline.counters[REUSED])


def _round_ue(round_no: int, i: int) -> bytes:
    return ue_of((round_no + 1) * 0x100000 + i)


def run_rate(
    backend: FastPathBackend, t: Topo, n: int, rate: int, *, seconds: float, first_round: int
) -> tuple[dict[str, float], int]:
    send = t.send
    total = int(rate * seconds)
    frames = []
    for k in range(total):
        i = k % n
        round_no = first_round + k // n
        frames.append(g_pdu(0x100000 + i, _round_ue(round_no, i), PDN, 1000, 53, up=True))
    rounds = first_round + (total - 1) // n + 1
    fast0, reused0 = _fast(backend), _reused(backend)
    t0 = time.monotonic()
    sent = 0
    while sent < total:  # paced in 2 ms steps: what is due by now goes out
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        while sent < due:
            send("enb", frames[sent])
            sent += 1
        time.sleep(0.002)
    t_end = time.monotonic()
    offered = total / (t_end - t0)
    done_at = t_end
    deadline = t_end + 5.0
    while time.monotonic() < deadline:
        if _reused(backend) - reused0 >= total:
            done_at = time.monotonic()
            break
        time.sleep(0.01)
    else:
        done_at = time.monotonic()
    reattached = _reused(backend) - reused0
    fast1 = _fast(backend)
    with backend._lock:
        backend._sync()
        want = L.project(backend.pipeline, backend._slots)
        maps_ok = want.tunnels == backend._installed.tunnels and (
            want.tunnel_ues == backend._installed.tunnel_ues
        )
    out = {
        "offered": offered,
        "reattached_per_s": reattached / (done_at - t0),
        "achieved": reattached / total,
        "lag_ms": (done_at - t_end) * 1e3,
        "over_budget": fast1["punt_limited_learn"] - fast0["punt_limited_learn"],
        "punt_drops": fast1["punt_socket_dropped"] - fast0["punt_socket_dropped"],
        "maps_ok": float(maps_ok),
    }
    return out, rounds


def offload_check(backend: FastPathBackend, t: Topo, n: int, last_round: int) -> int:
    """SAMPLE re-attached UEs of the last round open a flow to the service: first packet (the
    agent's) and a second (the kernel's); how many second packets the kernel offloaded."""
    svc = IPv4Address(SVC).packed
    picks = [k * (n // SAMPLE) for k in range(SAMPLE)]
    t.collect(0.2)
    for i in picks:
        frame = g_pdu(0x100000 + i, _round_ue(last_round, i), svc, 30000, 9, up=True)
        t.send("enb", frame)
    got1 = t.collect(0.5)["app"]
    before = _fast(backend)["offloaded_uplink"]
    for i in picks:
        frame = g_pdu(0x100000 + i, _round_ue(last_round, i), svc, 30000, 9, up=True)
        t.send("enb", frame)
    got2 = t.collect(0.5)["app"]
    kernel = _fast(backend)["offloaded_uplink"] - before
    udp1 = sum(1 for f in got1 if f[12:14] == b"\x08\x00" and f[23] == 17)
    udp2 = sum(1 for f in got2 if f[12:14] == b"\x08\x00" and f[23] == 17)
    return min(udp1, udp2, kernel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bearers", type=int, default=10_000)
    parser.add_argument("--rates", default="1000,2000,4000")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    n = args.bearers
    rates = [int(r) for r in args.rates.split(",")]
    print(f"TOF fast path: re-attach churn through the wire ({time.ctime()}), {n:,} bearers")
    with topology("w") as t:
        config = bench_config(t.host, max_tunnels=2 * n + 1000, max_flows=10_000)
        backend = FastPathBackend(config)
        backend.start()
        try:
            backend.apply({"bench": Service("bench", SVC, APP)})
            learn(backend, 0, n, time.time())
            header = (
                f"{'offered/s':>10} {'re-attached/s':>14} {'achieved':>9} {'lag ms':>8} "
                f"{'over budget':>12} {'punt drops':>11} {'maps ok':>8}"
            )
            print(header)
            round_no = 0
            for rate in rates:
                out, round_no = run_rate(
                    backend, t, n, rate, seconds=args.seconds, first_round=round_no
                )
                print(
                    f"{out['offered']:>10,.0f} {out['reattached_per_s']:>14,.0f} "
                    f"{out['achieved']:>9.3f} {out['lag_ms']:>8.0f} {out['over_budget']:>12,.0f} "
                    f"{out['punt_drops']:>11,.0f} {'yes' if out['maps_ok'] else 'NO':>8}"
                )
            ok = offload_check(backend, t, n, round_no - 1)
            print(f"offload ok after the churn: {ok}/{SAMPLE} re-attached UEs offloaded")
        finally:
            backend.stop()


if __name__ == "__main__":
    main()
