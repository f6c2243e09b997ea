"""Tenant-scoped views of security groups and ports (docs/tenants.md's rules, for
``/v1/security-groups``).

Every group carries its ``tenant`` (:data:`~fluidedge.secgroups.model.DEFAULT_TENANT`: the
admin's), stored with the group, so a restart restores who owns it; every port carries the
tenant of its instance (the tenants part's ownership of the instance). Who sees and changes
what:

- the **admin** (the daemon's token): every group and port; what it creates is its own, or
  a tenant's with ``?tenant=NAME`` (the tenant must exist and the id start with ``NAME-``);
- a **tenant** (a tenant token): its own groups and its own instances' ports only; another
  tenant's (and the admin's) do not exist for it: a get, change or delete answers 404 with the
  very message a missing group gets, and lists leave them out. What it creates is its own,
  its id starting with ``<tenant>-`` (403 otherwise, so that ids never collide across
  tenants: a 409 would say another tenant holds the id); ``?tenant=`` naming another tenant is
  a 403;
- **anonymous** readers (``api.open_reads``): the admin's groups and ports only.

References never cross tenants (checked by the service, :mod:`fluidedge.secgroups.service`):
a rule's ``remote_group`` and an interface's ``security_groups`` name groups of the same tenant
as the group or the instance; another tenant's group is answered exactly as a missing one.

Pure policy over two lookups the part gives: who owns an instance, and whether a tenant exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fluidedge.secgroups.errors import GroupNotFound
from fluidedge.secgroups.model import DEFAULT_TENANT, Port, SecurityGroup
from fluidedge.tenants.errors import Forbidden, TenantNotFound
from fluidedge.tenants.models import owned_prefix
from fluidedge.tenants.scope import Principal


def tenant_of(who: Principal) -> str | None:
    """The ``tenant`` of the groups and ports ``who`` sees (None: the admin, all of them)."""
    if who.is_admin:
        return None
    if who.kind == "tenant" and who.tenant is not None:
        return tenant_key(who.tenant)
    return DEFAULT_TENANT


def tenant_key(owner: str | None) -> str:
    """The ``tenant`` value for a resource of ``owner`` (the tenants part's None: the admin).

    WHY the refusal: :data:`DEFAULT_TENANT` (``default``) is the admin's value here, and
    ``default`` is a valid tenant name; a tenant of that name would share the admin's groups
    (its default group too). It is refused (fails closed) rather than mixed with the admin's.
    """
    if owner is None:
        return DEFAULT_TENANT
    if owner == DEFAULT_TENANT:
        raise Forbidden(
            f"tenant {owner!r}: the name is the admin's in security groups; use another name"
        )
    return owner


def missing_group(group_id: str) -> GroupNotFound:
    """The 404 of a group that does not exist (for this caller)."""
    return GroupNotFound(f"security group {group_id!r} does not exist")


def missing_port(instance: str, ifname: str) -> GroupNotFound:
    """The 404 of an interface that is not filtered (or not the caller's)."""
    return GroupNotFound(f"instance {instance!r} has no filtered interface {ifname!r}")


class GroupScope:
    """``instance_owner(name)``: the tenant owning instance ``name`` (None: the admin);
    ``tenant_exists(name)``: whether tenant ``name`` exists."""

    def __init__(
        self,
        instance_owner: Callable[[str], str | None],
        tenant_exists: Callable[[str], bool],
    ) -> None:
        self.instance_owner = instance_owner
        self.tenant_exists = tenant_exists

    def instance_tenant(self, name: str) -> str:
        """The ``tenant`` of instance ``name``'s ports."""
        return tenant_key(self.instance_owner(name))

    @staticmethod
    def sees(who: Principal, tenant: str) -> bool:
        mine = tenant_of(who)
        return mine is None or mine == tenant

    def visible(self, who: Principal, groups: Iterable[SecurityGroup]) -> list[SecurityGroup]:
        return [g for g in groups if self.sees(who, g.tenant)]

    def visible_ports(self, who: Principal, ports: Iterable[Port]) -> list[Port]:
        return [p for p in ports if self.sees(who, p.tenant)]

    def require(self, who: Principal, group: SecurityGroup) -> None:
        """The group's 404 unless ``who`` sees it."""
        if not self.sees(who, group.tenant):
            raise missing_group(group.id)

    def require_change(self, who: Principal, group: SecurityGroup) -> None:
        """404 unless ``who`` sees the group; a change needs a token (the edge asks one of
        every change already: belt and braces)."""
        self.require(who, group)
        if who.kind == "anonymous":
            raise Forbidden(f"changing security group {group.id!r} needs a token")

    def require_port(self, who: Principal, instance: str, ifname: str) -> None:
        """The port's 404 unless ``who`` sees instance ``instance``."""
        if not self.sees(who, self.instance_tenant(instance)):
            raise missing_port(instance, ifname)

    def owner_for_create(self, who: Principal, group_id: str, requested: str | None) -> str:
        """The ``tenant`` of a group ``who`` creates as ``group_id`` (``requested``: the
        admin's ``?tenant=``). A tenant creates for itself only, ids in its prefix."""
        if who.kind == "tenant" and who.tenant is not None:
            if requested is not None and requested != who.tenant:
                raise Forbidden("a tenant token creates resources for its own tenant only")
            owner = who.tenant
        elif who.is_admin:
            if requested is None:
                return DEFAULT_TENANT
            if not self.tenant_exists(requested):
                raise TenantNotFound(f"tenant {requested!r} does not exist")
            owner = requested
        else:
            raise Forbidden("creating a security group needs a token")
        if not group_id.startswith(owned_prefix(owner)):
            raise Forbidden(
                f"security group id {group_id!r}: ids of tenant {owner}'s groups start with "
                f"{owned_prefix(owner)!r}"
            )
        return owner


# Without tenants (a router built for tests or tools) every caller is the admin; the daemon's
# edge still asks a token of every change.
NO_TENANTS = GroupScope(lambda name: None, lambda name: False)
