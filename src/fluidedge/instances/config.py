"""The ``[instances]`` config table and the host facts its defaults come from.

Kept apart from the manager so that the daemon, the CLI and the benchmarks can read and
validate a config without importing the machinery that acts on it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fluidedge.core.cpus import CPU_LIST_PATTERN, parse_cpu_list
from fluidedge.instances.placement import Capacity
from fluidedge.ovn.node import OvnNode

if TYPE_CHECKING:
    from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
    from fluidedge.instances.records import Instance


class CosBinder(Protocol):
    """What the CAT part offers instances (set as ``Manager.cos_binder`` when enabled)."""

    def check(self, cos: str) -> tuple[int, ...] | None:
        """Raise unless class ``cos`` exists; the CPUs it is bound to, if any."""

    def bind(self, instance: str, cos: str, pid: int) -> None:
        """Put the instance's tasks (at least ``pid``) into ``cos``."""

    def unbind(self, instance: str) -> None: ...


class PortHook(Protocol):
    """What the security-group part offers instances (set as ``Manager.port_hook``).

    It may also offer ``check_groups(owner, {ifname: [group, ...]})``, which the tenant
    scoping (:mod:`fluidedge.instances.scoping`) calls before a tenant's template or instance
    is made: it raises unless every group named is the owner's."""

    def ports_up(
        self, inst: Instance, request: InstanceRequest | None, template: TemplateSpec | None
    ) -> None:
        """Filter the instance's interfaces (raises, changing nothing, if it cannot): as
        ``request`` and ``template`` say, or as stored for it (None: an instance made again,
        whose settings may have changed since its creation)."""

    def ports_down(self, name: str) -> None:
        """Drop the filters of instance ``name`` (absent: nothing to do)."""

    def restored(self) -> None:
        """The manager re-adopted its instances: filter them again."""


class Placer(Protocol):
    """What the cluster part offers instances (set as ``Manager.placer``): which node runs a
    creation, and forwarding it there."""

    def target(
        self,
        request: InstanceRequest,
        template: TemplateSpec | None,
        *,
        admin: bool,
        forwarded: str | None,
        exclude: frozenset[str] = frozenset(),
    ) -> str | None:
        """The node to forward ``request`` to; ``None``: run it here (raises a refusal).
        ``exclude``: nodes that refused it for lack of room since the view was read."""

    async def forward(
        self, node: str, body: dict[str, Any], tenant: str | None
    ) -> tuple[int, bytes, bool]:
        """Send the creation to ``node``: its HTTP status and body, and whether it was refused
        for lack of room there (admission control: another node may have it)."""

    def owner(self, name: str) -> str | None:
        """The live node (not this one) that runs instance ``name``, if the view says one."""

    def instance_tenant(self, name: str) -> str | None:
        """The tenant owning instance ``name`` on the node that runs it (None: the admin's)."""

    def relay(self, node: str, method: str, path: str) -> tuple[int, bytes]:
        """Send a body-less request for one instance to ``node`` (blocking): status, body."""

    def template_created(self, spec: TemplateSpec, tenant: str | None = None) -> None:
        """``spec`` was created here (``tenant``'s, or the admin's): make it the site's
        (every node gets it, owned alike)."""

    def delete_shared(self, kind: str, name: str, delete: Callable[[], None]) -> None:
        """Template or network ``name`` is deleted (``kind``: ``templates`` or ``networks``):
        ``delete`` it here (it checks who may), and from the site (every node), as one step."""

    def network_created(self, spec: NetworkSpec, tenant: str | None = None) -> None:
        """Network ``spec`` was created here (``tenant``'s, or the admin's): an ``ovn`` one
        becomes the site's."""


class InstancesConfig(BaseModel):
    """The ``[instances]`` table of the daemon config."""

    model_config = ConfigDict(extra="forbid")

    state_dir: Path | None = None
    runtime: Literal["runc", "crun"] = Field(
        default="runc", description="OCI runtime (crun needs pure v1 or v2, not hybrid)"
    )
    runtime_path: str | None = Field(default=None, description="its binary (default: on PATH)")
    launcher: Literal["auto", "c", "sh"] = Field(
        default="auto", description="shell launcher: static C (needs gcc) or busybox sh"
    )
    cgroup_mode: Literal["auto", "v1", "v2"] = Field(
        default="auto", description="cgroup hierarchy: auto-detected, or forced"
    )
    cgroup_parent: str | None = Field(
        default=None,
        pattern=r"^(/[A-Za-z0-9_.@:-]+)+$",
        description="cgroup path instances go under (v2: a subtree we may manage); "
        "default /fluidedge (under systemd too: not below the daemon's unit)",
    )
    cpus: str | None = Field(
        default=None,
        pattern=CPU_LIST_PATTERN,
        description="cpuset for instances (e.g. 2-7), default: the online CPUs",
    )
    cpu_overcommit: float = Field(default=4.0, gt=0)
    memory_mb: int | None = Field(default=None, ge=16, description="default: 80% of MemTotal")
    memory_overcommit: float = Field(default=1.0, gt=0)
    placement: Literal["spread", "pack"] = "spread"
    prepare_workers: int = Field(default=2, ge=1, le=16)
    builtin_templates: bool = True
    pool_scale: float = Field(default=1.0, ge=0, le=100, description="scales template pool sizes")
    networks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ovs_datapath: Literal["netdev", "system", "auto"] = Field(
        default="netdev",
        description="datapath of ovs networks: userspace netdev, the kernel's (one per host), "
        "or auto (kernel where the openvswitch module exists)",
    )
    switch_check_interval_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="seconds between checks that the Open vSwitch of ovs networks still runs "
        "(a dead one is restarted and its flows put back) and that the bridges of linuxbridge "
        "networks still exist (a deleted one is created again with its ports); 0: no check",
    )
    ovn: OvnNode | None = Field(
        default=None,
        description="this node's OVN databases and chassis (docs/multi-host.md); "
        "absent: no ovn networks, nothing of OVN runs",
    )
    userns_base: int = Field(
        default=1 << 30,
        ge=65536,
        le=(1 << 31) - 65536 * 1024,
        description="host uid/gid of the image range; instance ranges of 65536 ids follow it",
    )

    @field_validator("cpus")
    @classmethod
    def _cpus_listed(cls, value: str | None) -> str | None:
        """A range written backwards or a CPU no host has: refused at load, with the reason
        (the lax parser made ``3-1`` no CPU at all)."""
        if value is not None:
            parse_cpu_list(value)
        return value


def online_cpus() -> tuple[int, ...]:
    try:
        return parse_cpu_list(Path("/sys/devices/system/cpu/online").read_text())
    except (OSError, ValueError):  # no sysfs, or a file this reader cannot take
        return tuple(range(os.cpu_count() or 1))


def mem_total_mb() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def capacity_of(config: InstancesConfig) -> Capacity:
    """What placement may hand out: the configured cpuset and memory, or the host's."""
    return Capacity(
        cpus=parse_cpu_list(config.cpus) if config.cpus else online_cpus(),
        memory_mb=config.memory_mb or int(mem_total_mb() * 0.8),
        cpu_overcommit=config.cpu_overcommit,
        memory_overcommit=config.memory_overcommit,
    )
