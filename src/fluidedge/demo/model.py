"""What the demo tracks: where its service points, what each UE got, what teardown found.

Plain data, shared by the orchestration (:mod:`fluidedge.demo`) and the rendering
(:mod:`fluidedge.demo.view`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

DEMO_SERVICE_IP = "198.18.50.1"
DEMO_SERVICE_NAME = "demo-edge"
DEMO_TEMPLATE = "edge-httpd"
DEMO_INSTANCE = "edge1"
DEMO_HOST_INDEX = 20  # the instance's address: the 20th host of the lab's apps subnet
ON_DEMAND_POOL_START = 64  # --on-demand: instances take the apps subnet's .64/28
ON_DEMAND_POOL_PREFIX = 28
ON_DEMAND_PAUSE = 5.0  # s idle before an on-demand instance is paused (T1)
ON_DEMAND_DELETE = 20.0  # s paused before it is deleted (T2)
# s the demo waits for its daemon: a first start on a fresh or slow host builds the built-in
# image and the launcher; a daemon that fails ends the wait at once.
DAEMON_START_S = 120.0
PHASES = {  # the VIM instantiation phases of the API's timing breakdown (docs/instances.md)
    "accept": "request validated: template, name, address checks",
    "placement": "CPU choice and admission control",
    "shell": "prepared shell taken from the pool (cold: created now)",
    "config": "assignment and files written, per-request cgroup limits, claim committed",
    "network": "addresses and routes set through the shell's netlink socket",
    "start": "shell's process released (exec.fifo): the workload execs",
    "durable": "the store's flush to disk, while the workload execs",
    "ready": "readiness check (httpd: TCP port listening)",
    "total": "sum, server-side",
}


@dataclass
class EdgeApp:
    """Where the demo service points, and how to recognise its answers."""

    address: str
    port: int
    marker: str  # a reply from this app contains it
    instance: str | None = None  # the instance's name (None: the lab's static app)
    view: dict[str, Any] = field(default_factory=dict)  # POST /v1/instances answer
    on_demand: bool = False  # instances created per UE on its first packet

    @property
    def url_suffix(self) -> str:
        return "" if self.port == 80 else f":{self.port}"


@dataclass
class UeTraffic:
    """What one UE asked and got back (updated by its traffic thread)."""

    name: str
    address: str
    edge_ok: int = 0
    edge_expected: int = 0  # edge answers that came from the demo's edge app
    pdn_ok: int = 0
    failures: int = 0
    last_edge: str = ""
    last_pdn: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Leftovers:
    """What the teardown check found (empty lists: nothing left)."""

    containers: list[str] = field(default_factory=list)  # ids the daemon's runc root held
    runc: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    host_checked: list[str] = field(default_factory=list)  # host links/tables looked for
    host: list[str] = field(default_factory=list)  # ... and still there (--mec)

    @property
    def clean(self) -> bool:
        return not (self.runc or self.cgroups or self.processes or self.namespaces or self.host)
