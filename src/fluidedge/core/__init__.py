"""What the parts share: the store, the part protocol, the daemon config and the API client.

The layer between the protocol/kernel adapters and the product parts (the import graph reads
``codec``/``linux`` → ``core`` → ``lab``/``tof``/``instances`` → ... → ``daemon``; checked by
``tests/unit/test_layers.py``, see docs/architecture.md). The parts (``tof``, ``instances``,
``cat``) import what they need from here, never from :mod:`fluidedge.daemon`, which hosts them.

Module map:

- ``config``: the daemon's TOML configuration (API listen address, token, store, part tables);
  ``guiconfig``: its ``[gui]`` table; ``jsontypes``: field types the API models share.
- ``store``: SQLite persistence shared by the parts (each part owns its tables); ``walcheck``
  reads its write-ahead log's header; ``rows``: a part's rows read back, a row that cannot be
  read set aside (named, kept) instead of stopping the start.
- ``part``: the protocol a product part implements to be hosted (router + lifecycle) and the
  :class:`DaemonContext` it is built with.
- ``cpus``: CPU lists in the kernel's syntax (``0-3,6``), one strict parser for the API, the
  configuration and the kernel's files.
- ``fields``: neutron-style field checks (names, protocols, prefixes) the security-group and
  chain models share.
- ``auth``: the bearer-token policy (which requests need it, constant-time check, redaction);
  ``hot``: the routes a part lets the daemon's edge serve without FastAPI's machinery.
- ``openapi``: what the API documents (error responses, the document rewrite).
- ``lock``: one owner per state directory.
- ``tokens``: the ``<prefix><id>.<secret>`` bearer-token scheme of tenants and ME apps.
- ``metrics``: the latency bucket ladder the daemon's and the parts' histograms share.
- ``paging``: keyset pages of a named collection (``?limit=&after=``, the ``Link`` header).
- ``periodic``: a part's background check every few seconds, its failures logged once.
- ``hostwait``: a part's deferred start while the host lacks what it needs (after a reboot:
  a namespace, an interface, an address), its reasons said once each.
- ``client``: the HTTP client the CLIs use to talk to a running daemon (socket, TCP, HTTPS);
  ``cliparts``: what the parts' commands share (``--json``, one call, a table).

Errors (see :mod:`fluidedge.errors` for the kinds)::

    CoreError (FluidedgeError)
    ├── ConfigError (+ InputError)       the configuration file is invalid
    ├── StateDirLocked (+ ConflictError) another process owns the state directory
    ├── StoreError (+ SystemFailure)     the database failed underneath us
    ├── SetAsideNotFound (+ NotFoundError) no row set aside (``rows``) has that id
    └── ClientError                      the daemon answered with an error, or was unreachable
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fluidedge.core.client import Client, ClientError
    from fluidedge.core.config import DaemonConfig, load_config, resolve_token
    from fluidedge.core.errors import ConfigError, CoreError
    from fluidedge.core.lock import StateDirLocked, StateLock
    from fluidedge.core.part import DaemonContext, Part, PartFactory
    from fluidedge.core.store import Store, StoreError

# name -> module: imported on first use (PEP 562), so that a CLI that only needs the client
# does not pay for FastAPI (the part protocol) or SQLite.
_PUBLIC: dict[str, str] = {
    "Client": "client",
    "ClientError": "client",
    "ConfigError": "errors",
    "CoreError": "errors",
    "DaemonConfig": "config",
    "DaemonContext": "part",
    "Part": "part",
    "PartFactory": "part",
    "StateDirLocked": "lock",
    "StateLock": "lock",
    "Store": "store",
    "StoreError": "store",
    "load_config": "config",
    "resolve_token": "config",
}

# The public face: these names, and the modules other packages may import from
# (tests/unit/test_layers.py); walcheck is private.
__all__ = [
    "Client",
    "ClientError",
    "ConfigError",
    "CoreError",
    "DaemonConfig",
    "DaemonContext",
    "Part",
    "PartFactory",
    "StateDirLocked",
    "StateLock",
    "Store",
    "StoreError",
    "auth",
    "client",
    "cliparts",
    "config",
    "cpus",
    "errors",
    "fields",
    "guiconfig",
    "hostwait",
    "hot",
    "jsontypes",
    "load_config",
    "lock",
    "metrics",
    "openapi",
    "paging",
    "part",
    "patterns",
    "periodic",
    "resolve_token",
    "rows",
    "store",
    "tokens",
]


def __getattr__(name: str) -> object:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
