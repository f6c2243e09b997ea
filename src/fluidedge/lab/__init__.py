"""The lab: an S1-U mobile network in network namespaces, speaking real GTP-U.

UEs sit behind emulated eNodeBs; emulated SGWs route to a PDN host; an "S1 segment" between
the two crosses a namespace reserved for the fluidedge host (eNB-side and SGW-side interfaces),
where a Linux bridge joins them when no TOF runs. An apps network hangs off the host namespace.
Everything lives in namespaces named ``<prefix>-*`` so labs of several users can coexist, and
every resource is recorded on disk before it is created so ``down`` always cleans up.

Modules: :mod:`config` (TOML description -> validated model, pure), :mod:`topology` (model ->
names, addresses, bearers, ``ip`` batches, pure), :mod:`build` (the only module that creates and
removes things), :mod:`state` (the on-disk record), :mod:`node` (eNB/SGW user-plane process),
:mod:`services` (PDN/app/MME servers), :mod:`dns` (the PDN's DNS zone, pure),
:mod:`gen` (pcap streams and the traffic offerer),
:mod:`capture`, :mod:`live` (rich table for status and the demo).

Errors::

    LabError (FluidedgeError)
    ├── LabConfigError (InputError)        the lab description is invalid (says which field)
    ├── LabAlreadyUpError (ConflictError)  a lab with that prefix is already up
    ├── LabNotUpError (NotFoundError)      no lab with that prefix (status/exec/gen)
    └── LabSystemError (SystemFailure)     a namespace, link or process could not be set up
"""

from fluidedge.lab.errors import (
    LabAlreadyUpError,
    LabConfigError,
    LabError,
    LabNotUpError,
    LabSystemError,
)

# The public face: its errors, and the modules other packages may import from
# (tests/unit/test_layers.py).
__all__ = [
    "LabAlreadyUpError",
    "LabConfigError",
    "LabError",
    "LabNotUpError",
    "LabSystemError",
    "capture",
    "config",
    "dns",
    "gen",
    "lab",
    "nftsink",
    "packets",
    "topology",
]
