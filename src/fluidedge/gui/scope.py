"""What a principal may see: the one place tenant scoping will be decided.

Every list a page shows goes through :func:`visible`. The operator (``tenant=None``) sees
everything. A tenant principal sees the objects labelled ``tenant=<its name>`` (instances and
templates carry labels today); objects without labels (TOF services, tunnels, networks) stay
the operator's until the tenants issue gives them an owner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, TypeVar

from fluidedge.gui.session import Principal

T = TypeVar("T")


class Labelled(Protocol):
    """Anything with labels (an instance's record, a view, a template)."""

    @property
    def labels(self) -> Mapping[str, str] | None: ...


def sees(principal: Principal) -> Callable[[Labelled], bool]:
    """:func:`visible` as a predicate over labelled objects."""
    return lambda item: visible(principal, item.labels)


def visible(principal: Principal, labels: Mapping[str, str] | None) -> bool:
    if principal.tenant is None:
        return True
    return labels is not None and labels.get("tenant") == principal.tenant


def only_visible(
    principal: Principal, items: Iterable[T], labels: Callable[[T], Mapping[str, str] | None]
) -> list[T]:
    return [item for item in items if visible(principal, labels(item))]
