"""Tenant scoping and admission control of the instance manager's routes.

The routes (:mod:`fluidedge.instances.api`) call this module before the manager: it decides
what a caller sees (:mod:`fluidedge.tenants.scope`), records who owns what is created, and
admits instance requests against the tenant's quota and the host's limits
(:mod:`fluidedge.tenants.admission`), adding the default CPU cap to the request. The manager
itself knows nothing of tenants: names are one node-wide namespace, and a tenant's names start
with ``<tenant>-`` so that they never collide with another tenant's.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.requests import Request

from fluidedge.errors import ConflictError
from fluidedge.instances.errors import NetworkNotFound, TemplateNotFound
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import (
    InstanceRequest,
    NetworkSpec,
    Resources,
    TemplateSpec,
)
from fluidedge.tenants.admission import (
    Admission,
    Ledger,
    Totals,
    check_capabilities,
    cpu_cap,
    demand_of,
    pid_max,
    pids_budget,
)
from fluidedge.tenants.config import AdmissionConfig
from fluidedge.tenants.errors import Forbidden, LimitExceeded
from fluidedge.tenants.models import Quota
from fluidedge.tenants.scope import Principal, Scope, can_see, principal_of
from fluidedge.tenants.service import TenantService

SYS_CLASS_NET = Path("/sys/class/net")


class BridgeExists(ConflictError):
    """A tenant's network must make its own bridge, not adopt one of the host's."""


class Scoped:
    """The manager's routes' view of tenants (``tenants`` None: no tenants, admin only)."""

    def __init__(self, manager: Manager, tenants: TenantService | None) -> None:
        self.manager = manager
        self.tenants = tenants
        self.scope = Scope(tenants) if tenants is not None else None
        self.config = tenants.config if tenants is not None else AdmissionConfig()
        self._ledger = Ledger()
        self._ledger_lock = threading.Lock()
        self.admission = Admission(self.config, self._committed)
        # Pooled shells are made with the CPU cap an ordinary request gets (a warm creation
        # then changes no cgroup knob): the admin's default cap, the one a tenant gets too
        # when the default is on.
        manager.shell_limits = functools.partial(_default_capped, self.config.default_cpu_limit)
        if tenants is not None:
            tenants.usage = self.admission.usage
            tenants.resource_exists.update(
                instance=lambda n: n in manager.instances or n in manager.reserved_names,
                template=lambda n: n in manager.templates,
                network=lambda n: n in manager.networks,
            )

    # ------------------------------------------------------------------ who sees what
    @staticmethod
    def who(request: Request) -> Principal:
        return principal_of(request)

    def owner(self, kind: str, name: str) -> str | None:
        return self.scope.owner(kind, name) if self.scope is not None else None

    def visible(
        self, who: Principal, kind: str, names: Iterable[str], *, shared: Iterable[str] = ()
    ) -> list[str]:
        if self.scope is None:
            return list(names)
        return self.scope.visible(who, kind, names, shared=shared)

    def templates_visible(self, who: Principal, names: Iterable[str]) -> list[str]:
        return self.visible(who, "template", names, shared=self.manager.builtin)

    def instance_filter(self, who: Principal) -> Callable[[str], bool] | None:
        """Which instance names ``who`` may see; None: all of them."""
        if self.scope is None or who.is_admin:
            return None
        return lambda name: can_see(who, self.owner("instance", name))

    def require(self, kind: str, who: Principal, name: str, *, shared: bool = False) -> None:
        if self.scope is not None:
            self.scope.require(who, kind, name, shared=shared)

    def require_template(self, who: Principal, name: str) -> None:
        self.require("template", who, name, shared=name in self.manager.builtin)

    def require_change(self, kind: str, who: Principal, name: str) -> None:
        if self.scope is not None:
            shared = kind == "template" and name in self.manager.builtin
            self.scope.require_change(who, kind, name, shared=shared)

    def unredacted(self, who: Principal, request: Request, name: str) -> bool:
        """Template secrets show to the admin, and to a tenant for its own and built-ins."""
        del request
        if who.is_admin:
            return True
        return who.kind == "tenant" and (
            name in self.manager.builtin or self.owner("template", name) == who.tenant
        )

    def delete(self, kind: str, who: Principal, name: str, remove: Callable[[str], None]) -> None:
        self.require_change(kind, who, name)
        remove(name)
        if kind == "instance":
            with self._ledger_lock:
                self._ledger.remove(name)
        if self.scope is not None:
            self.scope.deleted(kind, name)

    # ------------------------------------------------------------------ creates
    def _owner_for_create(
        self, who: Principal, kind: str, name: str, requested: str | None
    ) -> str | None:
        if self.scope is None:
            if requested is not None:
                raise Forbidden("no tenants on this daemon")
            return None
        return self.scope.owner_for_create(who, kind, name, requested)

    @contextmanager
    def _creating(self, kind: str, name: str, owner: str | None, *, exists: bool) -> Iterator[None]:
        if self.scope is None:
            yield
            return
        with self.scope.creating(kind, name, owner, exists=exists):
            yield

    def _quota(self, tenant: str) -> Quota:
        if self.tenants is None:  # an owner exists only with tenants
            raise Forbidden("no tenants on this daemon")
        return self.tenants.quota(tenant)

    def _check_groups(self, owner: str, interfaces: dict[str, list[str]]) -> None:
        """The security groups a tenant's interfaces name are its own (the [secgroups] part's
        port hook refuses another tenant's as a missing one, before anything is made)."""
        check = getattr(self.manager.port_hook, "check_groups", None)
        if check is not None and any(interfaces.values()):
            check(owner, interfaces)

    def pids_bound(self) -> int:
        return min(self.config.max_pids_per_instance, pids_budget(pid_max(), self.config))

    def create_template(
        self, who: Principal, spec: TemplateSpec, requested: str | None
    ) -> TemplateSpec:
        owner = self._owner_for_create(who, "template", spec.name, requested)
        if spec.resources.pids > self.pids_bound():
            raise LimitExceeded(
                f"resources.pids: {spec.resources.pids} is above the per-instance limit "
                f"{self.pids_bound()} ([admission] max_pids_per_instance, and the host's pid "
                "budget)"
            )
        if owner is not None:
            check_capabilities(owner, self._quota(owner), spec.capabilities)
            if not who.is_admin:
                _no_cos(spec.cos)
                if spec.userns_opt_out is not None:
                    # Without a user namespace the container's root is the host's root: a
                    # hostile tenant must never get that, whatever the reason it gives.
                    raise Forbidden(
                        "userns_opt_out: running without a user namespace is the admin's"
                    )
            actor = Principal("tenant", owner)
            for iface in spec.interfaces:
                if not can_see(actor, self.owner("network", iface.network)):
                    raise NetworkNotFound(
                        f"interfaces.{iface.name}: network {iface.network!r} does not exist"
                    )
            self._check_groups(owner, {i.name: i.security_groups or [] for i in spec.interfaces})
        exists = spec.name in self.manager.templates
        with self._creating("template", spec.name, owner, exists=exists):
            return self.manager.create_template(spec)

    def create_network(
        self, who: Principal, spec: NetworkSpec, requested: str | None
    ) -> NetworkSpec:
        owner = self._owner_for_create(who, "network", spec.name, requested)
        if owner is not None:
            # An ovn network lives where the node's chassis does (the driver refuses any other
            # namespace); any other network of a tenant lives in the host's.
            if spec.netns is not None and spec.driver != "ovn":
                raise Forbidden("netns: a tenant's network lives in the host's namespace")
            if not spec.bridge.startswith(owner):
                raise Forbidden(f"bridge: tenant {owner}'s bridge names start with {owner!r}")
            if spec.driver != "ovn" and (SYS_CLASS_NET / spec.bridge).exists():
                raise BridgeExists(
                    f"bridge: {spec.bridge} exists on the host; a tenant's network makes its own"
                )
        exists = spec.name in self.manager.networks
        with self._creating("network", spec.name, owner, exists=exists):
            return self.manager.create_network(spec)

    # ------------------------------------------------------------------ admission
    def _committed(self) -> dict[str | None, Totals]:
        """What the instances hold per owner: the ledger, kept by the creates and deletes
        made here, rebuilt from the manager when it disagrees on the count (instances
        restored at start, or removed elsewhere: the GUI, a workload that failed)."""
        with self._ledger_lock:
            if len(self._ledger.held) != len(self.manager.instances):
                # list() of a dict's values runs under the GIL without yielding.
                instances = list(self.manager.instances.values())
                self._ledger.reset(
                    [
                        (i.name, self.owner("instance", i.name), demand_of(i.resources))
                        for i in instances
                    ]
                )
            return {owner: Totals(**vars(t)) for owner, t in self._ledger.totals.items()}

    @contextmanager
    def admit_instance(
        self, who: Principal, request: InstanceRequest, requested: str | None
    ) -> Iterator[InstanceRequest]:
        """Admit ``request`` (raises the refusal); yields it with its CPU cap filled in, and
        holds its quota and ownership while the caller creates it."""
        owner = self._owner_for_create(who, "instance", request.name, requested)
        template = self.manager.templates.get(request.template)
        if template is None or (
            owner is not None
            and not can_see(
                Principal("tenant", owner),
                self.owner("template", request.template),
                shared=request.template in self.manager.builtin,
            )
        ):
            raise TemplateNotFound(f"template {request.template!r} does not exist")
        overrides = {k: v for k, v in request.resources.model_dump().items() if v is not None}
        resources = template.resources.model_copy(update=overrides)
        cap = cpu_cap(resources, self.config.default_cpu_limit or None, tenant=owner is not None)
        if cap != resources.cpu_limit:
            resources = resources.model_copy(update={"cpu_limit": cap})
            request = request.model_copy(
                update={"resources": request.resources.model_copy(update={"cpu_limit": cap})}
            )
        tenant = None
        if owner is not None:
            if not who.is_admin:
                _no_cos(request.cos)
            groups = {i.name: i.security_groups or [] for i in template.interfaces}
            for ifname, assignment in request.interfaces.items():
                if assignment.security_groups is not None:
                    groups[ifname] = assignment.security_groups
            self._check_groups(owner, groups)
            tenant = (owner, self._quota(owner), template.capabilities)
        exists = request.name in self.manager.instances
        demand = demand_of(resources)
        with (
            self.admission.admit(request.name, demand, tenant),
            self._creating("instance", request.name, owner, exists=exists),
        ):
            yield request
            with self._ledger_lock:
                self._ledger.add(request.name, owner, demand)


def _no_cos(cos: str | None) -> None:
    """Classes of service (cache ways, the [cat] part) are the host's to hand out: a tenant
    cannot name one (the admin may put a tenant's instance in one)."""
    if cos is not None:
        raise Forbidden(f"cos: classes of service are the admin's; a tenant cannot name {cos!r}")


def _default_capped(default: float, resources: Resources) -> Resources:
    """``resources`` with the CPU cap admission gives a request that names none (the admin's;
    ``default`` 0: uncapped)."""
    cap = cpu_cap(resources, default or None, tenant=False)
    if cap == resources.cpu_limit:
        return resources
    return resources.model_copy(update={"cpu_limit": cap})
