"""Errors of the service-function-chain part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import ConflictError, FluidedgeError, InputError, NotFoundError, SystemFailure


class ChainsError(FluidedgeError):
    """Base of the chain part's errors."""


class InvalidChain(ChainsError, InputError):
    """A port pair, group, classifier or chain is malformed; the message names the field."""


class ChainObjectNotFound(ChainsError, NotFoundError):
    """A referenced port pair, group, classifier or chain does not exist."""


class ChainConflict(ChainsError, ConflictError):
    """The objects clash: a pair in two groups, a group or classifier in two chains, a port in
    two pairs, two chains with one number."""


class DataPlaneFailure(ChainsError, SystemFailure):
    """Open vSwitch refused or failed a flow change; the message carries its diagnostics."""
