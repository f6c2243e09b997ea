"""The ME platform (seed §4.4): edge apps and ETSI GS MEC 011's Mp1 reference point.

App instances are declared with a descriptor (``POST /v1/apps``) and get their own Mp1
credentials; over Mp1 (``/mec_service_mgmt/v1``, ``/mec_app_support/v1``) they register and
discover services, subscribe to service availability and to their own termination, confirm
ready and termination, and activate, deactivate or update the traffic and DNS rules their
descriptor declared. An active FORWARD_DECAPSULATED rule becomes a TOF service pointing at the
app. docs/me-platform.md has the model and the Mp1 coverage table.

Module map (pure policy first, I/O adapters last):

- ``models``: Mp1's data types from the official OpenAPI documents (schema names cited).
- ``descriptor``: the app descriptor and the app instance record.
- ``policy``: who may act for which app, discovery and subscription filters, rule -> TOF.
- ``tokens``: app instance tokens (stored as hashes).
- ``persist``: the store table (everything restored at start).
- ``deploy``: an app deployed as an instance with a data and a platform interface, behind
  security groups, its Mp1 token written into it.
- ``listener``: Mp1 served on the platform network (Mp1's paths only).
- ``examples``: a producer and a consumer app (descriptors deploying busybox scripts).
- ``dns``: the DNS responder answering the active DNS rules (sans-I/O answer, UDP edge).
- ``notify``: notification delivery (HTTP POST to callbacks, allowed networks, retries).
- ``platform``: state and operations, mirrored into the TOF through ``TofPort``.
- ``api``, ``part``, ``cli``: the REST routes (ProblemDetails errors), the daemon part
  (``[mec]``), ``fluidedge app ...``.

Errors (kinds from :mod:`fluidedge.errors` give the HTTP status)::

    MecError (FluidedgeError)
    ├── MecInvalid (+ InputError)          400  malformed request (what the schema cannot
    │                                           say: MEC 011's exclusive query filters, a
    │                                           serInstanceId in a registration) or config
    ├── MecUnprocessable (+ Unprocessable) 422  well-formed, contradicts the path or the
    │   │                                       stored resources (ETSI GS MEC 009)
    │   └── MecUnsupported                 422  well-formed, not supported yet (the reason)
    ├── MecUnauthorized                    401  no valid admin or app token
    ├── MecForbidden                       403  another app instance's token
    ├── MecNotFound (+ NotFoundError)      404
    └── MecConflict (+ ConflictError)      409  clashes with the app instance's state
"""

__all__ = [
    "api",
    "cli",
    "deploy",
    "descriptor",
    "dns",
    "errors",
    "examples",
    "listener",
    "models",
    "notify",
    "part",
    "persist",
    "platform",
    "policy",
    "tokens",
]
