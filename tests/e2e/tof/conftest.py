"""A lab in "tof" mode with a real ``fluidedge serve`` running the TOF on its host namespace."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fluidedge.core.client import Client
from fluidedge.lab.config import LabConfig, default_text, loads
from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import s1_pairs, wait_s1_ready
from tests.fixtures.daemon import DaemonFactory, DaemonHandle

_COUNTER = itertools.count()

#: The default lab plus a second edge app (PUT moves a service to it) and a 5G UE (ue4 adds a
#: PDU Session Container to its uplink G-PDUs: the extension-header case).
EXTRA = """
[[app]]
name = "app2"
address = "198.19.0.11"
http_port = 80
"""
SERVICE_IP = "198.18.200.50"  # the PDN answers it too, so DELETE visibly restores the PDN path


def lab_config() -> LabConfig:
    text = default_text().replace(
        'name = "ue4"\naddress = "198.18.100.4"\nenb = "enb2"\nsgw = "sgw2"\n',
        'name = "ue4"\naddress = "198.18.100.4"\nenb = "enb2"\nsgw = "sgw2"\n'
        "pdu_session_container = true\n",
    )
    if "pdu_session_container = true" not in text:
        raise RuntimeError("default lab layout changed: cannot mark ue4 as 5G")
    return loads(text + EXTRA)


@dataclass
class TofEnv:
    lab: Lab
    daemon: DaemonHandle
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            self._client = self.daemon.client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def run(self, node: str, *argv: str, timeout: float = 30.0) -> tuple[int, str]:
        result = self.lab.run(node, list(argv), timeout=timeout)
        return result.returncode, result.stdout

    def http(self, ue: str, address: str, timeout: float = 3.0) -> str:
        code, out = self.run(ue, "curl", "-s", "-m", str(timeout), f"http://{address}/")
        return out if code == 0 else f"<curl exit {code}>"

    def ping(self, ue: str, address: str, count: int = 2) -> bool:
        # -w: keep probing until `count` replies or the deadline, so a first echo lost while
        # the TOF learns the bearer (or the machine is loaded) does not fail the check.
        code, _ = self.run(ue, "ping", "-c", str(count), "-i", "0.2", "-W", "2", "-w", "6", address)
        return code == 0

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client().get("/stats")
        return result

    def tunnels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.client().get("/tunnels")
        return result


def tof_section(lab: Lab, backend: str = "userspace", **overrides: Any) -> dict[str, Any]:
    """The daemon's ``[tof]`` table for a lab up in tof mode (its S1 interfaces, UE pool and
    Pinger target), with ``overrides``."""
    return {
        "backend": backend,
        "netns": lab.host_ns,
        "enb_interface": lab.enb_side_if,
        "sgw_interface": lab.sgw_side_if,
        "apps_tun": "tofapps",
        "ue_pools": [str(lab.config.ue_pool.subnet)],
        "pinger_target": str(lab.pdn_address),
        **overrides,
    }


def start_tof(lab: Lab, daemon_factory: DaemonFactory, section: dict[str, Any]) -> TofEnv:
    """A daemon running the TOF of ``section`` on ``lab``, whose PDN also answers SERVICE_IP."""
    daemon = daemon_factory(parts={"tof": section})
    lab.run("pdn", ["ip", "addr", "add", f"{SERVICE_IP}/24", "dev", "br0"], check=True)
    return TofEnv(lab, daemon)


def tear_down(envs: list[TofEnv], labs: list[Lab]) -> None:
    """Close the clients and stop the daemons, then take the labs down."""
    for env in envs:
        env.close()
        env.daemon.stop()
    for lab in labs:
        lab.down()


TofEnvFactory = Callable[..., TofEnv]


@pytest.fixture(params=["userspace", "fastpath"])
def tof_env(
    daemon_factory: DaemonFactory, request: pytest.FixtureRequest
) -> Iterator[TofEnvFactory]:
    """``tof_env(**tof_overrides)``: lab up in tof mode + daemon with the TOF on its host.

    Parametrised by data-plane backend: every TOF scenario runs on the userspace reference and
    on the tc/eBPF fast path (same behaviour required).
    """
    backend: str = request.param
    made: list[TofEnv] = []
    labs: list[Lab] = []

    def factory(**tof: Any) -> TofEnv:
        prefix = f"tof{os.getpid() % 100000}{next(_COUNTER)}"
        lab = Lab.up(lab_config(), prefix=prefix, mode="tof")
        labs.append(lab)
        env = start_tof(lab, daemon_factory, tof_section(lab, backend, **tof))
        made.append(env)
        assert wait_s1_ready(env.client(), s1_pairs(lab)), "no echo crossed the TOF"
        return env

    try:
        yield factory
    finally:
        tear_down(made, labs)
