"""The HTTP server: uvicorn on the TCP listener (HTTPS off loopback) plus the Unix socket.

One uvicorn server, one event loop, one application: the Unix socket (``state_dir/api.sock``,
0600 in the 0700 state directory, so only the daemon's user can connect) is one more listener
of the same server, added after the TCP one. It serves plain HTTP (the kernel carries the bytes,
nothing to encrypt) with the same token rules as TCP. It is what the CLI uses by default, and
how it reaches a daemon running inside a network namespace (a path in the file system is seen
from every namespace; a loopback address is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from pathlib import Path

import uvicorn

from fluidedge.daemon.errors import StateDirError


class DaemonServer(uvicorn.Server):
    """uvicorn's server with the API's Unix socket as a second listener."""

    def __init__(self, config: uvicorn.Config, socket_path: Path | None) -> None:
        super().__init__(config)
        self.socket_path = socket_path

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or self.socket_path is None:
            return
        config = self.config

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        path = self.socket_path
        _remove_stale_socket(path)
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.get_running_loop().create_unix_server(
                protocol, path=str(path), backlog=config.backlog
            )
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self.servers.append(server)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.socket_path is not None:
            _remove_stale_socket(self.socket_path)


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a previous run; refuse to remove anything that is not one."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StateDirError(f"api.socket: {path} exists and is not a socket; not removed")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
