"""``--serve CONFIG``: run the benchmark against a daemon it starts itself, then stops.

The daemon runs as a child process (``python -m fluidedge serve --config CONFIG``), exactly as an
operator would start it; the benchmark talks to it over HTTP like any client. It is stopped with
SIGTERM afterwards (the instance manager keeps its prepared shells for the next start, as it
does on any graceful stop).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from fluidedge.core.client import Client
from fluidedge.core.config import load_config, resolve_token
from fluidedge.measure.errors import BenchmarkFailure

START_TIMEOUT_S = 60.0


@contextlib.contextmanager
def served_daemon(config_path: Path) -> Iterator[Client]:
    """Start a daemon from ``config_path``, yield a client for it, stop it on exit."""
    config = load_config(config_path)
    url = f"http://{config.api.listen}:{config.api.port}"
    with contextlib.suppress(httpx.HTTPError):
        if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
            raise BenchmarkFailure(f"a daemon already answers on {url}: use --url instead")
    log = tempfile.NamedTemporaryFile(prefix="fluidedge-bench-serve-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "fluidedge", "serve", "--config", str(config_path),
         "--log-level", "warning"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    log.close()
    client: Client | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                tail = Path(log.name).read_text(errors="replace")[-800:]
                raise BenchmarkFailure(f"the daemon exited at start: {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchmarkFailure(f"the daemon did not answer within {START_TIMEOUT_S} s")
            time.sleep(0.1)
        client = Client(url, resolve_token(config.api))
        yield client
    finally:
        if client is not None:
            client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        Path(log.name).unlink(missing_ok=True)
