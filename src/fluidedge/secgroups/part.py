"""The security-group part (config table ``[secgroups]``).

Enabled with the table (``[secgroups]`` is in the shipped daemon config: filtering on by
default). It needs the ``[instances]`` part: at start it becomes the instance manager's port
hook, so every instance interface is filtered before its workload runs. The part may start
before or after the instances part: it restores the ports of whatever the manager has
re-adopted, and the manager calls :meth:`restored` after its own re-adoption.

With tenants (the daemon's :class:`~fluidedge.tenants.service.TenantService`), the routes are
tenant-scoped (:mod:`fluidedge.secgroups.scoping`), a port belongs to its instance's owner, and
a tenant's groups are also recorded in the tenants part's ownership (kind ``security group``),
so that a tenant is not deleted while it owns groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fluidedge.core.part import DaemonContext
from fluidedge.core.periodic import every
from fluidedge.ovn import networks as ovn_networks
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.secgroups.api import build_router
from fluidedge.secgroups.conntrack import Conntrack
from fluidedge.secgroups.driver import FirewallDriver, NftRenderer
from fluidedge.secgroups.errors import InvalidSecgroup
from fluidedge.secgroups.nft import Binding
from fluidedge.secgroups.nftwatch import NftWatch
from fluidedge.secgroups.ovn_driver import OvnRenderer, OvnSplit
from fluidedge.secgroups.ovs_driver import OvsRenderer, SplitRenderer
from fluidedge.secgroups.persist import Tables
from fluidedge.secgroups.scoping import GroupScope, tenant_key
from fluidedge.secgroups.service import SecgroupService
from fluidedge.tenants.service import TenantService

log = logging.getLogger("fluidedge.secgroups")


class SecgroupsConfig(BaseModel):
    """The ``[secgroups]`` table (its presence enables the part)."""

    model_config = ConfigDict(extra="forbid")

    check_interval_s: float = Field(
        default=1.0,
        ge=0.0,
        le=3600.0,
        description="how often the rules installed on Linux bridges are checked against what "
        "the kernel holds, and re-installed if something took them away (an `nft flush "
        "ruleset`); 0: never",
    )


class _ManagerNetworks:
    """The instance manager's networks as the service sees them."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def binding(self, network: str) -> Binding | None:
        spec = self.manager.networks.get(network)
        if spec is None:
            return None
        # an ovn network's switch is the logical switch of its name
        bridge = spec.name if spec.driver == "ovn" else spec.bridge
        return Binding(network=spec.name, bridge=bridge, netns=spec.netns, driver=spec.driver)

    def netns_names(self) -> set[str | None]:
        return {None} | {spec.netns for spec in self.manager.networks.values()}


class SecgroupsPart:
    name = "secgroups"

    def __init__(
        self,
        service: SecgroupService,
        ctx: DaemonContext,
        config: SecgroupsConfig | None = None,
    ) -> None:
        self.service = service
        self.ctx = ctx
        self.config = config or SecgroupsConfig()
        self._checker: asyncio.Task[None] | None = None
        self._nftwatch: NftWatch | None = None
        self._manager: Any = None
        self.scope: GroupScope | None = None
        tenants = ctx.tenants
        if isinstance(tenants, TenantService):
            self.scope = GroupScope(lambda name: tenants.owner("instance", name), tenants.exists)
            service.instance_tenant = lambda name: tenant_key(tenants.owner("instance", name))
            service.tenant_exists = tenants.exists
            tenants.resource_exists["security group"] = service.has_group
            service.record_owner = self._record_owner

    def _record_owner(self, group_id: str, tenant: str | None) -> None:
        tenants = self.ctx.tenants
        if isinstance(tenants, TenantService):
            tenants.set_owner("security group", group_id, tenant)

    def router(self) -> APIRouter:
        return build_router(self.service, self.scope)

    # the instance manager's check of a template's or request's groups (before a create)
    def check_groups(self, owner: str | None, interfaces: dict[str, list[str]]) -> None:
        self.service.check_interface_groups(tenant_key(owner), interfaces)

    def _instances(self) -> Any:
        part = self.ctx.parts.get("instances")
        return getattr(part, "manager", None)

    async def start(self) -> None:
        await asyncio.to_thread(self.service.load)
        manager = self._instances()
        if manager is None:
            log.warning("secgroups: no [instances] part: nothing to filter")
            return
        self._manager = manager
        self.service.networks = _ManagerNetworks(manager)
        manager.port_hook = self
        if manager.pools:  # the instances part started first (its pools exist from start)
            await asyncio.to_thread(self.restored)
        # A switch of ours restarted under us gets its tables back before its bridges get
        # their learning-switch flow (fluidedge.ovs.bridges.revive).
        ovs_bridges.add_restorer(self._restore_switch)
        if self.config.check_interval_s > 0:
            # The kernel's word that a table of ours was deleted wakes the check at once
            # (fluidedge.secgroups.nftwatch), in each namespace with networks as they come.
            driver = self.service.driver
            self._nftwatch = NftWatch(driver.heal)
            driver.watcher = self._nftwatch.watch
            await asyncio.to_thread(self._nftwatch.watch, driver.namespaces())
            # Every interval: re-install the rules something took away from outside (see
            # FirewallDriver.heal), and restart a watcher that died; a failing check is
            # logged once per distinct failure.
            self._checker = asyncio.create_task(
                every(
                    self.config.check_interval_s,
                    self._check_rules,
                    log,
                    "secgroups: the check of the installed rules",
                    "rules_check_failed",
                )
            )

    def _check_rules(self) -> None:
        driver = self.service.driver
        try:
            driver.heal()
        finally:
            if self._nftwatch is not None:
                self._nftwatch.watch(driver.namespaces())

    def _restore_switch(self, _netns: str | None) -> None:
        """Put the tables back on the bridges of a restarted switch (raises if it cannot)."""
        self.service.driver.heal()

    # the instance manager's PortHook
    def ports_up(self, inst: Any, request: Any, template: Any) -> None:
        self.service.ports_up(inst, request, template)

    def ports_down(self, name: str) -> None:
        self.service.ports_down(name)

    def restored(self) -> None:
        manager = self._manager
        if manager is None:
            return
        networks = _ManagerNetworks(manager)
        self.service.restore_ports(list(manager.instances.values()), networks.netns_names())

    async def stop(self) -> None:
        ovs_bridges.remove_restorer(self._restore_switch)
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        if self._nftwatch is not None:
            self.service.driver.watcher = None
            await asyncio.to_thread(self._nftwatch.close)
            self._nftwatch = None
        manager = self._manager
        if manager is not None and getattr(manager, "port_hook", None) is self:
            manager.port_hook = None

    def metrics(self) -> str:
        ports = self.service.list_ports()
        program = self.service.driver.program
        rules = program.rule_count() if program is not None else 0
        return (
            "# HELP fluidedge_secgroups_ports filtered instance interfaces\n"
            "# TYPE fluidedge_secgroups_ports gauge\n"
            f"fluidedge_secgroups_ports {sum(1 for p in ports if p.port_security)}\n"
            "# HELP fluidedge_secgroups_clauses compiled accept clauses over all ports\n"
            "# TYPE fluidedge_secgroups_clauses gauge\n"
            f"fluidedge_secgroups_clauses {rules}\n"
        )


def create_part(section: dict[str, Any], ctx: DaemonContext) -> SecgroupsPart:
    try:
        config = SecgroupsConfig.model_validate(section)
    except ValidationError as exc:
        raise InvalidSecgroup(f"config [secgroups]: {exc}") from exc
    # Linux-bridge networks render to nftables, ovs networks to OpenFlow on our own switch,
    # ovn networks (a node with instances.ovn) to OVN ACLs in the northbound database.
    split = SplitRenderer(NftRenderer(), OvsRenderer(ovs_bridges.switch))
    ovn = OvnSplit(
        split,
        OvnRenderer(
            ovn_networks.nbctl,
            lambda port: ovn_networks.lsp_name(port.device),
            node=ovn_networks.node_name,
            owns_port=ovn_networks.is_local_lsp,
        ),
        lambda binding: ovn_networks.is_ovn_network(binding.network),
    )
    service = SecgroupService(
        Tables(ctx.store), FirewallDriver(ovn, ovn.conntrack(split.conntrack(Conntrack())))
    )
    return SecgroupsPart(service, ctx, config)
