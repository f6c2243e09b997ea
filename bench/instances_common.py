"""Shared helpers of the instance benchmarks: run a real daemon, talk to it, clean up."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from fluidedge.measure.machine import meminfo_kib

TOKEN = "bench-token-" + "0" * 24


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 50):8.2f}  p99 {pct(values, 99):8.2f}  "
        f"mean {statistics.fmean(values):8.2f}  n={len(values)}"
    )


class BenchDaemon:
    """``fluidedge serve`` in a subprocess with a private state dir; purged on close."""

    def __init__(
        self,
        instances: dict[str, Any],
        *,
        top: dict[str, Any] | None = None,
        tables: dict[str, dict[str, Any]] | None = None,
        startup_timeout: float = 60,
    ) -> None:
        """``top``: more top-level config keys; ``tables``: more part tables (e.g. tof);
        ``startup_timeout``: seconds for ``/healthz`` to answer (longer under emulation)."""
        self.workdir = Path(tempfile.mkdtemp(prefix="fe-bench-"))
        self.port = free_port()

        def rendered(value: Any) -> str:
            return f'"{value}"' if isinstance(value, str) else repr(value)

        lines = [f'state_dir = "{self.workdir / "state"}"']
        lines += [f"{key} = {rendered(value)}" for key, value in (top or {}).items()]
        lines += ["[api]", f"port = {self.port}", f'token = "{TOKEN}"']
        for name, table in {"instances": instances, **(tables or {})}.items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {rendered(value)}" for key, value in table.items()]
        self.config = self.workdir / "fluidedge.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = open(self.workdir / "daemon.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fluidedge",
                "serve",
                "-c",
                str(self.config),
                "--log-level",
                "warning",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.process.terminate()
        self.process.wait(60)
        self.http.close()
        self.log.close()
        tail = (self.workdir / "daemon.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"daemon did not come up (kept {self.workdir}):\n{tail}")

    @property
    def socket(self) -> Path:
        """The daemon's Unix socket (the default ``api.socket``)."""
        return self.workdir / "state" / "api.sock"

    def wait_pools(self, timeout: float = 300) -> None:
        """Every pool full and nothing in preparation: no background work competes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pools = self.http.get("/v1/pools").json()
            if all(p["ready"] >= p["target"] and p["preparing"] == 0 for p in pools):
                return
            time.sleep(0.02)
        raise RuntimeError(f"pools not full after {timeout}s")

    def wait_pool(self, template: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pool in self.http.get("/v1/pools").json():
                if pool["template"] == template and pool["ready"] >= pool["target"]:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"pool {template} not full after {timeout}s")

    def close(self) -> None:
        """Delete the instances, stop the daemon, purge the pooled shells, then remove the
        work directory. If any step fails the directory is kept (its runc state and shells
        would otherwise be orphaned beyond reach) and its path is printed."""
        removed = False
        try:
            self._stop_and_purge()
            removed = remove_workdir(self.workdir)
        finally:
            self.log.close()
            if not removed:
                print(f"kept {self.workdir} (not cleaned up, see daemon.log)", file=sys.stderr)

    def _stop_and_purge(self) -> None:
        try:
            for inst in self.http.get("/v1/instances").json():
                self.http.delete(f"/v1/instances/{inst['name']}")
        finally:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
            self.http.close()
        # Pooled shells survive a stop by design (re-adopted on restart): purge them.
        from fluidedge.core.store import Store
        from fluidedge.instances.manager import InstancesConfig, Manager

        store = Store(self.workdir / "state" / "fluidedge.sqlite")
        try:
            manager = Manager(
                InstancesConfig(pool_scale=0, prepare_workers=1),
                store,
                self.workdir / "state" / "instances",
            )
            manager.start()
            manager.purge()
        finally:
            store.close()


def mounts_under(directory: Path) -> list[str]:
    """Mounts that use ``directory``: mounted at or below it, or naming it in their options (a
    shell's overlay root is mounted under /run/fluidedge-roots while the shell is built, its
    upper and work directories are the shell's, below the state dir; a running shell's root is
    in its container's namespace only). From /proc/self/mountinfo, octal escapes kept."""
    prefix = str(directory.resolve())
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = line.split()[4]
            if point == prefix or prefix + "/" in line:
                points.append(point)
    return points


def remove_workdir(directory: Path) -> bool:
    """Remove a bench's work directory unless a mount still uses it (an overlay root a failed
    purge left): rmtree would delete through it or under it. Whether it was removed."""
    if mounts_under(directory):
        return False
    shutil.rmtree(directory)
    return True


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix socket (the daemon's ``state_dir/api.sock``)."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        self.sock = sock


class LeanClient:
    """A minimal HTTP/1.1 keep-alive client (``http.client``) for the latency rows.

    httpx builds request/response objects, merges headers and runs its transport stack: about
    0.4-0.8 ms per request on this 2-core host, which is the client library's cost, not the
    API's. The bench reports the headline warm rows with this client and the same requests
    through httpx next to them, so both are visible.
    """

    def __init__(self, port: int, *, unix: Path | None = None) -> None:
        """Over TCP to ``port`` on loopback, or over the daemon's Unix socket ``unix``."""
        self.port = port
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        self.conn = (
            UnixHTTPConnection(unix)
            if unix is not None
            else http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        )

    def ping(self) -> None:
        """A read on the kept-alive connection (reconnects if the server closed it idle)."""
        for attempt in (0, 1):
            try:
                self.conn.request("GET", "/healthz", headers=self.headers)
                self.conn.getresponse().read()
                return
            except (http.client.HTTPException, OSError):
                self.conn.close()
                if attempt:
                    raise

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        self.conn.request("POST", path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())

    def close(self) -> None:
        self.conn.close()


def kernel_kib() -> int:
    """Slab + VmallocUsed + Percpu of /proc/meminfo, KiB: the kernel's own memory, where cgroup
    structures and the shrinker maps of memory cgroups live (bench/memcg_superblocks.py)."""
    text = Path("/proc/meminfo").read_text()
    total = 0
    for key in ("Slab", "VmallocUsed", "Percpu"):
        value = meminfo_kib(text, key)
        if value is None:
            raise RuntimeError(f"/proc/meminfo has no {key}")
        total += value
    return total


def machine() -> str:
    return f"{os.cpu_count()} CPUs, {os.uname().release}"
