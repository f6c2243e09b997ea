"""On-demand instances go through the same admission as the API's instances.

WHY: an on-demand service creates instances on the packets of UEs, without an API call. Those
instances must still count against the quota of the tenant that owns the template (instances,
CPUs, memory, pids), fit the host's pid budget and get the default CPU cap. A flood of new UEs
must not let one tenant's service take the node. The instance manager's routes admit requests
through :class:`~fluidedge.instances.scoping.Scoped`; this adapter makes the controller use the
same object, as the admin acting for the template's owner. So an on-demand instance is owned by
that tenant, named ``<tenant>-…``, shown to it, and released from its quota when deleted.

:class:`NoAdmission` is the daemon without an ``[instances]`` router (unit tests, or no
tenants: the manager's own checks still apply).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from fluidedge.instances.models import InstanceRequest
from fluidedge.tenants.models import owned_prefix
from fluidedge.tenants.scope import ADMIN, Principal


class Admission(Protocol):
    """What the controller asks before it creates and after it deletes an instance."""

    def prefix(self, template: str) -> str:
        """The name prefix of the template's owner (``""``: the admin's)."""
        ...

    def admit(self, request: InstanceRequest) -> AbstractContextManager[InstanceRequest]:
        """Hold the request's quota while it is created; raises the refusal."""
        ...

    def delete(self, name: str, remove: Callable[[str], None]) -> None:
        """Delete an instance through ``remove`` and release what it held."""
        ...


class Scoped(Protocol):
    """What this adapter uses of the instance manager's :class:`~fluidedge.instances.scoping.
    Scoped` (its routes' tenant scoping and admission)."""

    def owner(self, kind: str, name: str) -> str | None: ...

    def admit_instance(
        self, who: Principal, request: InstanceRequest, requested: str | None
    ) -> AbstractContextManager[InstanceRequest]: ...

    def delete(
        self, kind: str, who: Principal, name: str, remove: Callable[[str], None]
    ) -> None: ...


class NoAdmission:
    """No tenants, no router: nothing beyond the instance manager's own checks."""

    def prefix(self, template: str) -> str:
        del template
        return ""

    @contextmanager
    def admit(self, request: InstanceRequest) -> Iterator[InstanceRequest]:
        yield request

    def delete(self, name: str, remove: Callable[[str], None]) -> None:
        remove(name)


class ScopedAdmission:
    """The instance manager's routes' admission (``scoped()``: None until they exist)."""

    def __init__(self, scoped: Callable[[], Scoped | None]) -> None:
        self._scoped = scoped

    def prefix(self, template: str) -> str:
        scoped = self._scoped()
        owner = None if scoped is None else scoped.owner("template", template)
        return "" if owner is None else owned_prefix(owner)

    @contextmanager
    def admit(self, request: InstanceRequest) -> Iterator[InstanceRequest]:
        scoped = self._scoped()
        if scoped is None:
            yield request
            return
        owner = scoped.owner("template", request.template)
        with scoped.admit_instance(ADMIN, request, owner) as admitted:
            yield admitted

    def delete(self, name: str, remove: Callable[[str], None]) -> None:
        scoped = self._scoped()
        if scoped is None:
            remove(name)
        else:
            scoped.delete("instance", ADMIN, name, remove)
