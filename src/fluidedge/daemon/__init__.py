"""The fluidedge daemon: one process, one REST API, hosting every part of the product.

Module map:

- ``config``: the daemon's TOML configuration (API listen address, token, store, part sections).
- ``store``: SQLite persistence shared by the parts (each part owns its tables).
- ``auth``: the bearer-token policy (which requests need it, constant-time check, redaction).
- ``edge``: the ASGI middleware every request goes through (token, Allow/405, body limit,
  request histogram, audit).
- ``audit``: the audit log of mutating calls (JSON lines, rotated, 0600).
- ``metrics``: ``/metrics`` with ``prometheus_client`` (process metrics, parts' text).
- ``openapi``: rewrites the generated OpenAPI document to say what the API answers.
- ``part``: the protocol a product part implements to be hosted (router + lifecycle).
- ``app``: builds the FastAPI application from the enabled parts.
- ``statedir``: the state directory checked writable, 0700, its files 0600.
- ``server``: uvicorn with the API's Unix socket as a second listener (HTTPS off loopback).
- ``serve``: the start-up sequence, then runs the server.
- ``client``: the HTTP client the CLI uses to talk to a running daemon (socket, TCP, HTTPS).

Errors (see :mod:`fluidedge.errors` for the kinds)::

    DaemonError (FluidedgeError)
    ├── ConfigError (+ InputError)      the configuration file is invalid
    └── StateDirError (+ SystemFailure) the state directory cannot be used
"""
