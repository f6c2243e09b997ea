"""Errors of the service-function-chain part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import (
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
    Unprocessable,
)


class ChainsError(FluidedgeError):
    """Base of the chain part's errors."""


class InvalidChain(ChainsError, InputError):
    """A port pair, group, classifier or chain is malformed; the message names the field.

    Over the API the body's schema states these rules (a body that breaks one is refused at
    the boundary with the same 400), so this answers what the schema does not see: stored
    objects, the configuration file, and callers that build the objects in code."""


class ChainUnprocessable(ChainsError, Unprocessable):
    """The request is well-formed (the API's schema holds: a body that breaks it is a 400) but
    cannot be carried out as it stands: its fields contradict each other (a port range
    without tcp, udp or sctp; a prefix of the other family; a TOF service and a destination
    prefix), a firewall rule's braces do not nest or nft refuses it, or the daemon's
    configuration lacks what it needs (no ``[instances]`` part). The message says which
    field and why; 422, as for any request understood and refused for what it asks."""


class ChainObjectNotFound(ChainsError, NotFoundError):
    """A referenced port pair, group, classifier or chain does not exist."""


class ChainConflict(ChainsError, ConflictError):
    """The objects clash: a pair in two groups, a group or classifier in two chains, a port in
    two pairs, two chains with one number."""


class DataPlaneFailure(ChainsError, SystemFailure):
    """Open vSwitch refused or failed a flow change; the message carries its diagnostics."""
