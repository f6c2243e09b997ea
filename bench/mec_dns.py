"""The ME platform's DNS responder: answers/s, and a UE's offloaded DNS query against the core's.

One lab in TOF mode (userspace TOF) and one daemon with ``[mec.dns]``: the responder's socket
in the TOF's namespace on the apps gateway, the TOF service ``mec-dns`` offloading the UEs'
queries for ``OFFLOADED`` (a core resolver address) to it, and one READY app whose DNS rule
names ``cache.example``. The lab's PDN DNS server (``[pdn.dns]``, on ``OFFLOADED``) is the
responder's upstream, asked from the TOF's namespace over the lab's route to it. For the path
without the platform the bench starts a second core resolver (a dnspython UDP server in the
PDN's namespace on ``CORE_RESOLVER``), which the UEs reach through their tunnels.

Measured in the same run, in an order rotated per round:

- **latency from a UE** (one Python client in ``ue1``'s namespace, sequential queries; the
  client's own cost is in every row alike): ``edge`` = ``cache.example`` asked of
  ``OFFLOADED`` (the TOF offloads it, the responder answers); ``core`` = the same name asked
  of ``CORE_RESOLVER`` (through the tunnel to the PDN's resolver, the path without the
  platform); ``forwarded`` = a name of the PDN's zone asked of ``OFFLOADED`` (offloaded, then
  relayed by the responder to its upstream, the PDN's DNS server). Ratio to ``core``.
- **answers/s** of the responder on the host (``--window`` queries in flight from one client
  in the TOF's namespace, ``--seconds`` each): the edge name (answered from the table) and
  the same client against a baseline: a plain dnspython UDP server answering every name (the
  same library, none of the platform), in the same namespace.

    .venv/bin/python bench/mec_dns.py [--queries 300] [--rounds 3] [--seconds 3] [--window 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fluidedge.lab.config import default_text, loads  # noqa: E402
from fluidedge.lab.lab import Lab  # noqa: E402
from fluidedge.tof.launch import TofDaemon, lab_tof_section, s1_pairs, wait_s1_ready  # noqa: E402

OFFLOADED = "198.18.200.53"  # the PDN's DNS server, the UEs' resolver: offloaded
CORE_RESOLVER = "198.18.200.54"  # a real resolver in the PDN, reached through the tunnels
EDGE = "198.18.50.9"
AS = "/mec_app_support/v1"

# A UDP DNS server answering every A query with argv[2] (the PDN's core resolver and the
# answers/s baseline).
SERVER = """
import socket, sys
import dns.message, dns.rrset
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[3])))
while True:
    data, addr = s.recvfrom(4096)
    q = dns.message.from_wire(data)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 5, "IN", "A", sys.argv[2]))
    s.sendto(r.to_wire(), addr)
"""

# Sequential queries from a UE: prints the latencies in ms as JSON (answers checked).
LATENCY = """
import json, socket, sys, time
import dns.message
name, server, count, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
out = []
for _ in range(count):
    q = dns.message.make_query(name, "A")
    wire = q.to_wire()
    t = time.perf_counter()
    s.sendto(wire, (server, 53))
    a = dns.message.from_wire(s.recvfrom(4096)[0])
    out.append((time.perf_counter() - t) * 1000)
    got = [r.to_text() for rr in a.answer for r in rr]
    if got != [want]:
        raise SystemExit(f"{name}@{server}: {got} (want {want})")
print(json.dumps(out))
"""

# A window of queries in flight for argv[3] seconds: prints answers/s.
THROUGHPUT = """
import socket, sys, time
import dns.message
server, window, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
q = dns.message.make_query("cache.example", "A")
wire = bytearray(q.to_wire())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((server, 53))
for i in range(window):
    s.send(wire)
answers, end = 0, time.perf_counter() + seconds
start = time.perf_counter()
while time.perf_counter() < end:
    try:
        s.recv(4096)
    except TimeoutError:
        for i in range(window):
            s.send(wire)
        continue
    answers += 1
    s.send(wire)
print(answers / (time.perf_counter() - start))
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def pdn_interface(lab: Lab) -> str:
    shown = lab.run("pdn", ["ip", "-j", "addr", "show"], check=True).stdout
    for link in json.loads(shown):
        for info in link.get("addr_info", []):
            if info.get("local") == str(lab.pdn_address):
                return str(link["ifname"])
    raise SystemExit("the PDN host's interface was not found")


def latency(lab: Lab, name: str, server: str, count: int, want: str) -> list[float]:
    done = lab.run(
        "ue1", [sys.executable, "-c", LATENCY, name, server, str(count), want], timeout=300
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-500:])
    values: list[float] = json.loads(done.stdout)
    return values


def throughput(lab: Lab, server: str, window: int, seconds: float) -> float:
    done = lab.run(
        "host", [sys.executable, "-c", THROUGHPUT, server, str(window), str(seconds)],
        timeout=seconds + 60,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr[-500:])
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=300, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per answers/s sample")
    parser.add_argument("--window", type=int, default=32, help="queries in flight")
    args = parser.parse_args()

    lab = Lab.up(loads(default_text()), prefix=f"md{os.getpid() % 10000}", mode="tof")
    spawned: list[subprocess.Popen[bytes]] = []
    baseline_ip = "198.19.0.53"  # a second address of the host namespace's apps gateway side
    try:
        iface = pdn_interface(lab)
        lab.run("pdn", ["ip", "addr", "add", f"{CORE_RESOLVER}/32", "dev", iface], check=True)
        spawned.append(lab.spawn("pdn", [sys.executable, "-c", SERVER, CORE_RESOLVER, EDGE, "53"]))
        lab.run("host", ["ip", "addr", "add", f"{baseline_ip}/32", "dev", "lo"], check=True)
        spawned.append(lab.spawn("host", [sys.executable, "-c", SERVER, baseline_ip, EDGE, "53"]))
        dns_table = {
            "netns": lab.host_ns,
            "listen": str(lab.apps_gateway),
            "port": 53,
            "upstream": [f"{lab.pdn_dns_address}:53"],
            "upstream_netns": lab.host_ns,
            "resolver": OFFLOADED,
        }
        with TofDaemon(
            lab_tof_section(lab, backend="userspace"), parts={"mec": {"dns": dns_table}}
        ) as daemon:
            wait_s1_ready(daemon.client, s1_pairs(lab), timeout=30)
            admin = {"Authorization": f"Bearer {daemon.token}"}
            body = {
                "name": "cache", "dataAddress": "198.19.0.121",
                "dnsRules": [{"dnsRuleId": "d1", "domainName": "cache.example",
                              "ipAddressType": "IP_V4", "ipAddress": EDGE, "ttl": 5,
                              "state": "ACTIVE"}],
            }  # fmt: skip
            made = httpx.post(f"{daemon.url}/v1/apps", headers=admin, json=body, timeout=30)
            made.raise_for_status()
            app, token = made.json()["appInstanceId"], made.json()["token"]
            httpx.post(
                f"{daemon.url}{AS}/applications/{app}/confirm_ready",
                headers={"Authorization": f"Bearer {token}"},
                json={"indication": "READY"}, timeout=30,
            ).raise_for_status()  # fmt: skip
            kinds = {
                "edge": ("cache.example", OFFLOADED, EDGE),
                "core": ("cache.example", CORE_RESOLVER, EDGE),
                "forwarded": ("pdn.example", OFFLOADED, str(lab.pdn_address)),
            }
            for name, server, want in kinds.values():  # warm-up: ARP, first packets
                latency(lab, name, server, 20, want)
            times: dict[str, list[float]] = {k: [] for k in kinds}
            rates: dict[str, list[float]] = {"responder": [], "baseline": []}
            order = list(kinds)
            for r in range(args.rounds):
                for kind in order[r % 3 :] + order[: r % 3]:
                    times[kind] += latency(lab, *kinds[kind][:2], args.queries, kinds[kind][2])
                for which in ("responder", "baseline") if r % 2 == 0 else ("baseline", "responder"):
                    server = str(lab.apps_gateway) if which == "responder" else baseline_ip
                    rates[which].append(throughput(lab, server, args.window, args.seconds))
    finally:
        for process in spawned:
            process.terminate()
        lab.down()

    load = os.getloadavg()
    print(f"# mec_dns: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}, {args.rounds} rounds x {args.queries} queries per kind")  # fmt: skip
    core50, core99 = pct(times["core"], 50), pct(times["core"], 99)
    print(f"{'ms from ue1':28} {'p50':>8} {'p99':>8}   / core p50, p99")
    for kind in kinds:
        p50, p99 = pct(times[kind], 50), pct(times[kind], 99)
        print(f"{kind:28} {p50:8.3f} {p99:8.3f}   {p50 / core50:6.2f}x {p99 / core99:6.2f}x"
              f"  n={len(times[kind])}")  # fmt: skip
    responder, baseline = sorted(rates["responder"]), sorted(rates["baseline"])
    median_r, median_b = responder[len(responder) // 2], baseline[len(baseline) // 2]
    print(f"answers/s responder (median of {len(responder)}) {median_r:10.0f}")
    print(f"answers/s dnspython baseline                {median_b:10.0f}   "
          f"ratio {median_r / median_b:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
