"""Errors of the security-group part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import (
    CapacityError,
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
    Unprocessable,
)


class SecgroupsError(FluidedgeError):
    """Base of the security-group part's errors."""


class InvalidSecgroup(SecgroupsError, InputError):
    """A group, rule or port is malformed; the message names the field and says why."""


class SecgroupUnprocessable(InvalidSecgroup, Unprocessable):
    """Each field is well-formed (the API's schema holds: a body that breaks it is a 400) but
    the request cannot be carried out as it stands: its fields contradict each other (a port
    range on a protocol without ports, an ICMP type on tcp, icmpv6 on an IPv4 rule, a prefix of
    the other family, a remote prefix and a remote group, two rules alike) or the stored state
    (a remote group or an interface's group that does not exist, or is another tenant's: the
    same answer, so it reveals nothing; groups on a port without port security; one rule more
    than a group may have). The message
    names the field and why; 422. Still an :class:`InvalidSecgroup` for callers that only ask
    whether the input was at fault."""


class GroupNotFound(SecgroupsError, NotFoundError):
    """No security group (or rule) has that id."""


class GroupInUse(SecgroupsError, ConflictError):
    """The group is still used by ports or named as a remote group by another group's rule."""


class ZonesExhausted(SecgroupsError, CapacityError):
    """Every conntrack zone of the namespace is taken: no new network can be filtered now."""


class FilterFailure(SecgroupsError, SystemFailure):
    """nft or conntrack failed underneath us; the message carries its diagnostics."""
