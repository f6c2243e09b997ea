"""Mp1 on the platform network: a second HTTP listener that serves only Mp1's paths.

App instances reach the platform through their platform interface (seed §4.4.1.1.2), not
through the daemon's loopback API. The ME platform part gives the platform network's bridge
its address (``[mec] platform_address``) and listens there with uvicorn's protocol, on the
daemon's event loop, handing each request to the daemon's own ASGI application (edge
middleware, audit and Mp1's own authentication included). Every other path is a 404
ProblemDetails: an app never reaches the operator's API, not even its open reads.

HTTPS with the daemon's own certificate and key (``api.tls_cert``/``api.tls_key``), which
each app instance receives as the CA of its Mp1 client (``/.fe/mec/ca.pem``,
``MEC_CA_FILE``): the listener is off loopback, so the daemon's rule for its own API applies.
Plain HTTP only with ``[mec] allow_plain_http = true`` (e.g. a lab: the platform network is a
bridge private to the host and its app instances, whose ports are filtered by port security).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import subprocess
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

from fluidedge.linux import addrs
from fluidedge.mec.errors import MecError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class ListenerError(MecError):
    """The platform listener could not start (its address, its port)."""


def mp1_only(app: Callable[[], Any], prefixes: tuple[str, ...]) -> Asgi:
    """An ASGI app passing Mp1's paths to the daemon's application (``app()``), nothing else."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if any(path == p or path.startswith(p + "/") for p in prefixes):
            await app()(scope, receive, send)
            return
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": "the platform network serves Mp1 only",
                "instance": path,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return serve


def add_address(bridge: str, address: ipaddress.IPv4Interface) -> bool:
    """Give ``bridge`` (host namespace) ``address``; True if it was not there."""
    shown = subprocess.run(
        addrs.argv(dev=bridge), capture_output=True, text=True, timeout=10, check=False
    )
    if shown.returncode != 0:
        raise ListenerError(f"[mec] platform_network: bridge {bridge}: {shown.stderr.strip()}")
    device = addrs.parse(shown.stdout).get(bridge)
    if device is not None and device.has(address):
        return False
    added = subprocess.run(
        ["ip", "addr", "add", str(address), "dev", bridge],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    if added.returncode != 0:
        raise ListenerError(f"[mec] platform_address {address} on {bridge}: {added.stderr.strip()}")
    return True


def device_exists(name: str) -> bool:
    """Whether the daemon's namespace has a network device ``name`` (no process started)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def remove_address(bridge: str, address: ipaddress.IPv4Interface) -> None:
    subprocess.run(
        ["ip", "addr", "del", str(address), "dev", bridge],
        capture_output=True, timeout=10, check=False,
    )  # fmt: skip


class Mp1Listener:
    """uvicorn on ``host:port`` serving :func:`mp1_only` on the running event loop."""

    def __init__(
        self, app: Asgi, host: str, port: int, *, tls: tuple[Path | None, Path | None] | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls  # (certificate, key) files: HTTPS
        self.server: uvicorn.Server | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="off",
            access_log=False,
            log_config=None,
            http="h11",
            ssl_certfile=str(self.tls[0]) if self.tls and self.tls[0] else None,
            ssl_keyfile=str(self.tls[1]) if self.tls and self.tls[1] else None,
        )
        try:
            config.load()  # the TLS context too: a bad certificate or key fails here
        except OSError as exc:
            raise ListenerError(f"[mec] Mp1 on {self.host}:{self.port}: TLS: {exc}") from exc
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ListenerError(f"[mec] Mp1 on {self.host}:{self.port}: {exc}") from exc
        sock.set_inheritable(True)
        self.server = uvicorn.Server(config)
        # What Server.serve() does before startup (serve() itself would take the signals).
        self.server.lifespan = config.lifespan_class(config)
        await self.server.startup(sockets=[sock])
        if not self.server.started:
            raise ListenerError(f"[mec] Mp1 on {self.host}:{self.port}: did not start")

    async def stop(self) -> None:
        server = self.server
        if server is None:
            return
        self.server = None
        server.should_exit = True
        await asyncio.wait_for(server.shutdown(), timeout=10)
