"""Run a ``fluidedge serve`` subprocess with the TOF on a lab (for the demo and benchmarks).

Tests use ``tests/fixtures/daemon.py``; this is the same idea for commands that are not tests:
a throw-away state directory, a random loopback port and token, the TOF configured on the lab's
host namespace, optionally more parts (the demo adds ``[instances]`` with a network on the lab's
apps bridge), and a guaranteed stop (SIGTERM, then SIGKILL) and clean-up on exit. The instance
manager keeps its shells and instances over a graceful stop by design (a restart re-adopts
them), so when that part is configured the clean-up also runs ``fluidedge pool purge``.
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
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from fluidedge.core.client import Client
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


def _tables(prefix: str, table: Mapping[str, object]) -> list[str]:
    """TOML lines for ``[prefix]`` and its nested tables (``[prefix.sub]``...)."""
    lines = [f"[{prefix}]"]
    nested: list[tuple[str, Mapping[str, object]]] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            nested.append((f"{prefix}.{key}", value))
        else:
            lines.append(f"{key} = {_toml(value)}")
    for name, sub in nested:
        lines.extend(_tables(name, sub))
    return lines


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


def lab_instances_section(lab: Any, **overrides: object) -> dict[str, object]:
    """The ``[instances]`` table with an ``apps`` network on the lab's apps bridge.

    The bridge lives in the lab's host namespace and is adopted (not created, not deleted by a
    purge): instances plugged into it sit next to the lab's static edge apps, where the TOF's
    apps side reaches them.
    """
    network = {"bridge": lab.apps_bridge, "netns": lab.host_ns, "subnet": lab.apps_subnet}
    return {"networks": {"apps": network}, **overrides}


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

    def __init__(
        self,
        section: dict[str, object],
        *,
        log_level: str = "warning",
        parts: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="fluidedge-tof-"))
        self.port = _free_port()
        self.token = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_dir = self.workdir / "state"
        lines = [
            f"state_dir = {_toml(self.state_dir)}",
            "[api]",
            f"port = {self.port}",
            f"token = {_toml(self.token)}",
            *_tables("tof", section),
        ]
        self.parts = dict(parts or {})
        for name, table in self.parts.items():
            lines.extend(_tables(name, table))
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

    def start(self, timeout: float = 30.0, *, own_group: bool = False) -> None:
        """Start the daemon and wait for its ``/healthz``.

        ``own_group``: the daemon gets its own process group, so a terminal's Ctrl-C (sent to
        the caller's whole group) reaches the caller only, which then tears down in its own
        order (the demo deletes its instance through the API before it stops the daemon).
        """
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fluidedge", "serve", "--config", str(self.config_path),
                 "--log-level", self.log_level],
                stdout=log, stderr=subprocess.STDOUT,
                process_group=0 if own_group else None,
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

    def purge_instances(self) -> str:
        """With the daemon stopped: destroy every instance and shell it owns (``pool purge``)."""
        if "instances" not in self.parts:
            return ""
        result = subprocess.run(
            [sys.executable, "-m", "fluidedge", "pool", "purge", "-c", str(self.config_path)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise DataPlaneError(
                f"pool purge failed (state kept in {self.workdir}): {result.stdout}{result.stderr}"
            )
        return result.stdout.strip()

    def cleanup(self, *, purge: bool = True) -> None:
        """Stop, purge the instances part, remove the state. A failed purge keeps the state
        directory (its runc root and store say what is left) and raises with its path.
        ``purge=False`` when the caller already ran :meth:`purge_instances` itself."""
        self.stop()
        if purge:
            self.purge_instances()
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
