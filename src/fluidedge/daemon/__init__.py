"""The fluidedge daemon: one process, one REST API, hosting every part of the product.

What the parts share with it (config, store, part protocol, auth policy, client) lives one layer
below, in :mod:`fluidedge.core`; the daemon imports the parts it hosts (``registry``).

Module map:

- ``registry``: the parts the daemon knows, by config table name.
- ``edge``: the ASGI middleware every request goes through (token, Allow/405, body limit,
  request histogram, audit).
- ``audit``: the audit log of mutating calls (JSON lines, rotated, 0600).
- ``metrics``: ``/metrics`` with ``prometheus_client`` (process metrics, parts' text).
- ``app``: builds the FastAPI application from the enabled parts.
- ``statedir``: the state directory checked writable, 0700, its files 0600.
- ``server``: uvicorn with the API's Unix socket as a second listener (HTTPS off loopback).
- ``serve``: the start-up sequence, then runs the server.
- ``service``: the systemd unit and default config ``fluidedge install-service`` writes.
- ``modules``: the kernel modules the configured parts need, loaded before the daemon (the
  unit's ``ExecStartPre``).

Errors (see :mod:`fluidedge.errors` for the kinds; configuration errors are
:class:`fluidedge.core.ConfigError`)::

    DaemonError (FluidedgeError)
    └── StateDirError (+ SystemFailure) the state directory cannot be used
"""
