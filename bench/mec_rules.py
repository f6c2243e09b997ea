"""Traffic rule activation -> effect on the data plane (issue 16's figure).

One lab in TOF mode and one daemon with ``[tof]`` (``--backend``, userspace by default) and
``[mec]``. A prober in ``ue1``'s namespace sends a UDP datagram to the PDN's echo port every
``--interval`` ms for the whole run and records which were echoed (send times on
CLOCK_MONOTONIC, which every network namespace shares with the bench). An app's rules name
the PDN's address, so an active rule silences the echo:

- ``mp1 DROP (classified)``: a DROP rule on UDP to the echo port, activated and deactivated
  with ``PUT .../traffic_rules/{id}`` (a classified TOF service);
- ``mp1 FORWARD (plain)``: a FORWARD_DECAPSULATED rule on the whole address, to the lab's
  edge app, which has no echo server (a plain TOF service);
- ``tof POST/DELETE /service`` (the baseline): the same plain service made and removed with
  the TOF's own Service API, the path the platform drives.

For each change, in an order rotated per round: the API round trip (request sent -> answer)
and the effect (request sent -> send time of the first probe that shows the new state: the
first unanswered one after an activation, the first answered one after a deactivation), p50
and p99 in ms, with the ratio to the baseline's. ``after 200`` counts the probes sent after
an activation's answer that were still echoed (the platform applies a rule before it answers:
it must be 0).

    .venv/bin/python bench/mec_rules.py [--rounds 20] [--gap 0.15] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fluidedge.lab.config import default_text, loads  # noqa: E402
from fluidedge.lab.lab import Lab  # noqa: E402
from fluidedge.tof.launch import TofDaemon, lab_tof_section, s1_pairs, wait_s1_ready  # noqa: E402

AS = "/mec_app_support/v1"

# In ue1's namespace: a datagram every argv[3] ms to argv[1]:argv[2] for argv[4] s; writes
# {"sent": [[seq, before, after], ...], "got": [[seq, at], ...]} to argv[5] (time.monotonic()
# just before and just after the sendto, the datagram left between the two; and when its echo
# came back).
PROBER = """
import json, socket, sys, threading, time
dst, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[5]
interval, seconds = float(sys.argv[3]) / 1000, float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
sent, got, stop = [], [], time.monotonic() + seconds
def receive():
    while time.monotonic() < stop + 1:
        try:
            got.append((int(s.recv(64)), time.monotonic()))
        except OSError:
            pass
t = threading.Thread(target=receive, daemon=True)
t.start()
seq = 0
nxt = time.monotonic()
while (now := time.monotonic()) < stop:
    s.sendto(str(seq).encode(), (dst, port))
    sent.append((seq, now, time.monotonic()))
    seq += 1
    nxt += interval
    time.sleep(max(0.0, nxt - time.monotonic()))
t.join()
with open(out + ".tmp", "w") as f:
    json.dump({"sent": sent, "got": got}, f)
import os; os.replace(out + ".tmp", out)
"""


PRECISE = 0.0005  # s


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


Change = tuple[str, bool, float, float]  # kind, activation?, request sent, answer received


def effects(
    changes: list[Change], probes: dict[str, Any]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per kind and direction, ms from the request to the first probe showing the new state;
    and the probes sent after an activation's answer that were still echoed.

    Only probes whose send time is known to ``PRECISE`` s count (the prober, one Python
    process on a loaded host, can be descheduled between its clock read and its sendto); a
    probe's time is the clock read just after its sendto (it left no later). A leak is a probe
    that left after the activation's answer and whose echo was back before the next change
    was even asked for: it crossed the TOF while the active rule had to stop it. (A probe
    delayed on the way, e.g. in the lab's eNB process, can reach the TOF after the next
    change: that is no leak.)"""
    echoed = {int(s): float(at) for s, at in probes["got"]}
    got = set(echoed)
    sent = [(int(s), float(a)) for s, b, a in probes["sent"] if a - b <= PRECISE]
    out: dict[str, list[float]] = {}
    leaks: dict[str, list[float]] = {}  # kind -> ms after the answer of each echoed probe
    ordered = sorted(changes, key=lambda c: c[2])
    for i, (kind, activate, t0, t1) in enumerate(ordered):
        end = ordered[i + 1][2] if i + 1 < len(ordered) else float("inf")
        window = [(s, t) for s, t in sent if t0 <= t < end]
        first = next((t for s, t in window if (s in got) != activate), None)
        if first is not None:
            key = f"{kind} {'on' if activate else 'off'}"
            out.setdefault(key, []).append((first - t0) * 1000)
        if activate:
            late = [
                (t - t1) * 1000 for s, t in window if t - PRECISE > t1 and echoed.get(s, end) < end
            ]
            if late:
                leaks.setdefault(kind, []).extend(late)
    return out, leaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.15, help="s between changes")
    parser.add_argument("--interval", type=float, default=0.5, help="ms between probes")
    parser.add_argument("--backend", default="userspace", choices=["userspace", "fastpath"])
    args = parser.parse_args()

    lab = Lab.up(loads(default_text()), prefix=f"mr{os.getpid() % 10000}", mode="tof")
    work = Path(tempfile.mkdtemp(prefix="mec-rules-"))
    result = work / "probes.json"
    changes: list[Change] = []
    api: dict[str, list[float]] = {}
    try:
        (_name, app_address), *_ = lab.apps.items()
        pdn, echo = str(lab.pdn_address), lab.pdn_udp_echo_port
        rules = {
            "mp1 DROP (classified)": {
                "trafficRuleId": "drop", "filterType": "FLOW", "priority": 1,
                "trafficFilter": [{"dstAddress": [pdn], "protocol": ["UDP"],
                                   "dstPort": [str(echo)]}],
                "action": "DROP", "state": "INACTIVE",
            },
            "mp1 FORWARD (plain)": {
                "trafficRuleId": "fwd", "filterType": "FLOW", "priority": 1,
                "trafficFilter": [{"dstAddress": [pdn]}],
                "action": "FORWARD_DECAPSULATED", "state": "INACTIVE",
            },
        }  # fmt: skip
        with TofDaemon(lab_tof_section(lab, backend=args.backend), parts={"mec": {}}) as daemon:
            wait_s1_ready(daemon.client, s1_pairs(lab), timeout=30)
            admin = {"Authorization": f"Bearer {daemon.token}"}
            body = {"name": "rules", "dataAddress": str(app_address),
                    "trafficRules": list(rules.values())}  # fmt: skip
            http = httpx.Client(base_url=daemon.url, timeout=30)
            made = http.post("/v1/apps", headers=admin, json=body)
            made.raise_for_status()
            app, token = made.json()["appInstanceId"], made.json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            http.post(f"{AS}/applications/{app}/confirm_ready", headers=auth,
                      json={"indication": "READY"}).raise_for_status()  # fmt: skip
            plain = {"name": "bench-plain", "serviceIP": pdn, "applicationIP": str(app_address)}

            def mp1(kind: str) -> Callable[[bool], httpx.Response]:
                rule = rules[kind]
                url = f"{AS}/applications/{app}/traffic_rules/{rule['trafficRuleId']}"
                return lambda on: http.put(
                    url, headers=auth, json={**rule, "state": "ACTIVE" if on else "INACTIVE"}
                )

            def tof(on: bool) -> httpx.Response:
                if on:
                    return http.post("/service", headers=admin, json=plain)
                return http.delete("/service/bench-plain", headers=admin)

            kinds: dict[str, Callable[[bool], httpx.Response]] = {
                **{k: mp1(k) for k in rules},
                "tof POST/DELETE /service": tof,
            }
            for toggle in kinds.values():  # warm-up: every path once
                toggle(True).raise_for_status()
                toggle(False).raise_for_status()
            expected = args.rounds * len(kinds) * 2 * (args.gap + 0.05) + 3
            prober = lab.spawn("ue1", [sys.executable, "-c", PROBER, pdn, str(echo),
                                       str(args.interval), str(expected), str(result)])  # fmt: skip
            time.sleep(1.0)  # the prober's first echoes (ARP, tunnels)
            order = list(kinds)
            for r in range(args.rounds):
                for kind in order[r % len(order) :] + order[: r % len(order)]:
                    for on in (True, False):
                        t0 = time.monotonic()
                        kinds[kind](on).raise_for_status()
                        t1 = time.monotonic()
                        changes.append((kind, on, t0, t1))
                        api.setdefault(f"{kind} {'on' if on else 'off'}", []).append(
                            (t1 - t0) * 1000
                        )
                        time.sleep(args.gap)
            prober.wait(timeout=expected + 30)
            http.close()
        probes = json.loads(result.read_text())
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)

    effect, leaks = effects(changes, probes)
    load = os.getloadavg()
    print(f"# mec_rules: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}, backend {args.backend}, {args.rounds} rounds, a probe every "
          f"{args.interval} ms")  # fmt: skip
    base = "tof POST/DELETE /service"
    print(f"{'ms':34} {'API p50':>8} {'p99':>8} {'effect p50':>10} {'p99':>8}"
          f"   effect / {base} p50, p99")  # fmt: skip
    for key, answered in api.items():
        on = key.endswith(" on")
        ref = effect.get(f"{base} {'on' if on else 'off'}", [])
        mine = effect.get(key, [])
        a50, a99 = pct(answered, 50), pct(answered, 99)
        if not mine or not ref:
            print(f"{key:34} {a50:8.2f} {a99:8.2f}   no effect seen (n={len(mine)})")
            continue
        e50, e99 = pct(mine, 50), pct(mine, 99)
        r50, r99 = pct(ref, 50), pct(ref, 99)
        print(f"{key:34} {a50:8.2f} {a99:8.2f} {e50:10.2f} {e99:8.2f}   "
              f"{e50 / r50:6.2f}x {e99 / r99:6.2f}x  n={len(mine)}")  # fmt: skip
    total = sum(len(v) for v in leaks.values())
    timed = sum(1 for _s, b, a in probes["sent"] if a - b <= PRECISE)
    print(f"# probes echoed after an activation's answer (must be 0): {total}; probes sent "
          f"{len(probes['sent'])} ({timed} timed within {PRECISE * 1000} ms), echoed "
          f"{len(probes['got'])}")  # fmt: skip
    for kind, late in leaks.items():
        print(f"#   {kind}: sent {', '.join(f'{ms:.1f}' for ms in late)} ms after the answer")


if __name__ == "__main__":
    main()
