"""Tenant-scoped views of the chain objects (docs/tenants.md's rules, for ``/v1/chains``).

Every chain object carries its ``tenant`` (:data:`~fluidedge.chains.model.DEFAULT_TENANT`:
the admin's). Who sees and changes what:

- the **admin** (the daemon's token): everything; what it creates is the admin's;
- a **tenant** (a tenant token): its own objects only; another tenant's (and the admin's) do
  not exist for it (404 with the very message a missing object gets; lists leave them out).
  What it creates is its own, named ``<tenant>-...`` (403 otherwise, so that names never
  collide across tenants); every switch port it names (a pair's legs, a classifier's logical
  ports) must be an interface of one of its own instances (404 ``no port`` otherwise: a tenant
  can never steer another tenant's traffic, nor take its instances as functions); it may not
  name a TOF service (403: the TOF is the admin's) nor choose a chain number (one is
  allocated); built-in function templates are the admin's (a tenant writes its template
  through ``/v1/templates``); a vFirewall's live rules are reachable for its own instances;
- **anonymous** readers (``api.open_reads``): the admin's objects only, never a tenant's.

Pure policy over two lookups the part gives: which instance a switch port belongs to, and who
owns an instance (the tenants part's ownership).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from fluidedge.chains.errors import ChainObjectNotFound
from fluidedge.chains.model import DEFAULT_TENANT
from fluidedge.tenants.errors import Forbidden
from fluidedge.tenants.models import owned_prefix
from fluidedge.tenants.scope import Principal

T = TypeVar("T")
_NAME = {
    "port_pair": "port pair",
    "port_pair_group": "port pair group",
    "flow_classifier": "flow classifier",
    "port_chain": "port chain",
}


def tenant_of(who: Principal) -> str | None:
    """The ``tenant`` value of the objects ``who`` sees (None: the admin, all of them)."""
    if who.is_admin:
        return None
    if who.kind == "tenant" and who.tenant is not None:
        return who.tenant
    return DEFAULT_TENANT


class ChainScope:
    """``port_instance(port)``: the instance whose interface is switch port ``port`` (None:
    none); ``instance_owner(name)``: the tenant owning instance ``name`` (None: the admin)."""

    def __init__(
        self,
        port_instance: Callable[[str], str | None],
        instance_owner: Callable[[str], str | None],
    ) -> None:
        self.port_instance = port_instance
        self.instance_owner = instance_owner

    def visible(self, who: Principal, objects: Iterable[T]) -> list[T]:
        tenant = tenant_of(who)
        return [o for o in objects if tenant is None or getattr(o, "tenant", None) == tenant]

    def require(self, who: Principal, kind: str, obj: Any) -> None:
        """The object's 404 unless ``who`` sees it."""
        tenant = tenant_of(who)
        if tenant is not None and obj.tenant != tenant:
            raise ChainObjectNotFound(f"no {_NAME[kind]} {obj.id!r}")

    def owner_for_create(self, who: Principal) -> str:
        """The ``tenant`` of an object ``who`` creates."""
        if who.kind == "anonymous":
            raise Forbidden("changing chains needs a token")
        return tenant_of(who) or DEFAULT_TENANT

    def check_body(self, who: Principal, kind: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """A tenant's create or replace body: its name prefix, its own instances' ports only,
        no TOF service, no chain number. The admin's passes unchanged."""
        body = dict(doc)
        if who.is_admin:
            return body
        if who.kind != "tenant" or who.tenant is None:
            raise Forbidden("changing chains needs a token")
        prefix = owned_prefix(who.tenant)
        if not str(body.get("id", "")).startswith(prefix):
            raise Forbidden(
                f"{_NAME[kind]} id {body.get('id')!r}: names of tenant {who.tenant}'s objects "
                f"start with {prefix!r}"
            )
        ports: list[str] = []
        if kind == "port_pair":
            ports = [body["ingress"], body.get("egress") or body["ingress"]]
        elif kind == "flow_classifier":
            ports = [body["logical_source_port"], body["logical_destination_port"]]
            if body.get("tof_service") is not None:
                raise Forbidden("a tenant's classifier cannot name a TOF service (the admin's)")
        elif kind == "port_chain":
            body.pop("chain_id", None)
        for port in ports:
            self.require_port(who, port)
        return body

    def require_port(self, who: Principal, port: str) -> None:
        """404 unless switch port ``port`` is an interface of one of ``who``'s instances."""
        tenant = tenant_of(who)
        if tenant is None:
            return
        instance = self.port_instance(port)
        owner = self.instance_owner(instance) if instance is not None else None
        if instance is None or (owner or DEFAULT_TENANT) != tenant:
            raise ChainObjectNotFound(f"no port {port!r} among your instances' interfaces")

    def require_instance(self, who: Principal, name: str) -> None:
        """A 404 worded as the instances part's unless ``who`` sees instance ``name``."""
        tenant = tenant_of(who)
        if tenant is None:
            return
        if (self.instance_owner(name) or DEFAULT_TENANT) != tenant:
            raise ChainObjectNotFound(f"instance {name!r} does not exist")
