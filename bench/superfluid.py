"""On-demand (superfluid) services: first packet, resume, new-UE arrival rate (issue 17).

    .venv/bin/python bench/superfluid.py [--iterations 20] [--ues 40] [--rates 2,5,10,20,40]
        [--resume-pairs 100] [--settle 0.1] [--backend userspace|fastpath]
        [--switch-interval S] [--json FILE]

One invocation, one lab in "tof" mode, one daemon running the userspace TOF and the instance
manager (an ``edge`` template, busybox httpd, pool of 8), every figure measured from a UE with
curl's own timers (``time_connect``: the TCP SYN leaving the UE to the SYN-ACK arriving, i.e.
the first packet to the first reply, UE to app and back through the TOF and the lab's eNB/SGW
emulators; ``time_starttransfer``: to the first byte of the HTTP answer):

* ``running``: the same request to an instance that is already running (the baseline);
* ``first``: the first request of a fresh on-demand service, answered by an instance created
  from the warm pool on that request (pool refilled between iterations); interleaved with
  ``running`` so both see the same machine load;
* ``resume``: a request to a service whose instance was paused after T1 (frozen), resumed by
  that request, paired with a request to the running instance right before or after it
  (``--resume-pairs``, alternating order); "added" is the resume p50/p99 minus the running
  p50/p99 of the same pairs. Also printed: the old figure (minus the first phase's running
  samples, taken minutes earlier: with 20-30 samples each p99 is the single slowest of its
  set) and the distribution of per-pair differences;
* arrival sweep: ``--ues`` UEs start one request each at a given arrival rate against a
  ``per-ue`` service; per rate: instances created per second and packets the queue dropped
  (the TCP SYNs are retransmitted, so every UE is still answered).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from typing import Any

from _tof_common import percentile
from fluidedge.core.client import Client
from fluidedge.lab.config import default_text, loads
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import (
    TofDaemon,
    lab_instances_section,
    lab_tof_section,
    s1_pairs,
    wait_s1_ready,
)

POOL = "198.19.0.64/26"
TEMPLATE = {
    "name": "edge",
    "command": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/.fe/www"],
    "files": {"www/index.html": "edge instance {name}\n"},
    "capabilities": ["CAP_NET_BIND_SERVICE"],
    "interfaces": [{"name": "eth0", "network": "apps"}],
    "readiness": {"kind": "tcp", "port": 80},
    "pool": {"size": 8},
}


def _lab_text(ues: int) -> str:
    text = default_text()
    head = text[: text.index("[[ue]]")]
    tail = text[text.index("[[ue]]") :]
    while tail.startswith("[[ue]]"):
        end = tail.find("\n\n")
        tail = tail[end + 2 :] if end >= 0 else ""
    blocks = [
        f'[[ue]]\nname = "ue{i}"\naddress = "198.18.100.{i}"\nenb = "enb{1 + i % 2}"\n'
        f'sgw = "sgw{1 + (i // 2) % 2}"\n'
        for i in range(1, ues + 1)
    ]
    return head + "\n".join(blocks) + "\n" + tail


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def _curl(lab: Lab, ue: str, address: str, timeout: float = 30.0) -> tuple[float, float, str]:
    """(time_connect ms, time_starttransfer ms, body) of one HTTP GET from ``ue``."""
    argv = [
        "curl", "-s", "-m", str(timeout), "-w", "\\n%{time_connect} %{time_starttransfer}",
        f"http://{address}/",
    ]  # fmt: skip
    out = lab.run(ue, argv, timeout=timeout + 10).stdout
    body, _, timers = out.rpartition("\n")
    connect, first_byte = (float(v) * 1000 for v in timers.split())
    return connect, first_byte, body


def _service(name: str, ip: str, lab: Lab, policy: str, **spec: Any) -> dict[str, Any]:
    return {
        "name": name,
        "serviceIP": ip,
        "onDemand": {
            "template": "edge",
            "policy": policy,
            "addressPool": POOL,
            "gateway": str(lab.apps_gateway),
            **spec,
        },
    }


def _pool_full(client: Client) -> bool:
    return all(p["ready"] >= p["target"] and not p["preparing"] for p in client.get("/v1/pools"))


def _no_instances(client: Client, service: str | None = None) -> bool:
    views = client.get("/v1/instances")
    if service is None:
        return not views
    return not [v for v in views if v["labels"].get("fluidedge.tof.superfluid.service") == service]


def _server_ms(client: Client, metric: str, service: str) -> tuple[float, int]:
    """(sum in ms, count) of the controller's histogram ``metric`` for ``service``: the time
    the first queued packet waited in the TOF before its release (the daemon's own view)."""
    total, count = 0.0, 0
    for line in str(client.get("/metrics")).splitlines():
        if f'service="{service}"' not in line:
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith(f"{metric}_sum"):
            total += float(value) * 1000
        elif name.startswith(f"{metric}_count"):
            count += int(float(value))
    return total, count


def _drops(client: Client) -> int:
    return sum(client.get("/stats")["onDemand"]["drops"].values())


def first_vs_running(lab: Lab, client: Client, n: int) -> dict[str, list[float]]:
    client.post("/service", _service("running", "198.18.50.1", lab, "shared", idlePause=3600))
    _curl(lab, "ue1", "198.18.50.1")  # creates the running instance
    keys = ("run_c", "run_b", "first_c", "first_b", "mgr_total", "mgr_ready", "held")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(n):
        _wait(lambda: _pool_full(client), 60, "the pool to refill")
        c, b, _ = _curl(lab, "ue1", "198.18.50.1")
        out["run_c"].append(c)
        out["run_b"].append(b)
        ip = f"198.18.61.{i + 1}"
        client.post("/service", _service(f"fresh{i}", ip, lab, "shared", idlePause=3600))
        c, b, body = _curl(lab, "ue1", ip)
        if not body.startswith("edge instance fresh"):
            raise SystemExit(f"fresh{i}: unexpected answer {body!r}")
        out["first_c"].append(c)
        out["first_b"].append(b)
        [inst] = client.get(f"/service/fresh{i}/instances")["instances"]
        timing = client.get(f"/v1/instances/{inst['instance']}")["timing"]
        out["mgr_total"].append(timing["total"])
        out["mgr_ready"].append(timing["ready"])
        held, _ = _server_ms(client, "fluidedge_superfluid_first_packet_seconds", f"fresh{i}")
        out["held"].append(held)
        client.delete(f"/service/fresh{i}")
        _wait(lambda: len(client.get("/v1/instances")) == 1, 30, "the fresh instance deleted")
    return out


def resume(lab: Lab, client: Client, n: int, settle: float) -> dict[str, list[float]]:
    """``n`` pairs: a request to the paused ``resume`` service and one to the running one,
    back to back in alternating order (the same seconds of machine load), ``settle`` s after
    the pause is done (as in service, where the next request comes long after T1, not during
    the pause's own bookkeeping)."""
    client.post(
        "/service", _service("resume", "198.18.50.2", lab, "shared", idlePause=0.2, idleDelete=3600)
    )
    _curl(lab, "ue1", "198.18.50.2")
    keys = ("res_c", "res_b", "held", "pair_run_c", "pair_res_c", "pair_run_t", "pair_res_t")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(n):
        _wait(
            lambda: client.get("/service/resume/instances")["instances"][0]["state"] == "paused",
            30,
            "the pause",
        )
        before = _server_ms(client, "fluidedge_superfluid_resume_seconds", "resume")
        time.sleep(settle)  # also: no API request just before the measured ones
        first_running = bool(i % 2)
        if first_running:
            out["pair_run_t"].append(time.monotonic())
            run_c = _curl(lab, "ue1", "198.18.50.1")[0]
        out["pair_res_t"].append(time.monotonic())  # (CLOCK_MONOTONIC: the daemon's clock too)
        c, b, _ = _curl(lab, "ue1", "198.18.50.2")
        if not first_running:
            out["pair_run_t"].append(time.monotonic())
            run_c = _curl(lab, "ue1", "198.18.50.1")[0]
        out["res_c"].append(c)
        out["res_b"].append(b)
        out["pair_res_c"].append(c)
        out["pair_run_c"].append(run_c)
        after = _server_ms(client, "fluidedge_superfluid_resume_seconds", "resume")
        if after[1] == before[1] + 1:  # one resume, the first packet held this long
            out["held"].append(after[0] - before[0])
    _wait(
        lambda: client.get("/service/resume/instances")["instances"][0]["state"] == "paused",
        30,
        "the pause",
    )
    name = client.get("/service/resume/instances")["instances"][0]["instance"]
    out["paused_rss_kib"] = [_rss_kib(int(client.get(f"/v1/instances/{name}")["pid"]))]
    client.delete("/service/resume")
    return out


def _rss_kib(pid: int) -> float:
    """What a paused instance keeps resident: its process's RSS (the freezer frees none)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return float("nan")


def arrival(lab: Lab, client: Client, ues: int, rate: float) -> tuple[float, int, int]:
    """(instances created per second, queue drops, UEs answered) at ``rate`` arrivals/s."""
    _wait(lambda: _pool_full(client), 120, "the pool to refill")
    name = f"arrive{int(rate)}"
    client.post(
        "/service", _service(name, "198.18.50.3", lab, "per-ue", maxInstances=ues, idlePause=3600)
    )
    before = _drops(client)
    answered = [0]
    lock = threading.Lock()

    def one(ue: str) -> None:
        _, _, body = _curl(lab, ue, "198.18.50.3", timeout=60)
        if body.startswith("edge instance"):
            with lock:
                answered[0] += 1

    threads = []
    start = time.monotonic()
    for k in range(ues):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the arrival process itself, not a wait for a condition
        thread = threading.Thread(target=one, args=(f"ue{k + 1}",))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    created = sorted(i["createdAt"] for i in client.get(f"/service/{name}/instances")["instances"])
    span = created[-1] - created[0] if len(created) > 1 else float("nan")
    per_s = (len(created) - 1) / span if span > 0 else float("nan")
    drops = _drops(client) - before
    client.delete(f"/service/{name}")
    _wait(lambda: _no_instances(client, name), 120, "the per-ue instances deleted")
    return per_s, drops, answered[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--ues", type=int, default=40)
    parser.add_argument("--rates", default="2,5,10,20,40")
    parser.add_argument(
        "--resume-pairs", type=int, default=100,
        help="paired resume/running requests (100 for a p99 that is not the single slowest)",
    )  # fmt: skip
    parser.add_argument("--settle", type=float, default=0.1, help="s after a pause is done")
    parser.add_argument(
        "--backend", choices=("userspace", "fastpath"), default="userspace",
        help="the TOF's data plane (fastpath: on-demand packets go through its agent)",
    )  # fmt: skip
    parser.add_argument(
        "--switch-interval", type=float, default=None,
        help="[tof] switch_interval, s (the daemon's GIL switch interval; default the config's)",
    )  # fmt: skip
    parser.add_argument("--json", default=None, help="write every sample to this file")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    lab = Lab.up(loads(_lab_text(args.ues)), prefix=f"sfb{os.getpid() % 10000}", mode="tof")
    try:
        parts = {"instances": lab_instances_section(lab, builtin_templates=False)}
        tof: dict[str, object] = {"backend": args.backend}
        if args.switch_interval is not None:
            tof["switch_interval"] = args.switch_interval
        with TofDaemon(lab_tof_section(lab, **tof), parts=parts) as daemon:
            client = daemon.client
            client.post("/v1/templates", TEMPLATE)
            _wait(lambda: _pool_full(client), 120, "the pool to fill")
            if not wait_s1_ready(client, s1_pairs(lab), timeout=30):
                raise SystemExit("S1 not ready")
            fr = first_vs_running(lab, client, args.iterations)
            rs = resume(lab, client, args.resume_pairs, args.settle)
            sweep = [(r, *arrival(lab, client, args.ues, r)) for r in rates]
            client.delete("/service/running")
            _wait(lambda: _no_instances(client), 60, "instances deleted")
    finally:
        lab.down()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "first": fr, "resume": rs, "arrivals": sweep}, handle)
    p = percentile
    print(
        f"superfluid bench, {args.iterations} iterations, one run (ms, from the UE; backend "
        f"{args.backend}, switch interval {args.switch_interval or 'default'})\n"
    )
    print(f"{'request':34}{'p50':>9}{'p99':>9}{'p50 ratio':>11}")
    base_c, base_b = p(fr["run_c"], 0.5), p(fr["run_b"], 0.5)
    rows = [
        ("running: first packet->reply", fr["run_c"], base_c),
        ("warm pool: first packet->reply", fr["first_c"], base_c),
        ("resume: first packet->reply", rs["res_c"], base_c),
        ("running: request->first byte", fr["run_b"], base_b),
        ("warm pool: request->first byte", fr["first_b"], base_b),
        ("resume: request->first byte", rs["res_b"], base_b),
    ]
    for label, values, base in rows:
        print(
            f"{label:34}{p(values, 0.5):9.2f}{p(values, 0.99):9.2f}{p(values, 0.5) / base:10.2f}x"
        )
    print(
        f"  (server-side, warm pool: the first packet held in the TOF p50 "
        f"{p(fr['held'], 0.5):.2f} ms, of which the instance manager's create "
        f"{p(fr['mgr_total'], 0.5):.2f} ms, of which readiness {p(fr['mgr_ready'], 0.5):.2f} ms)"
    )
    if rs["held"]:
        print(
            f"  (server-side, resume: the first packet held in the TOF p50 "
            f"{p(rs['held'], 0.5):.2f} ms, p99 {p(rs['held'], 0.99):.2f} ms)"
        )
    added50 = p(rs["res_c"], 0.5) - base_c
    added99 = p(rs["res_c"], 0.99) - p(fr["run_c"], 0.99)
    print(
        f"\nresume-on-traffic added latency, the old way (resume p50/p99 minus the first "
        f"phase's running p50/p99, {len(rs['res_c'])} and {len(fr['run_c'])} samples): "
        f"p50 {added50:+.2f} ms, p99 {added99:+.2f} ms"
    )
    run, res = rs["pair_run_c"], rs["pair_res_c"]
    diff = [b - a for a, b in zip(run, res, strict=True)]
    print(
        f"resume-on-traffic added latency, paired ({len(diff)} pairs, resume then running or "
        f"running then resume, back to back): p50 {p(res, 0.5) - p(run, 0.5):+.2f} ms, "
        f"p99 {p(res, 0.99) - p(run, 0.99):+.2f} ms (difference of the pairs' own p50/p99; "
        f"running p50 {p(run, 0.5):.2f} p99 {p(run, 0.99):.2f}, resume p50 {p(res, 0.5):.2f} "
        f"p99 {p(res, 0.99):.2f}); per-pair difference p10 {p(diff, 0.1):+.2f}, "
        f"p50 {p(diff, 0.5):+.2f}, p90 {p(diff, 0.9):+.2f}, p99 {p(diff, 0.99):+.2f} ms"
    )
    print(f"a paused instance keeps resident: {rs['paused_rss_kib'][0]:.0f} KiB (VmRSS)")
    print(f"\nper-ue arrivals, {args.ues} new UEs per rate (pool of 8; default [tof] bounds)")
    print(f"{'arrivals/s':>11}{'created/s':>11}{'queue drops':>13}{'answered':>10}")
    for rate, per_s, drops, answered in sweep:
        print(f"{rate:11.1f}{per_s:11.1f}{drops:13d}{answered:>7d}/{args.ues}")


if __name__ == "__main__":
    main()
