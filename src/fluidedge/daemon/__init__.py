"""The fluidedge daemon: one process, one REST API, hosting every part of the product.

Module map:

- ``config``: the daemon's TOML configuration (API listen address, token, store, part sections).
- ``store``: SQLite persistence shared by the parts (each part owns its tables).
- ``auth``: bearer-token check for mutating calls.
- ``part``: the protocol a product part implements to be hosted (router + lifecycle).
- ``app``: builds the FastAPI application from the enabled parts.
- ``serve``: runs it under uvicorn.
- ``client``: the HTTP client the CLI uses to talk to a running daemon.

Errors (see :mod:`fluidedge.errors` for the kinds)::

    DaemonError (FluidedgeError)
    └── ConfigError (+ InputError)   the configuration file is invalid
"""
