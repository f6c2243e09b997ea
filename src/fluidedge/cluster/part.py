"""The cluster part (config table ``[cluster]``): this daemon as a node of a site.

At start it registers the node in etcd (:mod:`.registry`: record, liveness lease, heartbeat)
and becomes the instance manager's *placer*: ``POST /v1/instances`` on any node either runs
here or is forwarded to the node the request names (``node``) or placement chooses
(:mod:`.placement`, spread/pack over the nodes' reported capacity). A forwarded request is
the same JSON body with ``node`` set to the target, sent to that node's URL with the site's
token (``Authorization: Bearer``) and the header ``X-Fluidedge-Forwarded: <this node>``; a
node that receives a forwarded request naming another node refuses it (no loops). A tenant's
request is placed the same way and forwarded with ``?tenant=<tenant>`` (the target admits it
as the tenant's, against the tenant's quota on the whole site: :meth:`usage_elsewhere`). A
request that names no node while the view of the nodes is stale (etcd out of reach for
longer than a lease): the node keeps serving on its own.

Templates, ``ovn`` networks and security groups the admin creates, changes or deletes through
any node's API are the site's: kept in etcd (``<prefix>/templates/<name>``,
``<prefix>/networks/<name>``, ``<prefix>/secgroups/<id>``) and made, replaced (a group) or
deleted on every node by its pass after each heartbeat (:meth:`ClusterPart.sync_site`; a
network in the node's own chassis namespace). So are tenants and their tokens
(``<prefix>/tenants/<name>``: the record and each token's id and hash, never a token), so a
tenant token works on every node, and so are tenants' security groups. Tenants' templates
and networks stay on their node.

The admin's ``GET`` and ``DELETE /v1/instances/{name}`` of an instance that another live node
runs (its record lists it) are relayed there the same way; so are a tenant's, of an instance
the record says is the tenant's (another's answers 404 here, as a missing one). Answers carry
``X-Fluidedge-Node: <node>`` when another node gave them.

Failover (:mod:`.failover`), after each heartbeat: this node's instances whose template says
``failover = "recreate"`` get a record in etcd; a dead node's recorded instances are
re-created by the live node placement picks (claimed by compare-and-swap); an instance of
this node that another took over meanwhile is deleted here (fencing).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from fastapi import APIRouter
from pydantic import ValidationError

from fluidedge.cluster.api import build_router
from fluidedge.cluster.config import ClusterConfig
from fluidedge.cluster.errors import (
    ClusterError,
    ClusterFailure,
    ClusterInvalid,
    NodeUnavailable,
)
from fluidedge.cluster.etcd import Etcd, JsonObject
from fluidedge.cluster.failover import Record, plan, request_of
from fluidedge.cluster.garp import announce
from fluidedge.cluster.persist import PendingTable, SeenTable
from fluidedge.cluster.placement import USAGE_KEYS, NodeState, choose
from fluidedge.cluster.registry import Registry
from fluidedge.core.openapi import ERROR_HEADER
from fluidedge.core.part import DaemonContext
from fluidedge.errors import FluidedgeError
from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from fluidedge.ovn import networks as ovn_networks
from fluidedge.ovn.errors import OvnError
from fluidedge.ovn.nbctl import Nbctl
from fluidedge.tenants.models import Usage

# The key a site object (template, network) of a tenant's names its tenant under.
TENANT_FIELD = "fluidedge_tenant"
_T = TypeVar("_T")

# The instance manager's refusal for lack of room, as the error header names it (its class).
ADMISSION_REFUSED = "AdmissionRefused"

log = logging.getLogger("fluidedge.cluster")

FORWARDED = "x-fluidedge-forwarded"


def _owned(body: JsonObject, tenant: str | None) -> JsonObject:
    return {**body, TENANT_FIELD: tenant} if tenant is not None else body


class ClusterPart:
    name = "cluster"

    def __init__(self, config: ClusterConfig, ctx: DaemonContext) -> None:
        self.config = config
        self.ctx = ctx
        self.token = config.read_token()
        self.etcd = Etcd(config.etcd, verify=config.etcd_verify())
        self.registry = Registry(config, self.etcd, self.report, self.after_beat)
        self._failover_thread: threading.Thread | None = None
        self._manager: Any = None
        self._was_site: Any = None  # the security groups' site before this part took it
        self._was_tenant_site: Any = None  # and the tenants'
        self._http: httpx.AsyncClient | None = None
        self._verify = config.verify()  # node-to-node HTTPS: the site's CA (cluster.ca_file)
        self._sync_http = httpx.Client(timeout=config.forward_timeout, verify=self._verify)
        self.forwarded = 0
        self.taken_over = 0
        self.takeover_failures = 0
        self.fenced = 0
        self.ports_removed = 0
        self._site_lock = threading.Lock()  # a pass, or an API deletion here
        # The site's objects of a kind at the last pass, kept in the store: a node down while
        # one was deleted through another node deletes its copy at its first pass back.
        self._seen_table = SeenTable(ctx.store)
        self._seen: dict[str, set[str]] = self._seen_table.load()
        self._failed: dict[str, set[str]] = {}  # what could not be made or deleted: logged once
        # Site writes that failed (etcd out of reach), written at the next pass (persist.py).
        self._pending_table = PendingTable(ctx.store)
        self._pending = self._pending_table.load()
        self._pending_lock = threading.RLock()  # a write of a key and its pending entry

    def router(self) -> APIRouter:
        return build_router(self.registry)

    def _secgroups(self) -> Any:
        """The security-group service (``[secgroups]``), if the daemon runs one."""
        part = self.ctx.parts.get("secgroups")
        return getattr(part, "service", None)

    def _tenants(self) -> Any:
        """The daemon's tenant service (it always has one; typed loosely below tenants)."""
        tenants = self.ctx.tenants
        return tenants if getattr(tenants, "site", None) is not None else None

    def _instances(self) -> Any:
        return getattr(self.ctx.parts.get("instances"), "manager", None)

    def _scoped(self) -> Any:
        """The instance routes' tenants view (ownership, admission), if any."""
        return getattr(self.ctx.parts.get("instances"), "scoped", None)

    def report(self) -> JsonObject:
        """This node's capacity, committed resources and instances (its record's body)."""
        manager = self._manager
        if manager is None:
            return {"capacity": {}, "committed": {}, "instances": []}
        cap = manager.capacity
        with manager.lock:
            loads = sum(manager.usage.loads.values())
            committed = manager.usage.committed_mb
            names = sorted(manager.instances)
        tenants: JsonObject = {}
        owners: JsonObject = {}
        scoped = self._scoped()
        if scoped is not None:  # tenants' usage here (a quota is the site's) and ownership
            for owner, usage in scoped.admission.local_usages().items():
                if owner is not None and usage.instances:
                    tenants[owner] = usage.model_dump()
            for name in names:
                owner = scoped.owner("instance", name)
                if owner is not None:
                    owners[name] = owner
        return {
            "capacity": {
                "cpus": round(len(cap.cpus) * cap.cpu_overcommit, 3),
                "memory_mb": int(cap.memory_mb * cap.memory_overcommit),
            },
            "committed": {"cpus": round(loads, 3), "memory_mb": committed},
            "instances": names,
            "tenants": tenants,
            "owners": owners,
        }

    def usage_elsewhere(self, tenant: str) -> Usage:
        """What ``tenant``'s instances hold on the other live nodes (their records, at most
        a heartbeat old)."""
        total = dict.fromkeys(USAGE_KEYS, 0.0)
        for node in self._others():
            for key, value in node.tenants.get(tenant, {}).items():
                total[key] += value
        return Usage(
            instances=int(total["instances"]),
            cpus=round(total["cpus"], 6),
            memory_mb=int(total["memory_mb"]),
            pids=int(total["pids"]),
        )

    def after_beat(self) -> None:
        """Failover in a thread of its own: re-creations must not delay the heartbeats (a
        node busy taking over must not miss its own lease)."""
        thread = self._failover_thread
        if thread is not None and thread.is_alive():
            return  # the last pass is still at work; the next beat looks again
        self._failover_thread = threading.Thread(
            target=self._failover_pass, name="cluster-failover", daemon=True
        )
        self._failover_thread.start()

    def _failover_pass(self) -> None:
        try:
            self.sync_site()
            self.failover()
        except ClusterError as exc:
            log.warning("cluster: failover pass: %s", exc)

    # the site's templates and ovn networks: <prefix>/<kind>/<name>, written by the node
    # whose API made them, made and deleted on every node by its pass
    def _publish(self, kind: str, name: str, value: JsonObject) -> None:
        self._write_site(kind, name, value)

    def _unpublish(self, kind: str, name: str) -> None:
        self._write_site(kind, name, None)

    def _write_site(self, kind: str, name: str, value: JsonObject | None) -> bool:
        """Put (or, ``value`` None, delete) the site's copy of an object; when etcd is out of
        reach, keep the write for the passes to come (the latest one per object wins)."""
        with self._pending_lock:
            try:
                if value is None:
                    self.etcd.delete(self.registry.key(kind, name))
                else:
                    self.etcd.put(self.registry.key(kind, name), value)
            except ClusterError as exc:
                if (kind, name) not in self._pending:
                    log.warning(
                        "cluster: %s %s: the site is out of reach (%s); written at a later pass",
                        kind,
                        name,
                        exc,
                    )
                self._pending[(kind, name)] = value
                self._pending_table.put(kind, name, value)
                return False
            if (kind, name) in self._pending:
                del self._pending[(kind, name)]
                self._pending_table.drop(kind, name)
            return True

    def _flush_pending(self) -> None:
        """The writes the site still owes, before the pass reads it: what was made here while
        etcd was out of reach reaches the site; what was deleted here leaves it (and is not
        made here again from its copy). Stops at the first that fails (etcd still away)."""
        with self._pending_lock:
            for (kind, name), value in sorted(self._pending.items()):
                if not self._write_site(kind, name, value):
                    return
                log.info("cluster: %s %s written to the site at last", kind, name)

    def template_created(self, spec: Any, tenant: str | None = None) -> None:
        self._publish("templates", spec.name, _owned(spec.model_dump(mode="json"), tenant))

    def delete_shared(self, kind: str, name: str, delete: Callable[[], None]) -> None:
        """Delete here and from the site under the pass's lock: a pass between the two must
        not make the object here again from the site's copy."""
        with self._site_lock:
            delete()
            self._unpublish(kind, name)

    def tenant_changed(self, name: str) -> None:
        """Tenant ``name`` or its tokens changed here: the site's version (the tokens'
        hashes, never a token)."""
        tenants = self._tenants()
        if tenants is not None:
            self._publish("tenants", name, tenants.site_view(name))

    def change_shared(self, name: str, change: Callable[[], _T]) -> _T:
        """``change`` to tenant ``name`` and its publication, under the lock a pass holds:
        a pass never applies a version of the site read before the change (see
        :meth:`fluidedge.tenants.service.TenantSite.change_shared`)."""
        with self._site_lock:
            out = change()
            self.tenant_changed(name)
            return out

    def owned_elsewhere(self, name: str) -> list[str]:
        """Instances tenant ``name`` owns on the other live nodes (their records): a tenant is
        not deleted from the site while it runs something anywhere."""
        return sorted(
            instance
            for node in self._others()
            for instance, owner in node.owners.items()
            if owner == name
        )

    def group_changed(self, group: Any) -> None:
        """The admin created or changed security group ``group`` here: the site's version."""
        self._publish("secgroups", group.id, group.to_json())

    def network_created(self, spec: Any, tenant: str | None = None) -> None:
        if spec.driver == "ovn":  # a logical switch spans nodes; a bridge is one host's
            self._publish("networks", spec.name, _owned(spec.model_dump(mode="json"), tenant))

    def sync_site(self) -> None:
        """Make here the site's tenants, networks, templates and security groups this node
        lacks (tenants and groups also brought up to date); delete here those that left the
        site since the last pass (one still used here stays until it is not)."""
        manager = self._manager
        if manager is None:
            return
        ovn = manager.config.ovn
        netns = ovn.netns if ovn is not None else None

        def make_network(value: JsonObject) -> None:
            # the same logical switch, plugged through this node's chassis namespace
            body, tenant = self._owner_of(value)
            spec = NetworkSpec.model_validate({**body, "netns": netns})
            self._made("network", spec.name, tenant, lambda: manager.create_network(spec))

        def make_template(value: JsonObject) -> None:
            body, tenant = self._owner_of(value)
            spec = TemplateSpec.model_validate(body)
            self._made("template", spec.name, tenant, lambda: manager.create_template(spec))

        def drop(kind: str, delete: Callable[[str], None]) -> Callable[[str], None]:
            def dropped(name: str) -> None:
                delete(name)
                tenants = self._tenants()
                if tenants is not None and tenants.owner(kind, name) is not None:
                    tenants.set_owner(kind, name, None)

            return dropped

        with self._site_lock:
            self._flush_pending()
            self._sync_tenants()
            self._sync(
                "networks",
                manager.networks,
                make_network,
                drop("network", manager.delete_network),
                set(),
            )
            self._sync(
                "templates",
                manager.templates,
                make_template,
                drop("template", manager.delete_template),
                manager.builtin,
            )
            self._sync_groups()

    def _owner_of(self, value: JsonObject) -> tuple[JsonObject, str | None]:
        """A site object's body and the tenant it is the tenant's of (None: the admin's)."""
        body = dict(value)
        tenant = body.pop(TENANT_FIELD, None)
        if tenant is not None and not isinstance(tenant, str):
            raise ClusterInvalid(f"the site's object has a malformed {TENANT_FIELD}")
        return body, tenant

    def _made(self, kind: str, name: str, tenant: str | None, make: Callable[[], Any]) -> None:
        """Make a site object here, a tenant's recorded as the tenant's (which must be here:
        the pass makes the site's tenants first; otherwise the next pass tries again)."""
        tenants = self._tenants()
        if tenant is None:
            make()
            return
        if tenants is None or not tenants.exists(tenant):
            raise ClusterInvalid(f"{kind} {name}: tenant {tenant} is not on this node yet")
        tenants.set_owner(kind, name, tenant)  # owned before it exists: never the admin's
        try:
            make()
        except BaseException:
            tenants.set_owner(kind, name, None)
            raise

    def _sync_tenants(self) -> None:
        """Tenants and their tokens: made, brought up to date (a token created or revoked
        through another node) or deleted here as the site has them; one that still owns
        something here stays until it does not."""
        tenants = self._tenants()
        if tenants is None:
            return
        self._sync(
            "tenants",
            set(tenants.names()),
            tenants.put_site,
            tenants.delete,
            set(),
            update=lambda name, value: tenants.put_site(value),
        )

    def _sync_groups(self) -> None:
        """Security groups (the admin's and the tenants'): made, replaced (a rule changed
        through another node) or deleted here as the site has them. A group naming a remote
        group the site makes in the same pass, or one still named here by a group leaving,
        waits for the next round of the same pass."""
        service = self._secgroups()
        if service is None:
            return
        for _ in range(4):  # rounds: dependencies between groups resolve in order
            before = {g.id: g.to_json() for g in service.site_groups()}
            self._sync(
                "secgroups",
                set(before),
                service.put_site_group,
                service.delete_with_owner,
                {"default"},
                update=lambda name, value: service.put_site_group(value),
            )
            if not self._failed.get("secgroups"):
                return
            after = {g.id: g.to_json() for g in service.site_groups()}
            if after == before:
                return  # no progress: what failed waits for the next pass

    def _sync(
        self,
        kind: str,
        local: Any,
        make: Callable[[JsonObject], None],
        drop: Callable[[str], None],
        keep: Any,
        *,
        update: Callable[[str, JsonObject], object] | None = None,
    ) -> None:
        prefix = self.registry.key(kind)
        site = {key[len(prefix) :]: value for key, value in self.etcd.get_prefix(prefix).items()}
        failed = self._failed.setdefault(kind, set())
        for name, value in sorted(site.items()):
            if name in local and update is None:
                continue
            try:
                if name in local and update is not None:
                    update(name, value)
                else:
                    make(value)
                failed.discard(name)
            except (FluidedgeError, ValidationError) as exc:
                if name not in failed:
                    log.warning(
                        "cluster: the site's %s %s cannot be made here: %s", kind, name, exc
                    )
                    failed.add(name)
        seen = self._seen.get(kind, set())
        for name in sorted(seen - set(site)):
            if name in local and name not in keep:
                try:
                    drop(name)
                    failed.discard(name)
                except FluidedgeError as exc:
                    if name not in failed:
                        log.warning(
                            "cluster: %s %s left the site, not here yet: %s", kind, name, exc
                        )
                        failed.add(name)
        now = set(site) | {n for n in seen - set(site) if n in local}
        if now != seen:
            self._seen_table.replace(kind, now)
        self._seen[kind] = now

    def failover(self) -> None:
        """After each heartbeat: record, fence, forget and take over (:mod:`.failover`)."""
        manager = self._manager
        if manager is None:
            return
        prefix = self.registry.key("instances")
        records: dict[str, Record] = {}
        for key, (value, revision) in self.etcd.get_revisions(prefix).items():
            name = key[len(prefix) :]
            try:
                records[name] = Record.of(name, value, revision)
            except (KeyError, TypeError, ValueError):
                continue
        with manager.lock:
            instances = dict(manager.instances)
        local = {}
        for name, inst in instances.items():
            template = manager.templates.get(inst.template)
            local[name] = template is not None and template.failover == "recreate"
        me = self.config.node
        scoped = self._scoped()
        todo = plan(me, self.registry.nodes(), records, local, time.time())
        for name in todo.publish:
            inst = instances[name]
            value = {
                "node": me,
                "request": request_of(inst),
                "cpus": inst.resources.cpus,
                "memory_mb": inst.resources.memory_mb,
                "ports": self._ports(manager, inst),
            }
            owner = scoped.owner("instance", name) if scoped is not None else None
            if owner is not None:  # re-created as the tenant's
                value["tenant"] = owner
            self.etcd.put(prefix + name, value)
        for name in todo.fence:
            log.warning(
                "cluster: %s was taken over by %s: deleting it here", name, records[name].node
            )
            try:
                manager.delete_instance(name)
                self.fenced += 1
            except FluidedgeError as exc:
                log.error("cluster: fencing %s: %s", name, exc)
        for name in todo.forget:
            self.etcd.delete(prefix + name)
        for record in todo.take:
            if not self.etcd.swap(prefix + record.name, record.revision, record.taken_by(me)):
                continue  # another node claimed it first
            log.warning("cluster: taking %s over from dead node %s", record.name, record.node)
            self._remove_ports(record)
            try:
                view = self._recreate(manager, record)
                self.taken_over += 1
            except (FluidedgeError, ValidationError) as exc:
                self.takeover_failures += 1
                log.error("cluster: re-creating %s here failed: %s", record.name, exc)
                # Give the claim back (the dead node's again, retried after a delay), so the
                # next pass does not forget a record whose instance runs nowhere.
                back = record.given_back(str(exc), time.time())
                try:
                    self.etcd.put(prefix + record.name, back)
                except ClusterError as put_exc:
                    log.warning("cluster: giving %s back: %s", record.name, put_exc)
                continue
            with manager.lock:
                made = manager.instances.get(record.name)
            if made is not None:  # its own ports, for the next failover; attempts start again
                value = {**record.taken_by(me), "ports": self._ports(manager, made), "attempts": 0}
                try:
                    self.etcd.put(prefix + record.name, value)
                except ClusterError as exc:
                    log.warning("cluster: recording %s's ports: %s", record.name, exc)
            if view.pid is None:
                continue
            if made is not None:
                self._wait_ports_up(manager, self._ports(manager, made))
            for iface in view.interfaces:  # its addresses have a new MAC: tell the network
                try:
                    announce(view.pid, iface.name, list(iface.addresses), 3, 0.5)
                except (FluidedgeError, OSError) as exc:
                    log.warning("cluster: announcing %s %s: %s", view.name, iface.name, exc)

    def _recreate(self, manager: Any, record: Record) -> Any:
        """Create a taken-over instance here, a tenant's recorded as the tenant's first (the
        site's tenants are on every node)."""
        request = InstanceRequest.model_validate(record.request)
        tenants = self._tenants()
        if record.tenant is None or tenants is None:
            return manager.create_instance(request)
        tenants.set_owner("instance", record.name, record.tenant)
        try:
            return manager.create_instance(request)
        except BaseException:
            tenants.set_owner("instance", record.name, None)
            raise

    @staticmethod
    def _ports(manager: Any, inst: Any) -> list[str]:
        """The OVN logical ports of ``inst`` (its interfaces on ``ovn`` networks)."""
        ovn = manager.config.ovn
        if ovn is None:
            return []
        ports = []
        for iface in inst.interfaces:
            network = manager.networks.get(iface.network)
            if network is not None and network.driver == "ovn" and iface.host_ifname:
                ports.append(f"{ovn.chassis}.{iface.host_ifname}")
        return ports

    @staticmethod
    def _wait_ports_up(manager: Any, ports: list[str], timeout: float = 10.0) -> None:
        """Wait until OVN says the new logical ports are up (ovn-controller has installed
        their flows here): announcements sent before would be dropped by the switch."""
        ovn = manager.config.ovn
        if ovn is None or not ports:
            return
        nb = Nbctl(ovn.nb, timeout=timeout)
        for port in ports:
            try:
                nb.run("wait-until", "Logical_Switch_Port", port, "up=true")
            except OvnError as exc:
                log.warning("cluster: port %s not up after %s s: %s", port, timeout, exc)

    def _remove_ports(self, record: Record) -> None:
        """Delete the dead node's logical ports of ``record`` from the NB: bound to a chassis
        that is gone, they would keep the instance's old MAC on the switch until the node
        returns (and fences). The record lists them as the dead node wrote them; never this
        node's own chassis' ports."""
        manager = self._manager
        ovn = manager.config.ovn if manager is not None else None
        if ovn is None or not ovn_networks.configured():
            return
        ports = [p for p in record.ports if not p.startswith(f"{ovn.chassis}.")]
        if not ports:
            return
        try:
            ovn_networks.nbctl().transact([["--if-exists", "lsp-del", p] for p in ports])
            self.ports_removed += len(ports)
        except OvnError as exc:
            log.warning("cluster: removing %s's ports %s: %s", record.name, ports, exc)

    async def start(self) -> None:
        self._manager = self._instances()
        if self._manager is None:
            log.warning("cluster: no [instances] part: the node runs nothing")
        self._http = httpx.AsyncClient(timeout=self.config.forward_timeout, verify=self._verify)
        await asyncio.to_thread(self.registry.start)
        if self._manager is not None:
            self._manager.placer = self
        scoped = self._scoped()
        if scoped is not None:
            scoped.admission.elsewhere = self.usage_elsewhere  # a tenant's quota is the site's
        service = self._secgroups()
        if service is not None:
            self._was_site = service.site
            service.site = self  # security groups are the site's
        tenants = self._tenants()
        if tenants is not None:
            self._was_tenant_site = tenants.site
            tenants.site = self  # tenants and their tokens are the site's

    async def stop(self) -> None:
        manager = self._manager
        if manager is not None and getattr(manager, "placer", None) is self:
            manager.placer = None
        scoped = self._scoped()
        if scoped is not None:
            scoped.admission.elsewhere = None
        service = self._secgroups()
        if service is not None and getattr(service, "site", None) is self:
            service.site = self._was_site
        tenants = self._tenants()
        if tenants is not None and getattr(tenants, "site", None) is self:
            tenants.site = self._was_tenant_site
        await asyncio.to_thread(self.registry.stop)
        thread = self._failover_thread
        if thread is not None:
            await asyncio.to_thread(thread.join, 30)
        self.etcd.close()
        if self._http is not None:
            await self._http.aclose()
        self._sync_http.close()

    # the instance manager's Placer
    def target(
        self,
        request: Any,
        template: Any,
        *,
        admin: bool,
        forwarded: str | None,
        exclude: frozenset[str] = frozenset(),
    ) -> str | None:
        """The node to forward ``request`` to, or ``None`` to run it here; never one of
        ``exclude`` (nodes that refused it for lack of room since the view was read). A
        tenant's request is placed as the admin's: its templates and networks are the
        site's too (a node that lacks one answers 404)."""
        named = request.node
        if named == self.config.node:
            return None
        if forwarded is not None:
            raise NodeUnavailable(
                f"request forwarded by {forwarded!r} names node {named!r}, not this one "
                f"({self.config.node!r}): not forwarded again"
            )
        del admin  # tenants are the site's: their requests are placed alike
        if named is None and not self.registry.fresh():
            # etcd out of reach for longer than a lease: this node keeps serving, locally
            log.warning("cluster: no fresh view of the nodes: %s runs here", request.name)
            return None
        resources = template.resources if template is not None else None
        cpus = request.resources.cpus or (resources.cpus if resources is not None else 0.0)
        memory = request.resources.memory_mb or (
            resources.memory_mb if resources is not None else 0
        )
        node = choose(
            [n for n in self.registry.nodes() if n.name not in exclude],
            float(cpus),
            int(memory),
            request.placement or self.config.placement,
            named,
        )
        return None if node.name == self.config.node else node.name

    async def forward(
        self, node: str, body: JsonObject, tenant: str | None
    ) -> tuple[int, bytes, bool]:
        """Send the request to ``node``; its status and body, and whether it was refused for
        lack of room there (``AdmissionRefused``, named by the error header)."""
        url = next((n.url for n in self.registry.nodes() if n.name == node), None)
        if url is None or self._http is None:
            raise NodeUnavailable(f"node {node!r} is not known here")
        params = {"tenant": tenant} if tenant is not None else None
        try:
            response = await self._http.post(
                f"{url}/v1/instances",
                json={**body, "node": node},
                params=params,
                headers=self._headers(),
            )
        except httpx.HTTPError as exc:
            raise ClusterFailure(f"node {node!r} at {url}: {exc}") from exc
        self.forwarded += 1
        full = response.headers.get(ERROR_HEADER) == ADMISSION_REFUSED
        return response.status_code, response.content, full

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", FORWARDED: self.config.node}

    def _others(self) -> list[NodeState]:
        """The live nodes of the site but this one, as the last read of etcd saw them."""
        return [n for n in self.registry.nodes() if n.alive and n.name != self.config.node]

    def owner(self, name: str) -> str | None:
        """The live node, not this one, whose record lists instance ``name``."""
        return next((n.name for n in self._others() if name in n.instances), None)

    def instance_tenant(self, name: str) -> str | None:
        """The tenant owning instance ``name`` on the other live node that runs it (its
        record; None: the admin's, or no such node)."""
        return next((n.owners.get(name) for n in self._others() if name in n.instances), None)

    def relay(self, node: str, method: str, path: str) -> tuple[int, bytes]:
        """A body-less request for one instance, sent to ``node`` (blocking)."""
        url = next((n.url for n in self.registry.nodes() if n.name == node), None)
        if url is None:
            raise NodeUnavailable(f"node {node!r} is not known here")
        try:
            response = self._sync_http.request(method, f"{url}{path}", headers=self._headers())
        except httpx.HTTPError as exc:
            raise ClusterFailure(f"node {node!r} at {url}: {exc}") from exc
        self.forwarded += 1
        return response.status_code, response.content

    def metrics(self) -> str:
        nodes = self.registry.nodes()
        alive = sum(1 for n in nodes if n.alive)
        return (
            "# HELP fluidedge_cluster_nodes registered nodes by state\n"
            "# TYPE fluidedge_cluster_nodes gauge\n"
            f'fluidedge_cluster_nodes{{state="alive"}} {alive}\n'
            f'fluidedge_cluster_nodes{{state="dead"}} {len(nodes) - alive}\n'
            "# HELP fluidedge_cluster_forwarded_total creations forwarded to another node\n"
            "# TYPE fluidedge_cluster_forwarded_total counter\n"
            f"fluidedge_cluster_forwarded_total {self.forwarded}\n"
            "# HELP fluidedge_cluster_taken_over_total dead nodes' instances re-created here\n"
            "# TYPE fluidedge_cluster_taken_over_total counter\n"
            f"fluidedge_cluster_taken_over_total {self.taken_over}\n"
            "# HELP fluidedge_cluster_takeover_failures_total re-creations that failed here\n"
            "# TYPE fluidedge_cluster_takeover_failures_total counter\n"
            f"fluidedge_cluster_takeover_failures_total {self.takeover_failures}\n"
            "# HELP fluidedge_cluster_fenced_total own instances deleted: taken over elsewhere\n"
            "# TYPE fluidedge_cluster_fenced_total counter\n"
            f"fluidedge_cluster_fenced_total {self.fenced}\n"
            "# HELP fluidedge_cluster_ports_removed_total dead nodes' logical ports removed\n"
            "# TYPE fluidedge_cluster_ports_removed_total counter\n"
            f"fluidedge_cluster_ports_removed_total {self.ports_removed}\n"
            "# HELP fluidedge_cluster_heartbeat_failures_total heartbeats etcd did not take\n"
            "# TYPE fluidedge_cluster_heartbeat_failures_total counter\n"
            f"fluidedge_cluster_heartbeat_failures_total {self.registry.failures}\n"
        )


def create_part(section: dict[str, Any], ctx: DaemonContext) -> ClusterPart:
    try:
        config = ClusterConfig.model_validate(section)
    except ValidationError as exc:
        raise ClusterInvalid(f"config [cluster]: {exc}") from exc
    try:
        return ClusterPart(config, ctx)
    except (OSError, ValueError) as exc:
        raise ClusterInvalid(f"config [cluster]: {exc}") from exc
