"""Run a ``fluidedge serve`` subprocess with the TOF on a lab (for the demo and benchmarks).

Tests use ``tests/fixtures/daemon.py``; this is the same idea for commands that are not tests:
a throw-away state directory, a random loopback port and token, the TOF configured on the lab's
host namespace, and a guaranteed stop (SIGTERM, then SIGKILL) and clean-up on exit.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from fluidedge.daemon.client import Client
from fluidedge.tof.errors import DataPlaneError


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def lab_tof_section(lab: Any, **overrides: object) -> dict[str, object]:
    """The ``[tof]`` table for a lab that is up in "tof" mode."""
    return {
        "netns": lab.host_ns,
        "enb_interface": lab.enb_side_if,
        "sgw_interface": lab.sgw_side_if,
        "pinger_target": str(lab.pdn_address),
        "ue_pools": [str(lab.config.ue_pool.subnet)],
        **overrides,
    }


def s1_pairs(lab: Any) -> int:
    """How many (eNB, SGW) pairs of the lab exchange GTP-U echoes."""
    return len({(b.enb, b.sgw) for b in lab.bearers})


def wait_s1_ready(client: Client, pairs: int, timeout: float = 10.0) -> bool:
    """Wait until ``pairs`` Echo Responses crossed the TOF (both peers' ARP is resolved).

    WHY: before the TOF starts, the lab's S1 segment is cut, so the eNBs' and SGWs' neighbour
    entries for each other may be FAILED or still probing; the first user packets would then
    wait for (or be dropped by) ARP. An echo answered through the TOF proves both sides resolved.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counters = client.get("/stats")["counters"]
        if counters.get("gtpu_type_2", 0) >= pairs:
            return True
        time.sleep(0.1)
    return False


class TofDaemon:
    """``with TofDaemon(section) as d: d.client.post(...)``."""

    def __init__(self, section: dict[str, object], *, log_level: str = "warning") -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="fluidedge-tof-"))
        self.port = _free_port()
        self.token = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}"
        lines = [
            f"state_dir = {_toml(self.workdir / 'state')}",
            "[api]",
            f"port = {self.port}",
            f"token = {_toml(self.token)}",
            "[tof]",
            *(f"{k} = {_toml(v)}" for k, v in section.items()),
        ]
        self.config_path = self.workdir / "fluidedge.toml"
        self.config_path.write_text("\n".join(lines) + "\n")
        self.log_path = self.workdir / "daemon.log"
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, self.token)
        return self._client

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fluidedge", "serve", "--config", str(self.config_path),
                 "--log-level", self.log_level],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DataPlaneError(f"daemon exited:\n{self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise DataPlaneError(f"daemon not up after {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> TofDaemon:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
