"""Mp1 request latency with many concurrent apps, against baseline routes of the same daemon.

One real daemon (``[tof]`` with the null backend, ``[mec]``) on loopback. ``--apps`` app
instances are created, each registers one service; then every app runs as its own client
(its own keep-alive connection and Mp1 token), all concurrently, ``--rounds`` rounds each. A
round sends, in an order rotated per round so the machine's noise hits every kind alike:

- Mp1 discovery: ``GET /mec_service_mgmt/v1/services?ser_name=<another app's service>``;
- Mp1 rules: ``GET /mec_app_support/v1/applications/{own id}/traffic_rules``;
- Mp1 update: ``PUT .../services/{own service}`` (toggles its state: one store commit);
- baseline: ``GET /service`` (the TOF's service list, the admin token: the daemon's own
  authenticated read path) and ``GET /healthz`` (no token, the cheapest route).

Reports p50/p99 in ms per kind and the ratio of each Mp1 kind to the ``GET /service``
baseline, all measured in the same run under the same concurrency.

    .venv/bin/python bench/mec_mp1.py [--apps 100] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "bench-token-" + "0" * 24
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SM = "/mec_service_mgmt/v1"
AS = "/mec_app_support/v1"
KINDS = ("mp1 discovery", "mp1 traffic_rules", "mp1 service PUT", "GET /service", "GET /healthz")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def service(name: str, state: str = "ACTIVE") -> dict[str, Any]:
    return {
        "serName": name, "version": "1", "state": state, "serializer": "JSON",
        "transportInfo": {
            "id": "t", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP", "version": "1.1",
            "endpoint": {"uris": ["http://10.0.3.10/"]}, "security": {},
        },
    }  # fmt: skip


class Daemon:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="fe-bench-mec-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = self.workdir / "fluidedge.toml"
        config.write_text(
            f'state_dir = "{self.workdir / "state"}"\n[api]\nport = {self.port}\n'
            f'token = "{TOKEN}"\n[tof]\nbackend = "none"\n[mec]\n'
        )
        self.log = open(self.workdir / "daemon.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fluidedge", "serve", "-c", str(config), "--log-level",
             "warning"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("daemon did not come up")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def create_apps(daemon: Daemon, count: int) -> list[dict[str, str]]:
    apps = []
    with httpx.Client(base_url=daemon.url, timeout=60) as http:
        for index in range(count):
            answer = http.post("/v1/apps", headers=ADMIN, json={"name": f"bench-{index}"})
            answer.raise_for_status()
            app_id, token = answer.json()["appInstanceId"], answer.json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            registered = http.post(
                f"{SM}/applications/{app_id}/services", headers=auth, json=service(f"svc-{index}")
            )
            registered.raise_for_status()
            apps.append({"id": app_id, "token": token, "sid": registered.json()["serInstanceId"]})
    return apps


async def worker(
    url: str, apps: list[dict[str, str]], index: int, rounds: int, times: dict[str, list[float]]
) -> None:
    app = apps[index]
    auth = {"Authorization": f"Bearer {app['token']}"}
    other = f"svc-{(index + 1) % len(apps)}"
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:

        async def timed(kind: str, method: str, path: str, **kw: Any) -> None:
            begin = time.perf_counter()
            try:
                answer = await http.request(method, path, **kw)
            except httpx.RemoteProtocolError:
                # The server closed this idle keep-alive connection (uvicorn: after 5 s) as
                # the request left: counted, then timed again on a fresh connection.
                times["reconnects"].append(0.0)
                begin = time.perf_counter()
                answer = await http.request(method, path, **kw)
            took = (time.perf_counter() - begin) * 1000
            if answer.status_code >= 300:
                raise RuntimeError(f"{kind}: {answer.status_code} {answer.text}")
            times[kind].append(took)

        await http.get("/healthz")  # the connection is up before anything is timed
        for round_ in range(rounds):
            state = "INACTIVE" if round_ % 2 == 0 else "ACTIVE"
            calls = [
                ("mp1 discovery", "GET", f"{SM}/services", {"params": {"ser_name": other}}),
                ("mp1 traffic_rules", "GET", f"{AS}/applications/{app['id']}/traffic_rules", {}),
                ("mp1 service PUT", "PUT",
                 f"{SM}/applications/{app['id']}/services/{app['sid']}",
                 {"json": service(f"svc-{index}", state)}),
                ("GET /service", "GET", "/service", {"headers": ADMIN}),
                ("GET /healthz", "GET", "/healthz", {}),
            ]  # fmt: skip
            shift = (round_ + index) % len(calls)
            for kind, method, path, extra in calls[shift:] + calls[:shift]:
                await timed(kind, method, path, **{"headers": auth, **extra})


async def measure(url: str, apps: list[dict[str, str]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "reconnects")}
    await asyncio.gather(*(worker(url, apps, i, rounds, times) for i in range(len(apps))))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    daemon = Daemon()
    try:
        apps = create_apps(daemon, args.apps)
        times = asyncio.run(measure(daemon.url, apps, args.rounds))
    finally:
        daemon.close()
    base50, base99 = pct(times["GET /service"], 50), pct(times["GET /service"], 99)
    print(f"# mec_mp1: {os.cpu_count()} CPUs, {os.uname().release}, "
          f"{args.apps} concurrent apps x {args.rounds} rounds")  # fmt: skip
    print(f"{'ms':24} {'p50':>8} {'p99':>8}   {'/ GET /service p50, p99':>24}")
    for kind in KINDS:
        p50, p99 = pct(times[kind], 50), pct(times[kind], 99)
        print(
            f"{kind:24} {p50:8.2f} {p99:8.2f}   {p50 / base50:10.2f}x {p99 / base99:8.2f}x"
            f"  n={len(times[kind])}"
        )
    print(f"# keep-alive connections closed by the server and reopened: {len(times['reconnects'])}")


if __name__ == "__main__":
    main()
