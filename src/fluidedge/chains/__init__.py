"""Service function chains (the seed's §4.3.2.2) on the ``ovs`` and ``linuxbridge`` instance
networks.

networking-sfc's model, tenant-owned like security groups: a *port pair* is a function
instance's ingress and egress interfaces, a *port pair group* interchangeable instances of one
function, a *flow classifier* the traffic (5-tuple fields and the logical source/destination
ports) a *port chain* steers through its groups in order, and back in reverse (symmetric).

Module map (pure policy first, I/O adapters last):

- ``model``: the four objects, validated frozen dataclasses, and the cross-object checks.
- ``compiler``: the pure compiler from the model to OpenFlow flows (table layout there).
- ``tcplan``: the pure compiler from the model to the maps of the tc/eBPF program
  (``chains.bpf.c``) of ``linuxbridge`` networks (layout there).
- ``tcorder``: the pure order in which a new plan's port entries are switched (make before
  break along each packet's path).
- ``functions``: the built-in function templates (counter, firewall, router).
- ``firewall``: live rule changes of running vFirewall instances (one nft transaction).
- ``ovs``: the thin adapter installing a compiled table in OpenFlow bundles, make-before-break.
- ``linuxbridge``: the thin adapter writing a compiled plan to the program's maps and
  attaching it to the bridge's chain ports, make-before-break.
- ``scoping``: tenant-scoped views (who sees and may name which objects and ports).
- ``persist``, ``service``, ``api``, ``part``, ``cli``: the store table, the service that
  checks a change whole before storing and applying it, REST under ``/v1/chains``, the
  daemon part (restore at start, a poll re-applying a bridge whose ports changed), the CLI.

Errors (kinds from :mod:`fluidedge.errors` give the HTTP status)::

    ChainsError (FluidedgeError)
    ├── InvalidChain (+ InputError)             400  malformed object (the API's schema says
    │                                                which: its bodies are refused there first)
    ├── ChainUnprocessable (+ Unprocessable)    422  well-formed, but fields that contradict
    │                                                each other, a rule nft refuses or whose
    │                                                braces do not nest, a route whose
    │                                                [instances] part is not enabled
    ├── ChainObjectNotFound (+ NotFoundError)   404
    ├── ChainConflict (+ ConflictError)         409  shared pair/group/classifier/port
    └── DataPlaneFailure (+ SystemFailure)      500  ovs-ofctl, tc or a map write failed
"""

__all__ = [
    "api",
    "cli",
    "compiler",
    "errors",
    "firewall",
    "functions",
    "linuxbridge",
    "model",
    "ovs",
    "part",
    "persist",
    "scoping",
    "service",
    "tcorder",
    "tcplan",
]
