"""Errors of the security-group part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import ConflictError, FluidedgeError, InputError, NotFoundError, SystemFailure


class SecgroupsError(FluidedgeError):
    """Base of the security-group part's errors."""


class InvalidSecgroup(SecgroupsError, InputError):
    """A group, rule or port is malformed; the message names the field and says why."""


class GroupNotFound(SecgroupsError, NotFoundError):
    """No security group (or rule) has that id."""


class GroupInUse(SecgroupsError, ConflictError):
    """The group is still used by ports or named as a remote group by another group's rule."""


class FilterFailure(SecgroupsError, SystemFailure):
    """nft or conntrack failed underneath us; the message carries its diagnostics."""
