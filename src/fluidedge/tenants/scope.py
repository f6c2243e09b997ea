"""Who may see and change an owned resource: the one helper every tenant-scoped route calls.

The rules (docs/tenants.md):

- the **admin** (the daemon's token) sees and changes everything;
- a **tenant** (a tenant token) sees and changes what its tenant owns, and sees *shared*
  resources (the built-in templates) without changing them (403: they are public anyway);
- an **anonymous** reader (no token, when ``api.open_reads`` lets it read) sees only what the
  admin owns, never a tenant's resource.

What a principal may not see does not exist for it: a get, change or delete answers 404 with
the very message a missing resource gets, and lists leave it out. A create by a tenant names
its resource ``<tenant>-...`` (:func:`fluidedge.tenants.models.owned_prefix`), so it can never
collide with another tenant's name either.

Use from a route (``kind`` is the resource kind's singular, as in its 404 messages)::

    scope = Scope(context.tenants)
    who = principal_of(request)
    scope.require(who, "security group", name)           # 404 unless visible
    scope.require_change(who, "security group", name)    # 404, or 403 when shared
    names = scope.visible(who, "security group", names)  # filter a list
    owner = scope.owner_for_create(who, "security group", name, requested_tenant)
    with scope.creating("security group", name, owner, exists=name in groups):
        ...create...
    ...delete...; scope.deleted("security group", name)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from fluidedge.core.auth import STATE_KEY, TENANT_KEY
from fluidedge.errors import NotFoundError
from fluidedge.tenants.errors import Forbidden, TenantNotFound, TenantsError
from fluidedge.tenants.models import owned_prefix
from fluidedge.tenants.service import TenantService


class ResourceNotFound(TenantsError, NotFoundError):
    """The resource does not exist *for this caller* (it may exist for another)."""


@dataclass(frozen=True)
class Principal:
    kind: Literal["admin", "tenant", "anonymous"]
    tenant: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


ADMIN = Principal("admin")
ANONYMOUS = Principal("anonymous")


def principal_of(request: Request) -> Principal:
    """Who sent ``request`` (set by the edge middleware from its bearer token)."""
    state = request.scope.get("state", {})
    if state.get(STATE_KEY, False):
        return ADMIN
    tenant = state.get(TENANT_KEY)
    return Principal("tenant", tenant) if tenant else ANONYMOUS


def can_see(who: Principal, owner: str | None, *, shared: bool = False) -> bool:
    """Whether ``who`` sees a resource owned by ``owner`` (None: the admin's)."""
    if who.is_admin:
        return True
    if who.kind == "tenant":
        return owner == who.tenant or (shared and owner is None)
    return owner is None


class Scope:
    """The rules above, applied to the ownership kept by a :class:`TenantService`."""

    def __init__(self, service: TenantService) -> None:
        self.service = service

    def owner(self, kind: str, name: str) -> str | None:
        return self.service.owner(kind, name)

    def sees(self, who: Principal, kind: str, name: str, *, shared: bool = False) -> bool:
        return can_see(who, self.service.owner(kind, name), shared=shared)

    def require(self, who: Principal, kind: str, name: str, *, shared: bool = False) -> None:
        """Raise the resource's 404 unless ``who`` sees it."""
        if not self.sees(who, kind, name, shared=shared):
            raise ResourceNotFound(f"{kind} {name!r} does not exist")

    def require_change(self, who: Principal, kind: str, name: str, *, shared: bool = False) -> None:
        """404 unless ``who`` sees it; 403 when it sees it only as a shared resource."""
        self.require(who, kind, name, shared=shared)
        if who.kind == "tenant" and self.service.owner(kind, name) != who.tenant:
            raise Forbidden(f"{kind} {name!r} is shared: read-only to tenants")
        if who.kind == "anonymous":  # the edge asks a token of every change; belt and braces
            raise Forbidden(f"changing {kind} {name!r} needs a token")

    def visible(
        self, who: Principal, kind: str, names: Iterable[str], *, shared: Iterable[str] = ()
    ) -> list[str]:
        """``names`` that ``who`` sees (``shared``: names visible to every tenant)."""
        common = set(shared)
        return [n for n in names if self.sees(who, kind, n, shared=n in common)]

    def owner_for_create(
        self, who: Principal, kind: str, name: str, requested: str | None = None
    ) -> str | None:
        """The tenant that will own a new resource ``name``: the caller's tenant, or for the
        admin the ``requested`` one (None: the admin's own). Checks the name's prefix."""
        if who.kind == "tenant":
            if requested is not None and requested != who.tenant:
                raise Forbidden("a tenant token creates resources for its own tenant only")
            owner = who.tenant
        elif who.is_admin:
            owner = requested
            if owner is not None and not self.service.exists(owner):
                raise TenantNotFound(f"tenant {owner!r} does not exist")
        else:
            raise Forbidden(f"creating a {kind} needs a token")
        if owner is not None and not name.startswith(owned_prefix(owner)):
            raise Forbidden(
                f"{kind} name {name!r}: names of tenant {owner}'s resources start with "
                f"{owned_prefix(owner)!r}"
            )
        return owner

    @contextmanager
    def creating(self, kind: str, name: str, owner: str | None, *, exists: bool) -> Iterator[None]:
        """Own ``name`` for ``owner`` while it is created (so that nobody else sees it, even
        half-made); put the previous owner back if the create fails. ``exists``: the name is
        taken already (the create will fail): nothing is claimed then."""
        previous = self.service.owner(kind, name)
        if not exists:
            self.service.set_owner(kind, name, owner)
        try:
            yield
        except BaseException:
            if not exists:
                self.service.set_owner(kind, name, previous)
            raise

    def created(self, kind: str, name: str, owner: str | None) -> None:
        """Record ``owner`` of the resource just created (a row left by a resource removed
        behind our back is replaced: the new resource's owner is the creator's)."""
        self.service.set_owner(kind, name, owner)

    def deleted(self, kind: str, name: str) -> None:
        self.service.set_owner(kind, name, None)
