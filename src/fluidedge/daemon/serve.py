"""Run the daemon under uvicorn.

uvloop (event loop) and httptools (HTTP parser) come with ``uvicorn[standard]``: they take
about half of the per-request HTTP overhead off the instantiation path (issue 6's warm-pool
target is a few milliseconds, API request to workload running). When either is missing the
server falls back to asyncio and the pure-Python h11 parser: slower, same behaviour.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import uvicorn

from fluidedge.daemon.app import build_context, create_app
from fluidedge.daemon.config import load_config


def _fastest(preferred: str, module: str, fallback: str) -> str:
    return preferred if importlib.util.find_spec(module) is not None else fallback


def serve(config_path: Path | None, *, log_level: str = "info") -> None:
    """Load the config, build the parts and serve the API until interrupted."""
    config = load_config(config_path)
    context = build_context(config)
    app = create_app(context)
    uvicorn.run(
        app,
        host=config.api.listen,
        port=config.api.port,
        log_level=log_level,
        access_log=False,
        loop=_fastest("uvloop", "uvloop", "asyncio"),
        http=_fastest("httptools", "httptools", "h11"),
    )
