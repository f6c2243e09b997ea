"""Tenants, their tokens and the ownership of resources: in memory, written through to the store.

Everything is read once at start (:meth:`TenantService.__init__`), so a daemon restart restores
tenants, tokens and ownership; requests are served from memory (resolving a token is a dict
lookup and one hash). Each change is written to the store before it is applied in memory: a
change the store refuses leaves nothing half-done.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from fluidedge.core.store import Store
from fluidedge.tenants import tokens
from fluidedge.tenants.config import AdmissionConfig, admission_config
from fluidedge.tenants.errors import InvalidTenant, TenantExists, TenantInUse, TenantNotFound
from fluidedge.tenants.models import (
    Quota,
    TenantCreate,
    TenantUpdate,
    TokenCreated,
    TokenView,
    Usage,
)
from fluidedge.tenants.persist import Tables

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_T = TypeVar("_T")


class TenantSite(Protocol):
    """Where tenants and their tokens are shared with the other nodes of a site (the cluster
    part); :class:`OneNode` when the daemon is a node of none."""

    def tenant_changed(self, name: str) -> None:
        """Tenant ``name`` or its tokens changed here: every node gets the new version."""

    def change_shared(self, name: str, change: Callable[[], _T]) -> _T:
        """Make ``change`` to tenant ``name`` here and give the site its new version, as one
        step against the site's pass: a pass that read the site before the change must not
        apply that older version after it (a token just created would be revoked here, and
        then published without it: lost for good; one just revoked would come back)."""

    def delete_shared(self, kind: str, name: str, delete: Callable[[], None]) -> None:
        """The admin deletes tenant ``name`` (``kind`` ``tenants``): here and from the site."""

    def owned_elsewhere(self, name: str) -> list[str]:
        """Instances tenant ``name`` owns on the site's other nodes (their records)."""
        return []


class OneNode:
    """No site: tenants are this node's only."""

    def tenant_changed(self, name: str) -> None:
        del name

    def change_shared(self, name: str, change: Callable[[], _T]) -> _T:
        del name
        return change()

    def owned_elsewhere(self, name: str) -> list[str]:
        del name
        return []

    def delete_shared(self, kind: str, name: str, delete: Callable[[], None]) -> None:
        del kind, name
        delete()


def _stored_tenant(record: dict[str, Any]) -> dict[str, Any]:
    """A tenant's record as the store or the site has it, checked for what the part reads of
    it (its name, quota, time and description): ValueError, TypeError or KeyError otherwise."""
    TenantCreate(name=record["name"])
    Quota.model_validate(record["quota"])
    float(record["created_at"])
    if not isinstance(record["description"], str):
        raise TypeError("description is not a string")
    return record


def _stored_token(record: Mapping[str, Any], digest: str) -> tuple[TokenView, str]:
    """A token's view and the hash of its secret, as the store or the site has them."""
    view = TokenView.model_validate(record)
    TenantCreate(name=view.tenant)
    if not _DIGEST.match(digest):
        raise ValueError(f"token {view.id}: its digest is not a SHA-256 in hex")
    return view, digest


def _stored_owner(kind: str, name: str, tenant: str) -> tuple[str, str, str]:
    """An ownership row: a kind and a name (free text of the parts, never empty) and the
    tenant, whose name must be one."""
    if not kind or not name:
        raise ValueError(f"ownership row {kind!r}/{name!r} has an empty kind or name")
    return kind, name, TenantCreate(name=tenant).name


class TenantService:
    """The node's tenants (thread-safe; one per daemon, in :class:`DaemonContext`)."""

    def __init__(
        self, store: Store, config: AdmissionConfig | Mapping[str, Any] | None = None
    ) -> None:
        self.config = admission_config(config)
        self.tables = Tables(store)
        self._lock = threading.RLock()
        # A stored row this start could not use is set aside, with what names its tenant if
        # that is gone (persist.py): the part starts with the others.
        tenants, stored_tokens, owners = self.tables.stored(
            _stored_tenant, _stored_token, _stored_owner
        )
        self._tenants: dict[str, dict[str, Any]] = {r["name"]: r for r in tenants}
        self._tokens: dict[str, tuple[TokenView, str]] = {
            view.id: (view, digest) for view, digest in stored_tokens
        }
        self._owners: dict[tuple[str, str], str] = {
            (kind, name): tenant for kind, name, tenant in owners
        }
        # What a tenant's instances hold now: set by the instances part's routes (which own
        # the admission control); None without that part.
        self.usage: Callable[[str], Usage] | None = None
        # Per resource kind, whether a name still exists (registered by the parts): an
        # ownership row whose resource went away behind our back does not hold up a delete.
        self.resource_exists: dict[str, Callable[[str], bool]] = {}
        # The site tenants are shared with (the cluster part sets itself).
        self.site: TenantSite = OneNode()

    # ------------------------------------------------------------------ tenants
    def names(self) -> list[str]:
        return sorted(self._tenants)

    def exists(self, name: str) -> bool:
        return name in self._tenants

    def record(self, name: str) -> dict[str, Any]:
        record = self._tenants.get(name)
        if record is None:
            raise TenantNotFound(f"tenant {name!r} does not exist")
        return record

    def quota(self, name: str) -> Quota:
        return Quota.model_validate(self.record(name)["quota"])

    def create(self, spec: TenantCreate) -> dict[str, Any]:
        with self._lock:
            if spec.name in self._tenants:
                raise TenantExists(f"tenant {spec.name!r} already exists")
            quota = spec.quota or self.config.default_quota
            record = {
                "name": spec.name,
                "description": spec.description,
                "quota": quota.model_dump(),
                "created_at": time.time(),
            }
            self.tables.put_tenant(record)
            self._tenants[spec.name] = record
            return record

    def update(self, name: str, change: TenantUpdate) -> dict[str, Any]:
        with self._lock:
            record = dict(self.record(name))
            if change.description is not None:
                record["description"] = change.description
            if change.quota is not None:
                record["quota"] = change.quota.model_dump()
            self.tables.put_tenant(record)
            self._tenants[name] = record
            return record

    def delete(self, name: str) -> None:
        """Remove tenant ``name`` and revoke its tokens; refused while it owns resources, here
        or (a node of a site) instances on another node."""
        with self._lock:
            self.record(name)
            elsewhere = self.site.owned_elsewhere(name)
            if elsewhere:
                raise TenantInUse(
                    f"tenant {name} still owns instances on other nodes of the site "
                    f"({', '.join(elsewhere[:10])}): delete them first"
                )
            for kind, names in self.owned(name):
                exists = self.resource_exists.get(kind)
                for stale in [n for n in names if exists is not None and not exists(n)]:
                    self.set_owner(kind, stale, None)
            owned = self.owned(name)
            if owned:
                what = "; ".join(f"{kind}: {', '.join(names[:10])}" for kind, names in owned)
                raise TenantInUse(f"tenant {name} still owns resources ({what}): delete them first")
            self.tables.delete_tenant(name)
            del self._tenants[name]
            for token_id in [i for i, (v, _) in self._tokens.items() if v.tenant == name]:
                del self._tokens[token_id]

    # ------------------------------------------------------------------ the site's copy
    def site_view(self, name: str) -> dict[str, Any]:
        """Tenant ``name`` as the site keeps it: its record and its tokens (id, view and the
        hash of the secret; never a secret)."""
        with self._lock:
            record = self.record(name)
            mine = sorted(
                ((v, d) for v, d in self._tokens.values() if v.tenant == name),
                key=lambda e: e[0].id,
            )
            return {
                "record": dict(record),
                "tokens": [{"view": v.model_dump(), "digest": d} for v, d in mine],
            }

    def put_site(self, doc: Mapping[str, Any]) -> bool:
        """Make the site's version of a tenant here (the cluster part's pass): its record
        created or replaced, its tokens added or revoked to match. Whether anything changed."""
        try:
            record = _stored_tenant(dict(doc["record"]))
            name = record["name"]
            wanted: dict[str, tuple[TokenView, str]] = {}
            for entry in doc["tokens"]:
                view, digest = _stored_token(entry["view"], str(entry["digest"]))
                if view.tenant != name:
                    raise ValueError(f"token {view.id} is not one of {name}'s")
                wanted[view.id] = (view, digest)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidTenant(f"the site's tenant is malformed: {exc}") from exc
        with self._lock:
            changed = False
            if self._tenants.get(name) != record:
                self.tables.put_tenant(record)
                self._tenants[name] = record
                changed = True
            here = {i for i, (v, _) in self._tokens.items() if v.tenant == name}
            for token_id in sorted(here - set(wanted)):
                self.tables.delete_token(token_id)
                del self._tokens[token_id]
                changed = True
            for token_id, (view, digest) in sorted(wanted.items()):
                if token_id not in self._tokens:
                    self.tables.put_token(view.model_dump(), digest)
                    self._tokens[token_id] = (view, digest)
                    changed = True
            return changed

    # ------------------------------------------------------------------ tokens
    def create_token(self, tenant: str, description: str = "") -> TokenCreated:
        with self._lock:
            self.record(tenant)
            token_id, token, digest = tokens.new_token()
            view = TokenView(
                id=token_id, tenant=tenant, description=description, created_at=time.time()
            )
            self.tables.put_token(view.model_dump(), digest)
            self._tokens[token_id] = (view, digest)
            return TokenCreated(**view.model_dump(), token=token)

    def list_tokens(self, tenant: str) -> list[TokenView]:
        self.record(tenant)
        views = [view for view, _ in self._tokens.values() if view.tenant == tenant]
        return sorted(views, key=lambda v: (v.created_at, v.id))

    def token_count(self, tenant: str) -> int:
        return sum(1 for view, _ in self._tokens.values() if view.tenant == tenant)

    def delete_token(self, tenant: str, token_id: str) -> None:
        with self._lock:
            entry = self._tokens.get(token_id)
            if entry is None or entry[0].tenant != tenant:
                raise TenantNotFound(f"tenant {tenant!r} has no token {token_id!r}")
            self.tables.delete_token(token_id)
            del self._tokens[token_id]

    def resolve(self, token: str) -> str | None:
        """The tenant a bearer token belongs to, or None (unknown, revoked, malformed)."""
        parsed = tokens.parse(token)
        if parsed is None:
            return None
        entry = self._tokens.get(parsed[0])
        if entry is None or not tokens.matches(parsed[1], entry[1]):
            return None
        return entry[0].tenant

    # ------------------------------------------------------------------ ownership
    def owner(self, kind: str, name: str) -> str | None:
        """The tenant owning resource ``kind``/``name``; None: the admin's."""
        return self._owners.get((kind, name))

    def set_owner(self, kind: str, name: str, tenant: str | None) -> None:
        with self._lock:
            if tenant is not None:
                self.record(tenant)
            if self._owners.get((kind, name)) == tenant:
                return
            self.tables.set_owner(kind, name, tenant)
            if tenant is None:
                self._owners.pop((kind, name), None)
            else:
                self._owners[(kind, name)] = tenant

    def owned(self, tenant: str, kinds: Iterable[str] | None = None) -> list[tuple[str, list[str]]]:
        """``(kind, names)`` of what ``tenant`` owns, kinds sorted, empty kinds left out."""
        wanted = set(kinds) if kinds is not None else None
        found: dict[str, list[str]] = {}
        for (kind, name), owner in list(self._owners.items()):
            if owner == tenant and (wanted is None or kind in wanted):
                found.setdefault(kind, []).append(name)
        return [(kind, sorted(names)) for kind, names in sorted(found.items())]
