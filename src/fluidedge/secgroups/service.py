"""The security-group service: declared state (store), the API's operations, the instance hook.

It owns the groups and each instance interface's settings, persists them, and drives the
:class:`~fluidedge.secgroups.driver.FirewallDriver`. Each change is checked by compiling the
would-be model first (a malformed rule is a 400, a rule whose fields contradict each other or
that names an unknown group a 422; either changes nothing), then stored, then applied in one
``defer_apply`` batch.

Instances: the instance manager calls :meth:`ports_up` after an instance's addresses are set
and *before* its workload starts (a hostile workload never runs unfiltered), :meth:`ports_down`
when it goes, and :meth:`restored` after re-adopting instances at start, which restores every
port and reconciles what is installed (tables of networks without ports are removed).

Tenants: a group belongs to a tenant (its ``tenant`` field, stored with it;
:data:`~fluidedge.secgroups.model.DEFAULT_TENANT` is the admin's); each tenant has a default
group (neutron's: ingress only from members, egress open), the default for interfaces that name
none. A port belongs to its instance's tenant (:attr:`SecgroupService.instance_tenant`, the
tenants part's ownership of the instance). References never cross tenants: a rule's remote
group is of its group's tenant, a port's groups are of its tenant; another tenant's group is
refused with the very message of a missing one (it must not reveal that it exists). Who may
see and change which group through the API is :mod:`fluidedge.secgroups.scoping`'s.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from fluidedge.errors import FluidedgeError
from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.driver import FirewallDriver
from fluidedge.secgroups.errors import (
    FilterFailure,
    GroupInUse,
    GroupNotFound,
    InvalidSecgroup,
    SecgroupUnprocessable,
    ZonesExhausted,
)
from fluidedge.secgroups.model import (
    DEFAULT_TENANT,
    RESERVED_GROUP_IDS,
    ZONE_MAX,
    ZONE_MIN,
    AddressPair,
    Port,
    Rule,
    SecurityGroup,
    default_group,
)
from fluidedge.secgroups.nft import Binding
from fluidedge.secgroups.persist import Tables

log = logging.getLogger("fluidedge.secgroups")


def default_group_id(tenant: str) -> str:
    """The id of ``tenant``'s default group (group ids are global, hence the prefix)."""
    return "default" if tenant == DEFAULT_TENANT else f"{tenant}-default"[:32]


class GroupSite(Protocol):
    """Where the admin's groups are shared with the other nodes of a site (the cluster part);
    :class:`OneNode` when the daemon is a node of none."""

    def group_changed(self, group: SecurityGroup) -> None:
        """The admin created or changed ``group`` here: every node gets it."""

    def delete_shared(self, kind: str, name: str, delete: Callable[[], None]) -> None:
        """The admin deletes ``name`` (``kind`` ``secgroups``): ``delete`` it here and from
        the site as one step."""


class OneNode:
    """No site: groups are this node's only."""

    def group_changed(self, group: SecurityGroup) -> None:
        del group

    def delete_shared(self, kind: str, name: str, delete: Callable[[], None]) -> None:
        del kind, name
        delete()


class NetworkLookup(Protocol):
    """Where a network's bridge is (the instance manager's networks)."""

    def binding(self, network: str) -> Binding | None: ...

    def netns_names(self) -> set[str | None]: ...


ZONE_FIRST = ZONE_MIN + 99  # below: left to other users of conntrack zones


def pick_zone(used: set[int], seed: str) -> int | None:
    """A conntrack zone for a new network: the first free one from a point that ``seed`` (the
    network's bridge, unique in its namespace) picks, wrapping around; None when all are taken.

    WHY: a namespace's conntrack table is shared by every bridge in it, including other
    daemons' networks (one daemon per state directory, several per host). Two networks in one
    zone with the same address plan share connection state: a connection one network's rules
    allowed lets the same 5-tuple through the other's (the ephemeral port of a client is a
    hash of its addresses, so it repeats across namespaces). Zones set by tables already
    installed are in ``used``; the seeded start keeps two daemons that allocate at the same
    moment apart.
    """
    span = ZONE_MAX - ZONE_FIRST + 1
    start = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % span
    for i in range(span):
        zone = ZONE_FIRST + (start + i) % span
        if zone not in used:
            return zone
    return None


def stale_networks(present: Iterable[str], used: set[str], mine: Callable[[str], bool]) -> set[str]:
    """The networks whose installed tables a start removes: this daemon's (``mine``) that no
    port uses any more.

    WHY not every table with our prefix: the namespace may hold another daemon's networks
    (one daemon per state directory, several per host). Removing their tables would switch
    their filtering off; it did, when two test suites ran at once and each restart wiped the
    other daemon's tables.
    """
    return {n for n in present if n not in used and mine(n)}


def _stored_group(doc: dict[str, Any]) -> SecurityGroup:
    """A stored group as the model makes it. What the model refuses is a ``ValueError``:
    :func:`fluidedge.core.rows.load` then sets the row aside instead of stopping the start."""
    try:
        return SecurityGroup.from_json(doc)
    except InvalidSecgroup as exc:
        raise ValueError(str(exc)) from exc


def _stored_setting(doc: dict[str, Any]) -> dict[str, Any]:
    """An interface's stored settings, checked as :meth:`SecgroupService._ports_of` uses them
    when it restores the port (what it would refuse is a ``ValueError`` here, at load): the
    model's checks, on a stand-in port of these settings."""
    secure = doc.get("port_security", True)
    if not isinstance(secure, bool):
        raise TypeError(f"port_security: {secure!r} is not true or false")
    pairs = doc.get("allowed_address_pairs", [])
    groups = doc.get("security_groups")
    if not isinstance(pairs, list) or not all(isinstance(p, str) for p in pairs):
        raise TypeError("allowed_address_pairs: must be a list of IP prefixes")
    if groups is not None and (
        not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)
    ):
        raise TypeError("security_groups: must be a list of group ids or null")
    try:
        Port(
            id="stored.port",
            device="stored",
            network="stored",
            zone=ZONE_MIN,
            mac="02:00:00:00:00:01",
            allowed_address_pairs=tuple(
                AddressPair(ipaddress.ip_network(p, strict=False)) for p in pairs
            ),
            port_security=secure,
            groups=tuple(groups or []) if secure else (),
        )
    except InvalidSecgroup as exc:
        raise ValueError(str(exc)) from exc
    return doc


#: The settings of an interface whose stored ones were set aside: port security on and no
#: group, so nothing passes until its groups are declared again (fail closed).
CLOSED: dict[str, Any] = {
    "port_security": True,
    "allowed_address_pairs": [],
    "security_groups": [],
}


class SecgroupService:
    def __init__(self, tables: Tables, driver: FirewallDriver) -> None:
        self.tables = tables
        self.driver = driver
        self.networks: NetworkLookup | None = None
        # The tenant of an instance's ports (the part sets the tenants part's ownership);
        # raises when the instance's owner cannot have groups (scoping.tenant_key).
        self.instance_tenant: Callable[[str], str] = lambda name: DEFAULT_TENANT
        # Whether a tenant still exists (the part sets the tenants part's): a deleted
        # tenant's default group may go.
        self.tenant_exists: Callable[[str], bool] = lambda tenant: True
        # The site groups are shared with (the cluster part sets itself), and how a tenant's
        # group is recorded as the tenant's in the tenants part (the part sets it).
        self.site: GroupSite = OneNode()
        self.record_owner: Callable[[str, str | None], None] = lambda group, tenant: None
        self._groups: dict[str, SecurityGroup] = {}
        self._settings: dict[tuple[str, str], dict[str, Any]] = {}
        self._zones: dict[str, int] = {}
        self._lock = threading.RLock()

    # -- start ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read groups, port settings and zones from the store; make the default group.

        A row that does not decode is set aside (:mod:`fluidedge.core.rows`), and so, in
        turn, is what names a group no longer stored: a group whose rule has it as remote
        group (no port in that group would compile) and an interface's settings (its port
        would not restore). The part starts with the rest.

        An interface whose settings were set aside is **closed**, not given its tenant's
        default group: port security on, no group, nothing passes (:data:`CLOSED`, stored)
        until its groups are declared again (``PUT .../security-groups``). What the lost
        settings allowed is unknown, and a default group may allow more."""
        with self._lock:
            closed: list[tuple[str, str]] = []
            groups = {g.id: g for g in self.tables.stored_groups(_stored_group)}
            settings = dict(self.tables.stored_ports(_stored_setting, closed.append))
            self._groups.update(self._settled_groups(groups))
            self._settings = self._settled_settings(settings, closed)
            self._close(closed)
            self._zones = self.tables.stored_zones()
            self.ensure_default_group(DEFAULT_TENANT)
            with self.driver.defer_apply():
                for group in self._groups.values():
                    self.driver.set_group(group)

    def _settled_groups(self, groups: dict[str, SecurityGroup]) -> dict[str, SecurityGroup]:
        """``groups`` without those whose rules name a missing remote group (each set
        aside), until none does (the admin's default group is made again if missing)."""
        while True:
            dangling = {
                g.id: r.remote_group
                for g in groups.values()
                for r in g.rules
                if r.remote_group is not None
                and r.remote_group not in groups
                and r.remote_group != default_group_id(DEFAULT_TENANT)
            }
            if not dangling:
                return groups
            for group_id, remote in sorted(dangling.items()):
                self.tables.set_aside_group(
                    group_id,
                    f"security group {group_id!r} names remote group {remote!r}, not stored "
                    "(set aside, or never stored): its ports would not compile",
                )
                del groups[group_id]

    def _close(self, closed: list[tuple[str, str]]) -> None:
        """Close the interfaces whose settings were set aside (see :meth:`load`)."""
        for instance, ifname in closed:
            self._settings[(instance, ifname)] = dict(CLOSED)
            log.error(
                "secgroups: interface %s/%s: its stored settings were set aside; closed (no "
                "security group: nothing passes) until its groups are declared again",
                instance,
                ifname,
                extra={"part": "secgroups", "event": "port_closed", "ids": instance},
            )
        for instance in sorted({i for i, _ in closed}):
            self.tables.put_ports(
                instance, {n: doc for (i, n), doc in self._settings.items() if i == instance}
            )

    def _settled_settings(
        self, settings: dict[tuple[str, str], dict[str, Any]], closed: list[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """``settings`` without those naming a group that is not stored (each set aside,
        added to ``closed``)."""
        kept = {}
        for (instance, ifname), doc in settings.items():
            missing = [
                g
                for g in doc.get("security_groups") or []
                if g not in self._groups and g != default_group_id(DEFAULT_TENANT)
            ]
            if missing and doc.get("port_security", True):
                self.tables.set_aside_port(
                    instance,
                    ifname,
                    f"interface {instance}/{ifname} names security group {missing[0]!r}, not "
                    "stored (set aside, or never stored): its port would not restore",
                )
                closed.append((instance, ifname))
            else:
                kept[(instance, ifname)] = doc
        return kept

    def ensure_default_group(self, tenant: str) -> SecurityGroup:
        with self._lock:
            gid = default_group_id(tenant)
            group = self._groups.get(gid)
            if group is None:
                group = default_group(tenant, gid)
                self.tables.put_group(group.to_json())
                self._groups[gid] = group
                self.driver.set_group(group)
            elif group.tenant != tenant:  # never another's group as this tenant's default
                raise GroupInUse(f"security group {gid!r} is not tenant {tenant}'s default group")
            return group

    def restore_ports(
        self, instances: Iterable[Any], installed_netns: Iterable[str | None]
    ) -> None:
        """Filter every re-adopted instance again and reconcile installed tables: stored
        settings of instances that are gone are dropped; tables of networks with no port
        are removed (nothing stale, and one table per network: no duplicates)."""
        with self._lock:
            live: set[str] = set()
            try:
                with self.driver.defer_apply():
                    for inst in instances:
                        live.add(inst.name)
                        ports = self._ports_of(inst, None, None, restoring=True)
                        for port in ports:
                            self._bind(port.network)
                            self.driver.prepare_port_filter(port)
            except FilterFailure as exc:
                # A network whose switch is down or whose namespace went (a start after a
                # reboot) must not refuse the start of the node: its rules stay pending, and
                # every check of the part tries them again (FirewallDriver.retry_pending).
                log.error(
                    "secgroups: rules not installed at start (%s): pending, tried again at "
                    "every check",
                    exc,
                    extra={"part": "secgroups", "event": "rules_pending"},
                )
            for instance, _ in list(self._settings):
                if instance not in live:
                    self.tables.delete_ports(instance)
                    self._settings = {k: v for k, v in self._settings.items() if k[0] != instance}
            self._reconcile(installed_netns)

    def _reconcile(self, installed_netns: Iterable[str | None]) -> None:
        renderer = self.driver.renderer
        installed = getattr(renderer, "installed_networks", None)
        if installed is None:
            return
        used = {p.network for p in self.driver.ports().values()}
        for netns in installed_netns:
            try:
                present = installed(netns)
            except Exception as exc:  # a namespace that went away: nothing installed there
                log.warning("secgroups: cannot list tables in %s: %s", netns, exc)
                continue
            for network in sorted(stale_networks(present, used, self._mine)):
                log.info("secgroups: removing stale tables of network %s", network)
                renderer.remove_network(Binding(network=network, bridge="-", netns=netns))

    def _mine(self, network: str) -> bool:
        """Whether ``network`` is this daemon's: it gave it a zone, or it is configured."""
        if network in self._zones:
            return True
        return self.networks is not None and self.networks.binding(network) is not None

    # -- groups -----------------------------------------------------------------------------

    def list_groups(self, tenant: str | None = None) -> list[SecurityGroup]:
        with self._lock:
            return [
                g for _, g in sorted(self._groups.items()) if tenant is None or g.tenant == tenant
            ]

    def has_group(self, group_id: str) -> bool:
        return group_id in self._groups

    def get_group(self, group_id: str) -> SecurityGroup:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise GroupNotFound(f"security group {group_id!r} does not exist")
            return group

    def create_group(self, doc: Mapping[str, Any], tenant: str = DEFAULT_TENANT) -> SecurityGroup:
        with self._lock:
            group = self._parse_group(doc, tenant)
            if group.id in RESERVED_GROUP_IDS:  # the API refuses it first (its schema says so)
                raise InvalidSecgroup(
                    f"id: {group.id!r} is reserved (/v1/security-groups/{group.id} is a listing)"
                )
            if group.id in self._groups:
                raise GroupInUse(f"security group {group.id!r} already exists")
            self._commit(group)
            return group

    def replace_group(self, group_id: str, doc: Mapping[str, Any]) -> SecurityGroup:
        """PUT: the group's description and whole rule list (its id and tenant stay)."""
        with self._lock:
            old = self.get_group(group_id)
            body = {**doc, "id": group_id, "tenant": old.tenant}
            group = self._parse_group(body, old.tenant)
            self._commit(group)
            return group

    def delete_group(self, group_id: str) -> None:
        with self._lock:
            group = self.get_group(group_id)
            if group_id == default_group_id(group.tenant) and (
                group.tenant == DEFAULT_TENANT or self.tenant_exists(group.tenant)
            ):
                raise GroupInUse(f"{group_id!r} is tenant {group.tenant}'s default group")
            users = sorted(p.id for p in self.driver.ports().values() if group_id in p.groups)
            if users:
                raise GroupInUse(f"security group {group_id!r} is used by ports {', '.join(users)}")
            refs = sorted(
                g.id
                for g in self._groups.values()
                if g.id != group_id and any(r.remote_group == group_id for r in g.rules)
            )
            if refs:
                raise GroupInUse(
                    f"security group {group_id!r} is the remote group of rules of {', '.join(refs)}"
                )
            self.tables.delete_group(group_id)
            del self._groups[group_id]
            self.driver.remove_group(group_id)

    @staticmethod
    def shared_on_site(group: SecurityGroup) -> bool:
        """Whether a site shares ``group``: every group but a tenant's default one (each node
        makes that itself, when it first needs it)."""
        return group.tenant == DEFAULT_TENANT or group.id != default_group_id(group.tenant)

    def site_groups(self) -> list[SecurityGroup]:
        """The groups a site shares (the admin's and the tenants')."""
        return [g for g in self.list_groups() if self.shared_on_site(g)]

    def put_site_group(self, doc: Mapping[str, Any]) -> bool:
        """Make the site's version of a group here (the cluster part's pass): created if
        missing (a tenant's recorded as the tenant's), replaced if it differs. Whether
        anything changed. A tenant's group waits for its tenant (the same pass makes it)."""
        with self._lock:
            group = SecurityGroup.from_json(doc)
            if not self.shared_on_site(group):
                raise InvalidSecgroup(f"site group {group.id!r}: a tenant's default group")
            old = self._groups.get(group.id)
            if old is not None and old == group:
                return False
            if old is not None and old.tenant != group.tenant:
                raise GroupInUse(f"security group {group.id!r} is tenant {old.tenant}'s here")
            if group.tenant != DEFAULT_TENANT and not self.tenant_exists(group.tenant):
                raise GroupNotFound(f"site group {group.id!r}: tenant {group.tenant} not here yet")
            body = {"description": group.description, "rules": [r.to_json() for r in group.rules]}
            if old is None:
                if group.tenant != DEFAULT_TENANT:
                    self.ensure_default_group(group.tenant)
                self.create_group({"id": group.id, **body}, group.tenant)
                if group.tenant != DEFAULT_TENANT:
                    self.record_owner(group.id, group.tenant)
            else:
                self.replace_group(group.id, body)
            return True

    def delete_with_owner(self, group_id: str) -> None:
        """Delete a group (refused while used here), and a tenant's no longer recorded as the
        tenant's: the API's deletion, and a pass's of a group that left the site."""
        with self._lock:
            tenant = self.get_group(group_id).tenant
            self.delete_group(group_id)
            if tenant != DEFAULT_TENANT:
                self.record_owner(group_id, None)

    def add_rule(self, group_id: str, doc: Mapping[str, Any]) -> Rule:
        with self._lock:
            group = self.get_group(group_id)
            body = dict(doc)
            body.setdefault("id", "r-" + secrets.token_hex(4))
            rule = Rule.from_json(body)
            if group.rule(rule.id) is not None:
                raise GroupInUse(f"rule {rule.id!r} already exists in {group_id!r}")
            updated = SecurityGroup(
                id=group.id,
                tenant=group.tenant,
                rules=(*group.rules, rule),
                description=group.description,
            )
            self._commit(updated)
            return rule

    def delete_rule(self, group_id: str, rule_id: str) -> None:
        with self._lock:
            group = self.get_group(group_id)
            if group.rule(rule_id) is None:
                raise GroupNotFound(f"security group {group_id!r} has no rule {rule_id!r}")
            updated = SecurityGroup(
                id=group.id,
                tenant=group.tenant,
                rules=tuple(r for r in group.rules if r.id != rule_id),
                description=group.description,
            )
            self._commit(updated)

    def _parse_group(self, doc: Mapping[str, Any], tenant: str) -> SecurityGroup:
        body = dict(doc)
        body.setdefault("tenant", tenant)
        rules = body.get("rules", [])
        if not isinstance(rules, list):
            raise InvalidSecgroup("rules: must be a list")
        body["rules"] = [
            {**r, "id": r.get("id") or f"r-{secrets.token_hex(4)}"} if isinstance(r, dict) else r
            for r in rules
        ]
        for r in body["rules"]:
            if not isinstance(r, dict):
                raise InvalidSecgroup("rules: each rule must be an object")
        return SecurityGroup.from_json(body)

    def _commit(self, group: SecurityGroup) -> None:
        """Check ``group`` against the whole model (remote groups exist, it compiles), store
        it, apply it."""
        groups = {**self._groups, group.id: group}
        for rule in group.rules:
            remote = groups.get(rule.remote_group) if rule.remote_group is not None else None
            # Another tenant's group is answered as a missing one: saying "another tenant's"
            # would reveal it exists (and naming it would take its members' addresses).
            if rule.remote_group is not None and (remote is None or remote.tenant != group.tenant):
                raise SecgroupUnprocessable(
                    f"remote_group: rule {rule.id} names unknown group {rule.remote_group!r}"
                )
        compile_program(self.driver.ports().values(), groups)
        self.tables.put_group(group.to_json())
        self._groups[group.id] = group
        self.driver.set_group(group)

    # -- ports ------------------------------------------------------------------------------

    def list_ports(self) -> list[Port]:
        return sorted(self.driver.ports().values(), key=lambda p: p.id)

    def get_port(self, instance: str, ifname: str) -> Port:
        port = self.driver.ports().get(f"{instance}.{ifname}")
        if port is None:
            raise GroupNotFound(f"instance {instance!r} has no filtered interface {ifname!r}")
        return port

    def set_port_groups(self, instance: str, ifname: str, groups: list[str]) -> Port:
        with self._lock:
            port = self.get_port(instance, ifname)
            if not port.port_security:
                raise SecgroupUnprocessable(
                    f"security_groups: {instance}/{ifname} has port security off"
                )
            self._check_groups(groups, port.tenant)
            updated = Port(**{**port.__dict__, "groups": tuple(groups)})
            compile_program(
                [*(p for p in self.driver.ports().values() if p.id != port.id), updated],
                self._groups,
            )
            key = (instance, ifname)
            setting = {**self._settings.get(key, {}), "security_groups": list(groups)}
            docs = {k[1]: v for k, v in self._settings.items() if k[0] == instance}
            docs[ifname] = setting
            self.tables.put_ports(instance, docs)
            self._settings[key] = setting
            self.driver.update_port_filter(updated)
            return updated

    def _check_groups(self, groups: Iterable[str], tenant: str) -> None:
        """Every group in ``groups`` is ``tenant``'s (another tenant's is as a missing one)."""
        for gid in groups:
            group = self._groups.get(gid)
            if group is None or group.tenant != tenant:
                raise SecgroupUnprocessable(f"security_groups: no group {gid!r} (tenant {tenant})")

    def check_interface_groups(self, tenant: str, interfaces: Mapping[str, Iterable[str]]) -> None:
        """A template's or request's interfaces (name -> groups) name only ``tenant``'s groups
        (the instances part asks before it creates anything)."""
        with self._lock:
            for ifname, groups in interfaces.items():
                for gid in groups:
                    group = self._groups.get(gid)
                    if group is None or group.tenant != tenant:
                        raise SecgroupUnprocessable(
                            f"interfaces.{ifname}.security_groups: no group {gid!r} "
                            f"(tenant {tenant})"
                        )

    # -- the instance manager's hook -------------------------------------------------------

    def ports_up(self, inst: Any, request: Any, template: Any) -> None:
        with self._lock:
            ports = self._ports_of(inst, request, template)
            docs = {
                p.id.split(".", 1)[1]: {
                    "security_groups": list(p.groups),
                    "port_security": p.port_security,
                    "allowed_address_pairs": [str(a.ip_prefix) for a in p.allowed_address_pairs],
                }
                for p in ports
            }
            # The instance's own ports replace what the driver holds for them (an instance
            # made again under its id by its restart policy: its old ports are still there).
            ids = {port.id for port in ports}
            compile_program(
                [*(p for p in self.driver.ports().values() if p.id not in ids), *ports],
                self._groups,
            )
            try:
                with self.driver.defer_apply():
                    for port in ports:
                        self._bind(port.network)
                        self.driver.prepare_port_filter(port)
                self.tables.put_ports(inst.name, docs)
            except Exception:
                with self.driver.defer_apply():
                    for port in ports:
                        self.driver.remove_port_filter(port.id)
                raise
            for ifname, doc in docs.items():
                self._settings[(inst.name, ifname)] = doc

    def ports_down(self, name: str) -> None:
        with self._lock:
            with self.driver.defer_apply():
                for port_id in [p for p in self.driver.ports() if p.split(".", 1)[0] == name]:
                    self.driver.remove_port_filter(port_id)
            self.tables.delete_ports(name)
            self._settings = {k: v for k, v in self._settings.items() if k[0] != name}

    def _ports_of(
        self, inst: Any, request: Any, template: Any, *, restoring: bool = False
    ) -> list[Port]:
        """The ports of an instance: settings from the request/template at create, from the
        store at restore (an instance the store has nothing for gets its tenant's default).

        At restore, groups stored before ownership was checked (another tenant's) are kept
        with a warning: refusing them would stop the daemon's start, or leave the running
        instance unfiltered."""
        from fluidedge.instances.network import mac_for  # noqa: PLC0415

        try:
            tenant = self.instance_tenant(inst.name)
        except FluidedgeError:
            if not restoring:
                raise
            log.warning("secgroups: instance %s: its owner has no groups; the admin's", inst.name)
            tenant = DEFAULT_TENANT
        specs = {i.name: i for i in template.interfaces} if template is not None else {}
        ports = []
        for state in inst.interfaces:
            stored = self._settings.get((inst.name, state.name))
            spec = specs.get(state.name)
            assignment = request.interfaces.get(state.name) if request is not None else None
            if spec is not None:
                secure = spec.port_security
                pairs = list(spec.allowed_address_pairs)
                groups = spec.security_groups
                if assignment is not None and assignment.security_groups is not None:
                    groups = assignment.security_groups
            elif stored is not None:
                secure = bool(stored.get("port_security", True))
                pairs = list(stored.get("allowed_address_pairs", []))
                groups = stored.get("security_groups")
            else:
                secure, pairs, groups = True, [], None
            if not secure:
                groups = []
            elif groups is None:
                groups = [self.ensure_default_group(tenant).id]
            if restoring:  # a missing group is refused as before; another tenant's is kept
                self._check_groups([g for g in groups if g not in self._groups], tenant)
                foreign = [g for g in groups if self._groups[g].tenant != tenant]
                if foreign:
                    log.warning(
                        "secgroups: instance %s (tenant %s) kept in groups of another tenant: %s",
                        inst.name,
                        tenant,
                        ", ".join(foreign),
                    )
            else:
                self._check_groups(groups, tenant)
            ports.append(
                Port(
                    id=f"{inst.name}.{state.name}",
                    device=state.host_ifname,
                    network=state.network,
                    zone=self._zone(state.network),
                    mac=mac_for(state.host_ifname),
                    fixed_ips=tuple(ipaddress.ip_interface(a).ip for a in state.addresses),
                    allowed_address_pairs=tuple(
                        AddressPair(ipaddress.ip_network(p, strict=False)) for p in pairs
                    ),
                    port_security=secure,
                    groups=tuple(groups),
                    tenant=tenant,
                )
            )
        return ports

    def _zone(self, network: str) -> int:
        zone = self._zones.get(network)
        if zone is None:
            used = set(self._zones.values())
            binding = self.networks.binding(network) if self.networks is not None else None
            probe = getattr(self.driver.renderer, "zones_in_use", None)
            if binding is not None and probe is not None:
                try:
                    used |= probe(binding.netns)
                except (FluidedgeError, OSError) as exc:
                    log.warning("secgroups: zones in use in %s unknown: %s", binding.netns, exc)
            seed = binding.bridge if binding is not None else network
            zone = pick_zone(used, seed)
            if zone is None:
                raise ZonesExhausted("zone: every conntrack zone is taken")
            self.tables.put_zone(network, zone)
            self._zones[network] = zone
        return zone

    def _bind(self, network: str) -> None:
        if self.networks is None:
            return
        binding = self.networks.binding(network)
        if binding is not None:
            self.driver.bind_network(binding)
