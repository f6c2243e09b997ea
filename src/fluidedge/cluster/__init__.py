"""The cluster: several fluidedge daemons (nodes) sharing one view of nodes and placement.

ADR 0004 (docs/multi-host.md): network state lives in OVN's databases (:mod:`fluidedge.ovn`);
the cluster state lives in **etcd**, through its v3 JSON gateway (no consensus code of ours,
no new Python dependency). :mod:`.etcd` is the small client (pure key/JSON codec plus the
HTTP calls), :mod:`.registry` a node's record and liveness lease and its cached view of the
others, :mod:`.placement` the pure choice of a node for a request (spread/pack over reported
capacity), :mod:`.persist` what of the site this node last saw (its store), :mod:`.part` the
daemon part (config table ``[cluster]``) that registers the node,
serves ``GET /v1/nodes`` (:mod:`.api`) and forwards instance creations to the chosen node.

Keys (under ``prefix``, default ``/fluidedge``)::

    <prefix>/nodes/<name>   the node's record (JSON: URL, capacity, committed, instances);
                            written by that node when it changes; kept when the node dies
    <prefix>/alive/<name>   bound to the node's lease (``ttl`` s, kept alive every
                            ``heartbeat`` s): present = the node is alive
    <prefix>/instances/<i>  an instance whose template says failover = "recreate": its
                            node and the request that re-creates it (:mod:`.failover`)
    <prefix>/templates/<t>  the site's templates (the admin's, made through any node)
    <prefix>/networks/<n>   the site's ovn networks (likewise)

Errors::

    ClusterError                   (fluidedge.errors.FluidedgeError)
    ├── ClusterInvalid             a name or request is not acceptable (InputError, 400)
    ├── NodeNotFound               no node of that name (NotFoundError, 404)
    ├── NodeUnavailable            the node is dead, or forwarding is refused (ConflictError, 409)
    ├── NoNodeFits                 no live node has the capacity (CapacityError, 503)
    └── ClusterFailure             etcd or another node failed (SystemFailure, 500)
"""

__all__ = [
    "api",
    "config",
    "errors",
    "etcd",
    "failover",
    "garp",
    "part",
    "persist",
    "placement",
    "registry",
]
