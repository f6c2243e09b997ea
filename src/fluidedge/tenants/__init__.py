"""Tenants: who owns what on the node, and how much of the node each may use.

The admin token (``state_dir/token``, :mod:`fluidedge.core.auth`) manages tenants and their
tokens; a tenant token sees and changes only the resources its tenant owns (another tenant's
resource answers 404, as if it did not exist). Admission control (:mod:`.admission`, pure) checks
each instance request against its tenant's quota and the host's own limits (pids per instance,
pids host-wide against ``pid_max``, a CPU cap by default).

Modules: :mod:`.models` (API models and quotas), :mod:`.config` (the ``[admission]`` table),
:mod:`.tokens` (token format and hashing), :mod:`.persist` (SQLite tables), :mod:`.service`
(tenants, tokens and ownership in memory and in the store), :mod:`.scope` (who may see or change
an owned resource: the helper other parts' routes call), :mod:`.admission` (quota and host
limits, pure), :mod:`.api` (``/v1/tenants``, ``/v1/whoami``), :mod:`.cli` (``fluidedge tenant``).
"""

__all__ = [
    "admission",
    "api",
    "cli",
    "config",
    "errors",
    "models",
    "scope",
    "service",
]
