"""Run the daemon under uvicorn.

Start-up order: take the state directory's lock (:mod:`fluidedge.daemon.lock`: one daemon per
state_dir), open and check the store (:mod:`fluidedge.daemon.store`: refuse damage, never start
silently empty), build the parts, then serve. Each step that refuses says why and how to
recover, as one message (``fluidedge: ...``, exit code 1).

uvloop (event loop) and httptools (HTTP parser) come with ``uvicorn[standard]``: they take
about half of the per-request HTTP overhead off the instantiation path (issue 6's warm-pool
target is a few milliseconds, API request to workload running). When either is missing the
server falls back to asyncio and the pure-Python h11 parser: slower, same behaviour.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import uvicorn

from fluidedge.daemon.app import build_context, create_app
from fluidedge.daemon.config import load_config
from fluidedge.daemon.lock import StateLock
from fluidedge.daemon.logs import setup_logging
from fluidedge.daemon.store import Store

log = logging.getLogger("fluidedge.daemon")


def _fastest(preferred: str, module: str, fallback: str) -> str:
    return preferred if importlib.util.find_spec(module) is not None else fallback


def serve(config_path: Path | None, *, log_level: str = "info", reset_store: bool = False) -> None:
    """Load the config, lock the state dir, check the store, build the parts and serve."""
    setup_logging(log_level)
    config = load_config(config_path)
    lock = StateLock(config.state_dir, "serve")
    lock.acquire()
    try:
        store = Store(config.store_path, synchronous=config.store_synchronous, reset=reset_store)
        if store.moved_aside:
            log.warning(
                "started with an empty store on request; damaged files kept as %s",
                ", ".join(str(p) for p in store.moved_aside),
                extra={"part": "daemon", "event": "store_reset"},
            )
        context = build_context(config, store)
        app = create_app(context)
        try:
            uvicorn.run(
                app,
                host=config.api.listen,
                port=config.api.port,
                log_level=log_level,
                access_log=False,
                loop=_fastest("uvloop", "uvloop", "asyncio"),
                http=_fastest("httptools", "httptools", "h11"),
            )
        finally:
            store.close()  # reached on a programmatic stop (uvicorn re-raises SIGTERM/SIGINT)
    finally:
        lock.release()
