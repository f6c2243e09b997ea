"""What the manager keeps per shell and per instance, and how it is stored.

Plain data with their store records (``info``/``record``) and the constructors that read them
back (re-adoption), so that every module of the manager speaks of the same things.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fluidedge.instances.models import (
    NAME_PATTERN,
    InstanceRequest,
    InstanceView,
    InterfaceState,
    Resources,
    Timing,
)
from fluidedge.instances.nl import NetlinkSocket
from fluidedge.linux import procfs


@dataclass
class ShellIface:
    name: str
    network: str
    host_ifname: str
    netns: str | None
    ifindex: int = 0
    ofport: int = 0  # its OpenFlow port on an ovs network's switch (0: none), kept for a replug


@dataclass
class Shell:
    """A prepared container: its launcher waits on the go FIFO, its veths are plugged."""

    id: str
    template: str
    pid: int
    directory: Path
    ifaces: list[ShellIface]
    state: str = "preparing"
    nl: NetlinkSocket | None = None
    cpus: tuple[int, ...] = ()  # its cpuset when pinned ahead of a request; () = inherited
    # The launcher's per-shell token (its argv[1], fluidedge.instances.launcher); None in rows
    # written before tokens.
    token: str | None = None
    # Its cgroup is in the idle class (fluidedge.instances.shell.IDLE_START): not a row's
    # field, the kernel's (read back at re-adoption).
    idle: bool = False
    # The limits its cgroup was made with when they are not its template's (the daemon's
    # default CPU cap, Manager.shell_limits); None: its template's.
    base: Resources | None = None
    # What releases its launcher (the execute phase's config makes it, its start sends it):
    # not a row's field.
    go: bytes = b""

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "template": self.template,
            "state": self.state,
            "pid": self.pid,
            "directory": str(self.directory),
            "ifaces": [vars(i) for i in self.ifaces],
            "cpus": list(self.cpus),
            "token": self.token,
            **({} if self.base is None else {"base": self.base.model_dump()}),
        }

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Shell:
        return cls(
            id=info["id"],
            template=info["template"],
            pid=_int(info.get("pid") or 0),
            directory=Path(info["directory"]),
            ifaces=[ShellIface(**i) for i in info.get("ifaces", [])],
            state=info["state"],
            cpus=_ints(info.get("cpus", ())),
            token=info.get("token"),
            base=Resources.model_validate(info["base"]) if info.get("base") else None,
        )

    def close(self) -> None:
        """Drop the netlink socket held in the shell's namespace."""
        if self.nl is not None:
            self.nl.close()
            self.nl = None


_NAME = re.compile(NAME_PATTERN)


def _int(value: object) -> int:
    """A stored integer (a pid): a bool or a text is a damaged row (ValueError)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return value


def _name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{value!r} is not an instance name")
    return value


def _ints(values: object) -> tuple[int, ...]:
    if not isinstance(values, list | tuple):
        raise TypeError(f"{values!r} is not a list of integers")
    return tuple(_int(v) for v in values)


def _request(value: object, name: str) -> dict[str, Any] | None:
    """A stored creation request (restart = "always"): a valid request of this instance
    saying so (ValueError or TypeError otherwise: a damaged row)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"request is a {type(value).__name__}, not an object")
    request = InstanceRequest.model_validate(value)
    if request.name != name or request.restart != "always":
        raise ValueError(f"request names {request.name!r} (restart {request.restart})")
    return value


@dataclass
class Instance:
    name: str
    id: str
    template: str
    state: str
    pid: int | None
    path: Literal["warm", "cold"]
    cpus: tuple[int, ...]
    resources: Resources
    interfaces: list[InterfaceState]
    labels: dict[str, str]
    timing: dict[str, float]
    created_at: float
    directory: Path
    shell_ifaces: list[ShellIface] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cos: str | None = None
    token: str | None = None  # its shell's launcher token (re-adoption before the go signal)
    # restart = "always": the request that makes it again (fluidedge.instances.restart)
    request: dict[str, Any] | None = None
    restarts: int = 0  # times it was made again

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "template": self.template,
            "state": self.state,
            "pid": self.pid,
            "path": self.path,
            "cpus": list(self.cpus),
            "resources": self.resources.model_dump(),
            "interfaces": [i.model_dump() for i in self.interfaces],
            "labels": self.labels,
            "timing": self.timing,
            "created_at": self.created_at,
            "directory": str(self.directory),
            "shell_ifaces": [vars(i) for i in self.shell_ifaces],
            "cos": self.cos,
            "token": self.token,
            "request": self.request,
            "restarts": self.restarts,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Instance:
        return cls(
            name=_name(record["name"]),
            id=record["id"],
            template=record["template"],
            state=record["state"],
            pid=None if record.get("pid") is None else _int(record["pid"]),
            path=record.get("path", "warm"),
            cpus=_ints(record.get("cpus", [])),
            resources=Resources.model_validate(record["resources"]),
            interfaces=[InterfaceState.model_validate(i) for i in record["interfaces"]],
            labels=record.get("labels", {}),
            timing=record.get("timing", {}),
            created_at=record.get("created_at", time.time()),
            directory=Path(record["directory"]),
            shell_ifaces=[ShellIface(**i) for i in record.get("shell_ifaces", [])],
            cos=record.get("cos"),
            token=record.get("token"),
            request=_request(record.get("request"), record["name"]),
            restarts=_int(record.get("restarts", 0)),
        )

    def current_state(self) -> str:
        """The state, with a running or paused one checked in ``/proc``: its workload may
        have ended on its own ("exited"; DELETE still cleans up)."""
        state = self.state
        if state in ("running", "paused") and (
            self.pid is None or not procfs.process_running(self.pid)
        ):
            return "exited"
        return state

    def view(self, *, alive: bool = False) -> InstanceView:
        """The API's view; ``alive``: the caller has just seen the workload run (otherwise
        :meth:`current_state` asks ``/proc``)."""
        return InstanceView(
            name=self.name,
            id=self.id,
            template=self.template,
            state=self.state if alive else self.current_state(),
            pid=self.pid,
            path=self.path,
            cpus=list(self.cpus),
            resources=self.resources,
            interfaces=self.interfaces,
            labels=self.labels,
            timing=Timing(**self.timing),
            created_at=self.created_at,
            cos=self.cos,
            restart="always" if self.request is not None else "no",
            restarts=self.restarts,
        )
