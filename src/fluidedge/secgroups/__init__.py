"""Security groups: stateful per-port filtering with neutron's model (the seed's §6).

A *security group* is a tenant's named set of rules; a *port* (an instance interface) names
the groups that apply to it. Rules only allow: a new connection to or from a port is accepted
iff a rule of one of its groups allows it, replies of an accepted connection always pass
(conntrack), and port security stops a port sending from addresses that are not its own.

Module map (pure policy first, I/O adapters last):

- ``model``: groups, rules, ports; validated frozen dataclasses.
- ``scoping``: who sees and changes which group and port (tenants), pure policy.
- ``compiler``: the pure compiler from the model to the renderer-neutral IR (documented there).
- ``ovn_render`` / ``ovn_driver``: the IR as OVN port groups, address sets, ACLs and port
  security (pure), installed in the OVN northbound database in one transaction (the ``ovn``
  renderer, :mod:`fluidedge.ovn` runs the engine; docs/multi-host.md).

Errors (kinds from :mod:`fluidedge.errors` give the HTTP status)::

    SecgroupsError (FluidedgeError)
    ├── InvalidSecgroup (+ InputError)     400  malformed group/rule/port
    │   └── SecgroupUnprocessable          422  well-formed, but its fields contradict each
    │       (+ Unprocessable)                   other or the stored groups and ports
    ├── GroupNotFound (+ NotFoundError)    404
    ├── GroupInUse (+ ConflictError)       409  still used by ports or remote-group rules
    ├── ZonesExhausted (+ CapacityError)   503  every conntrack zone is taken
    └── FilterFailure (+ SystemFailure)    500  nft or conntrack failed underneath us
"""

__all__ = [
    "api",
    "cli",
    "driver",
    "errors",
    "model",
    "nftcheck",
    "nftwatch",
    "ovn_driver",
    "ovn_render",
    "part",
    "scoping",
    "service",
]
