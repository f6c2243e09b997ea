"""The chain part (config table ``[chains]``): service function chains on instance networks.

It needs the ``[instances]`` part: its data planes are the bridges of the instance networks
whose driver is ``ovs`` (one :class:`~fluidedge.chains.ovs.OvsChains` per bridge: OpenFlow)
or ``linuxbridge`` (one :class:`~fluidedge.chains.linuxbridge.LinuxChains` per bridge: a
tc/eBPF program on its chain ports). ``ovn`` networks have none (their logical switches are
OVN's; chains there are not done). At start
it loads the declared objects from the store and applies them to every such bridge, which
reconciles what the switch holds (nothing stale, nothing duplicated: see :mod:`.ovs`). A poll
(``poll_interval``, default 1 s) re-applies a bridge whose set of ports changed, so a function
instance that dies or is deleted leaves its group (its flows move to a sibling, or the chain's
failure policy applies) and one that comes back rejoins.

With tenants, the routes scope what each caller sees and may name (:mod:`.scoping`).

With a ``[tof]`` part, a flow classifier may name a TOF service (:mod:`.tof`): the poll also
re-applies when the TOF's services change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fluidedge.chains.api import build_router
from fluidedge.chains.errors import ChainConflict, ChainUnprocessable, InvalidChain
from fluidedge.chains.firewall import LiveFirewalls, is_firewall
from fluidedge.chains.functions import FIREWALL_IMAGE
from fluidedge.chains.linuxbridge import LinuxChains
from fluidedge.chains.ovs import OvsChains
from fluidedge.chains.persist import Tables
from fluidedge.chains.scoping import ChainScope
from fluidedge.chains.service import ChainService, DataPlane
from fluidedge.chains.tof import service_prefixes
from fluidedge.core.fields import IPNetwork
from fluidedge.core.part import DaemonContext
from fluidedge.core.periodic import every
from fluidedge.instances.images.hostnft import ensure_nft
from fluidedge.instances.models import TemplateSpec
from fluidedge.instances.network import mac_for
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.tenants.service import TenantService

log = logging.getLogger("fluidedge.chains")


class ChainsConfig(BaseModel):
    """The ``[chains]`` table."""

    model_config = ConfigDict(extra="forbid")
    poll_interval: float = Field(default=1.0, gt=0.05, le=60.0)


class ChainsPart:
    name = "chains"

    def __init__(self, config: ChainsConfig, ctx: DaemonContext) -> None:
        self.config = config
        self.ctx = ctx
        self._planes: dict[tuple[str | None, str], OvsChains | LinuxChains] = {}
        self.service = ChainService(Tables(ctx.store), self.planes, self.tof_services)
        self._task: asyncio.Task[None] | None = None
        self.firewalls = LiveFirewalls(self.firewall_pid)

    def planes(self) -> list[DataPlane]:
        """One data plane per ``ovs`` instance network whose switch runs, and per
        ``linuxbridge`` network."""
        part = self.ctx.parts.get("instances")
        manager = getattr(part, "manager", None)
        if manager is None:
            return []
        out: list[DataPlane] = []
        for spec in manager.networks.values():
            driver = getattr(spec, "driver", None)
            key = (spec.netns, spec.bridge)
            plane = self._planes.get(key)
            if plane is None and driver == "ovs":
                daemons = ovs_bridges.running_switch(spec.netns)
                if daemons is None:
                    continue
                plane = self._planes[key] = OvsChains(daemons, spec.bridge)
            elif plane is None and driver == "linuxbridge":
                plane = self._planes[key] = LinuxChains(
                    spec.netns, spec.bridge, self.port_macs, filtered=self.filtered_ports
                )
            if plane is not None:
                out.append(plane)
        return out

    def filtered_ports(self) -> set[str]:
        """Switch ports the security groups filter (none without a ``[secgroups]`` part)."""
        service = getattr(self.ctx.parts.get("secgroups"), "service", None)
        if service is None:
            return set()
        return {p.device for p in service.list_ports() if p.port_security}

    def port_macs(self, ports: Iterable[str]) -> dict[str, str]:
        """The MAC behind each of ``ports`` that is an instance's interface (the instances
        part gives the instance end of a veth a MAC derived from the host end's name)."""
        manager = getattr(self.ctx.parts.get("instances"), "manager", None)
        if manager is None:
            return {}
        mine = {i.host_ifname for inst in list(manager.instances.values()) for i in inst.interfaces}
        return {port: mac_for(port) for port in ports if port in mine}

    def tof_services(self) -> dict[str, IPNetwork]:
        """The TOF's services (name -> the destination of their offloaded packets)."""
        catalog = getattr(self.ctx.parts.get("tof"), "catalog", None)
        if catalog is None:
            return {}
        return service_prefixes(catalog.all())

    def router(self) -> APIRouter:
        return build_router(self.service, self.create_template, self.firewalls, self.scope())

    def scope(self) -> ChainScope | None:
        """Tenant-scoped views (:mod:`.scoping`) when the daemon has tenants."""
        tenants = self.ctx.tenants
        if not isinstance(tenants, TenantService):
            return None
        return ChainScope(self.port_instance, lambda name: tenants.owner("instance", name))

    def port_instance(self, port: str) -> str | None:
        """The instance whose interface is switch port ``port`` (its veth's host end)."""
        manager = getattr(self.ctx.parts.get("instances"), "manager", None)
        if manager is None:
            return None
        for inst in list(manager.instances.values()):
            if any(i.host_ifname == port for i in inst.interfaces):
                return str(inst.name)
        return None

    def firewall_pid(self, name: str) -> int:
        """The pid of running vFirewall instance ``name`` (the instances part's 404 if there is
        no such instance; 409 if it is not a running vFirewall; 422 without an instances
        part: the request contradicts the daemon's configuration)."""
        manager = getattr(self.ctx.parts.get("instances"), "manager", None)
        if manager is None:
            raise ChainUnprocessable("firewalls need the [instances] part")
        view = manager.get_instance(name).view()
        template = manager.get_template(view.template)
        if not is_firewall(template.image, dict(template.files)):
            raise ChainConflict(f"instance {name} is not a vFirewall (template {view.template})")
        if view.state != "running" or view.pid is None:
            raise ChainConflict(f"instance {name} is {view.state}, not running")
        return int(view.pid)

    def create_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a function's template with the instances part (importing the ``nft``
        image of the host's nft first if the template runs on it and the store lacks it)."""
        manager = getattr(self.ctx.parts.get("instances"), "manager", None)
        if manager is None:
            raise ChainUnprocessable("function templates need the [instances] part")
        if body.get("image") == FIREWALL_IMAGE:
            ensure_nft(manager.images)
        spec = manager.create_template(TemplateSpec.model_validate(body))
        return dict(spec.model_dump())

    async def start(self) -> None:
        await asyncio.to_thread(self.service.load)
        await asyncio.to_thread(self.service.apply_all)
        # A switch of ours restarted under us gets its steering back before its bridges get
        # their learning-switch flow (fluidedge.ovs.bridges.revive).
        ovs_bridges.add_restorer(self._restore_switch)
        # Every poll_interval; a failing poll (the switch down, its database restarting) is
        # tried again at the next one and logged once per distinct failure, and whatever
        # it raises never ends the polling.
        self._task = asyncio.create_task(
            every(
                self.config.poll_interval, self._reconcile, log, "chains: the poll", "poll_failed"
            ),
            name="chains-poll",
        )

    def _restore_switch(self, _netns: str | None) -> None:
        """Re-apply the chains of the bridges that lost their flows (raises if it cannot)."""
        for bridge in self.service.reconcile():
            log.warning("chains: %s: chains re-applied after its switch restarted", bridge)

    def _reconcile(self) -> None:
        """One poll: re-apply the bridges whose ports changed or whose flows were lost."""
        for bridge in self.service.reconcile():
            log.info("chains: ports of %s changed: chains re-applied", bridge)

    async def stop(self) -> None:
        ovs_bridges.remove_restorer(self._restore_switch)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def metrics(self) -> str:
        chains = self.service.list("port_chain")
        lines = [
            "# HELP fluidedge_chains port chains declared",
            "# TYPE fluidedge_chains gauge",
            f"fluidedge_chains {len(chains)}",
        ]
        counted = [(p.bridge, p.counters()) for p in list(self._planes.values())
                   if isinstance(p, LinuxChains)]  # fmt: skip
        if any(stats for _, stats in counted):
            lines += [
                "# HELP fluidedge_chains_tc_packets_total what the tc/eBPF chain program did "
                "on a linuxbridge network (steered, to_member, delivered, *_dropped, ...)",
                "# TYPE fluidedge_chains_tc_packets_total counter",
            ]
            for bridge, stats in counted:
                lines += [
                    f'fluidedge_chains_tc_packets_total{{bridge="{bridge}",what="{what}"}} {n}'
                    for what, n in stats.items()
                ]
        return "\n".join(lines) + "\n"


def create_part(section: dict[str, Any], ctx: DaemonContext) -> ChainsPart:
    try:
        config = ChainsConfig.model_validate(section)
    except ValidationError as exc:
        raise InvalidChain(f"config [chains]: {exc}") from exc
    return ChainsPart(config, ctx)
