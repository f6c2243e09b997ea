"""Fixtures of the ME platform's functional tests: a real HTTP server on loopback standing in
for the apps' notification endpoints, recording every POST it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fixtures.daemon import DaemonFactory, DaemonHandle

Hook = Callable[[str, dict[str, Any]], None]

# A daemon's start is seconds, but tens of seconds on a loaded 2-core machine (the fixture's
# default is 30 s): the deadline bounds a failure, not the expected time.
START_TIMEOUT = 120.0


def up(factory: DaemonFactory, parts: dict[str, dict[str, Any]]) -> DaemonHandle:
    """A started daemon with ``parts``."""
    daemon = factory(parts, start=False)
    daemon.start(timeout=START_TIMEOUT)
    return daemon


class Callbacks:
    """What the callback server received: (path, JSON body) in arrival order."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.hooks: list[Hook] = []  # called (in the server's thread) after each POST

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.received if p == path]


@pytest.fixture
def callbacks() -> Iterator[Callbacks]:
    state: list[Callbacks] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            sink = state[0]
            with sink.lock:
                sink.received.append((self.path, body))
            self.send_response(204)
            self.end_headers()
            for hook in list(sink.hooks):
                hook(self.path, body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(Callbacks(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
