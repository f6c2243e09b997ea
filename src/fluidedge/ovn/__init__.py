"""OVN, run and driven by fluidedge itself: the multi-host network engine (no systemd).

Several fluidedge hosts are joined by one OVN deployment instead of cluster code of our own
(docs/multi-host.md): :mod:`.central` runs the northbound and southbound databases (one
member, or a 3-member Raft cluster) and ``ovn-northd`` (active/standby); :mod:`.chassis` runs a
host's Open vSwitch (:mod:`fluidedge.ovs.daemons`) and ``ovn-controller``; :mod:`.nbctl` is the
argv adapter over ``ovn-nbctl`` (one transaction per call); :mod:`.node` is a node's OVN
config and :mod:`.networks` what the instance networks' ``ovn`` driver calls; :mod:`.routers`
the logical routers between ``ovn`` networks. The security
groups' ``ovn`` renderer (:mod:`fluidedge.secgroups.ovn_render`, ``ovn_driver``) uses them
too.

Errors::

    OvnError                       (fluidedge.errors.FluidedgeError)
    ├── OvnFailure                 a daemon or tool failed (SystemFailure, 500)
    │   └── OvnUnreachable         no northbound member accepts a connection (503)
    ├── OvnInvalid                 a name or address is not acceptable (InputError, 400)
    ├── OvnUnavailable             no OVN on this node, or not there (ConflictError, 409)
    ├── OvnConflict                the object exists, or is in use (ConflictError, 409)
    └── OvnNotFound                no such object (NotFoundError, 404)
"""

__all__ = ["central", "chassis", "errors", "nbctl", "networks", "node", "routers", "tool"]
