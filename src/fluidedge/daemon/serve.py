"""Run the daemon under uvicorn.

Start-up order: take the state directory's lock (:mod:`fluidedge.core.lock`: one daemon per
state_dir), open and check the store (:mod:`fluidedge.core.store`: refuse damage, never start
silently empty), build the parts, then serve. Each step that refuses says why and how to
recover, as one message (``fluidedge: ...``, exit code 1).

uvloop (event loop) and httptools (HTTP parser) come with ``uvicorn[standard]``: they take
about half of the per-request HTTP overhead off the instantiation path (issue 6's warm-pool
target is a few milliseconds, API request to workload running). When either is missing the
server falls back to asyncio and the pure-Python h11 parser: slower, same behaviour.

The API listens on ``api.listen:api.port`` (HTTPS when ``api.tls_cert`` is set, which
:mod:`fluidedge.core.config` requires off loopback) and on the Unix socket
(:mod:`fluidedge.daemon.server`).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import uvicorn

from fluidedge.core.config import DaemonConfig, load_config
from fluidedge.core.errors import ConfigError
from fluidedge.core.lock import StateLock
from fluidedge.core.store import Store
from fluidedge.daemon import statedir
from fluidedge.daemon.app import build_context, create_app
from fluidedge.daemon.audit import AuditLog
from fluidedge.daemon.logs import setup_logging
from fluidedge.daemon.server import DaemonServer

log = logging.getLogger("fluidedge.daemon")
STARTUP_FAILURE = 3


def _fastest(preferred: str, module: str, fallback: str) -> str:
    return preferred if importlib.util.find_spec(module) is not None else fallback


def _audit_log(config: DaemonConfig) -> AuditLog | None:
    path = config.audit_path
    if path is None:
        return None
    return AuditLog(path, max_bytes=config.api.audit_max_bytes, backups=config.api.audit_backups)


def _uvicorn_config(app: object, config: DaemonConfig, log_level: str) -> uvicorn.Config:
    api = config.api
    server_config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=api.listen,
        port=api.port,
        log_level=log_level,
        access_log=False,
        loop=_fastest("uvloop", "uvloop", "asyncio"),
        http=_fastest("httptools", "httptools", "h11"),
        ssl_certfile=str(api.tls_cert) if api.tls_cert else None,
        ssl_keyfile=str(api.tls_key) if api.tls_key else None,
    )
    try:
        server_config.load()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(
            f"config: api.tls_cert/api.tls_key ({api.tls_cert}, {api.tls_key}) cannot be "
            f"loaded: {exc}"
        ) from exc
    return server_config


def _say_startup_error(error: Exception) -> None:
    """What stopped a part's start, as the log's last line: after the server's traceback and
    its "startup failed", the sentence an operator acts on (a refused store says what is
    wrong and how to recover)."""
    log.error(
        "the start failed: %s",
        error,
        extra={"part": "daemon", "event": "startup_failed"},
    )


def serve(config_path: Path | None, *, log_level: str = "info", reset_store: bool = False) -> None:
    """Load the config, lock the state dir, check the store, build the parts and serve."""
    setup_logging(log_level)
    config = load_config(config_path)
    statedir.prepare(config)
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
        try:
            context = build_context(config, store)
            app = create_app(context, audit=_audit_log(config))
            statedir.private_files(config)
            server = DaemonServer(_uvicorn_config(app, config, log_level), config.socket_path)
            try:
                server.run()
            finally:  # uvicorn exits (SystemExit) when the app's startup fails
                if not server.started and context.startup_error is not None:
                    _say_startup_error(context.startup_error)
        finally:
            store.close()  # reached on a programmatic stop (uvicorn re-raises SIGTERM/SIGINT)
        if not server.started:
            sys.exit(STARTUP_FAILURE)
    finally:
        lock.release()
