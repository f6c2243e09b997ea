"""Two versions of the daemon up at once, the same API calls alternated one by one between them.

On a shared host whose load moves by 2-5x between consecutive runs, two benches run one after
the other compare the load, not the code. Here a ``before`` daemon (``fluidedge serve`` run
from another source tree, e.g. ``git archive <commit> src | tar -x -C /tmp/base``) and an
``after`` daemon (this tree) serve the same requests in turn, so that whatever the host does
hits both alike:

- warm creation API -> running of the built-in ``idle`` template (every pool full before each
  request), over TCP and over the daemon's Unix socket (lean ``http.client`` client, kept-alive
  connection), with the server's own ``timing.total``;
- pause and resume of one instance through the API (TCP and Unix socket), with the in-daemon
  freezer write (``op_ms``).

Both daemons use ``store_synchronous = "full"`` (the default: a 201 survives power loss).

    .venv/bin/python bench/instances_ab.py --before /tmp/base/src [--creates 60] [--pauses 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from instances_common import BenchDaemon, LeanClient, machine, pct

HERE = str(Path(__file__).resolve().parent.parent / "src")


def start(src: str) -> BenchDaemon:
    """A bench daemon whose ``fluidedge`` comes from the source tree ``src``."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = src
    try:
        return BenchDaemon({"pool_scale": 1.0, "prepare_workers": 2, "cpu_overcommit": 50.0})
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def row(label: str, values: dict[str, list[float]]) -> str:
    before, after = values["before"], values["after"]
    base = pct(before, 50)
    ratio = f"{pct(after, 50) / base:5.2f}x" if base else "  n/a (no such phase before)"
    return (
        f"  {label:28s} before p10 {pct(before, 10):7.3f} p50 {base:7.3f}   "
        f"after p10 {pct(after, 10):7.3f} p50 {pct(after, 50):7.3f}   after/before p50 {ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", required=True, help="the source tree (src/) of the baseline")
    parser.add_argument("--creates", type=int, default=60)
    parser.add_argument("--pauses", type=int, default=200)
    args = parser.parse_args()
    print(f"instances A/B bench: {machine()}, before = {args.before}, after = {HERE}")
    daemons = {"before": start(args.before), "after": start(HERE)}
    series: dict[str, dict[str, list[float]]] = {}

    def add(label: str, version: str, value: float) -> None:
        series.setdefault(label, {"before": [], "after": []})[version].append(value)

    try:
        clients = {
            (version, kind): LeanClient(d.port, unix=d.socket if kind == "unix" else None)
            for version, d in daemons.items()
            for kind in ("tcp", "unix")
        }
        for index in range(args.creates):
            for kind in ("tcp", "unix"):
                for version, daemon in daemons.items():
                    daemon.wait_pools()
                    client = clients[version, kind]
                    client.ping()
                    name = f"ab{kind[0]}{index}"
                    begin = time.perf_counter()
                    status, body = client.post("/v1/instances", {"name": name, "template": "idle"})
                    wall = (time.perf_counter() - begin) * 1000
                    if status != 201 or body["path"] != "warm":
                        raise RuntimeError(f"{version}: create failed: {status} {body}")
                    add(f"create warm idle ({kind})", version, wall)
                    add(f"  server total ({kind})", version, body["timing"]["total"])
                    add(f"  server config ({kind})", version, body["timing"]["config"])
                    add(f"  server ready ({kind})", version, body["timing"]["ready"])
                    add(f"  server durable ({kind})", version, body["timing"].get("durable", 0))
                    daemon.http.delete(f"/v1/instances/{name}").raise_for_status()
        for daemon in daemons.values():
            daemon.wait_pool("idle")
            daemon.http.post("/v1/instances", json={"name": "abpr", "template": "idle"})
        for client in clients.values():
            client.ping()
        for _ in range(args.pauses):
            for kind in ("tcp", "unix"):
                for op in ("pause", "resume"):
                    for version in daemons:
                        begin = time.perf_counter()
                        status, body = clients[version, kind].post(f"/v1/instances/abpr/{op}")
                        wall = (time.perf_counter() - begin) * 1000
                        if status != 200:
                            raise RuntimeError(f"{version}: {op} failed: {status} {body}")
                        add(f"{op} ({kind})", version, wall)
                        add(f"  {op} freezer op", version, float(body["op_ms"]))
        for client in clients.values():
            client.close()
    finally:
        for daemon in daemons.values():
            daemon.close()
    print("milliseconds, requests alternated between the two daemons")
    for label, values in series.items():
        print(row(label, values))


if __name__ == "__main__":
    main()
