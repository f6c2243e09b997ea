"""The HTTP client the CLI uses to talk to a running daemon.

Where the daemon is, first match wins: an explicit ``socket`` or ``url`` argument (the CLI's
``--socket``/``--url``), ``FLUIDEDGE_SOCKET``, ``FLUIDEDGE_URL``, the daemon's Unix socket
``<state dir>/api.sock`` when it exists, else ``http://127.0.0.1:8181``. The state directory is
``FLUIDEDGE_STATE_DIR`` (default ``/var/lib/fluidedge``, the daemon's default). The socket
reaches a daemon whatever network namespace it runs in. The token: ``FLUIDEDGE_TOKEN``, else the
file ``FLUIDEDGE_TOKEN_FILE``, else ``<state dir>/token`` (where the daemon writes it). For an
HTTPS daemon with a private CA, ``FLUIDEDGE_CA`` names the CA bundle to verify it with.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from fluidedge.core.config import (
    DEFAULT_PORT,
    DEFAULT_SOCKET_NAME,
    DEFAULT_STATE_DIR,
    TOKEN_FILE_NAME,
)
from fluidedge.core.errors import CoreError


class ClientError(CoreError):
    """The daemon answered with an error, or could not be reached."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}" if status else detail)


def state_dir() -> Path:
    return Path(os.environ.get("FLUIDEDGE_STATE_DIR") or DEFAULT_STATE_DIR)


def _default_token() -> str | None:
    token = os.environ.get("FLUIDEDGE_TOKEN")
    if token:
        return token
    path = Path(os.environ.get("FLUIDEDGE_TOKEN_FILE") or state_dir() / TOKEN_FILE_NAME)
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _is_socket(path: Path) -> bool:
    try:
        return path.is_socket()
    except OSError:  # e.g. a 0700 state directory of another user
        return False


def endpoint(url: str | None = None, socket: str | None = None) -> tuple[str, Path | None]:
    """``(base URL, Unix socket or None)`` by the precedence of the module docstring."""
    if socket:
        return "http://fluidedge", Path(socket)
    if url:
        return url, None
    if os.environ.get("FLUIDEDGE_SOCKET"):
        return "http://fluidedge", Path(os.environ["FLUIDEDGE_SOCKET"])
    if os.environ.get("FLUIDEDGE_URL"):
        return os.environ["FLUIDEDGE_URL"], None
    default_socket = state_dir() / DEFAULT_SOCKET_NAME
    if _is_socket(default_socket):
        return "http://fluidedge", default_socket
    return f"http://127.0.0.1:{DEFAULT_PORT}", None


class Client:
    """A small synchronous JSON client for the daemon API (TCP, HTTPS or its Unix socket)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        socket: str | None = None,
    ) -> None:
        base, socket_path = endpoint(url, socket)
        self.url = f"unix:{socket_path}" if socket_path else base
        token = token or _default_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        ca = os.environ.get("FLUIDEDGE_CA")
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        transport = httpx.HTTPTransport(
            uds=str(socket_path) if socket_path else None, verify=verify
        )
        self._http = httpx.Client(
            base_url=base, headers=headers, timeout=timeout, transport=transport
        )

    def _send(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ClientError(0, f"cannot reach fluidedge at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except ValueError:
                detail = response.text
            raise ClientError(response.status_code, detail)
        return response

    def page(self, path: str) -> tuple[list[Any], str | None]:
        """(one page of a paged collection, the next page's path or None: the answer's
        ``Link: rel="next"``; see :mod:`fluidedge.core.paging`)."""
        response = self._send("GET", path)
        items = response.json()
        if not isinstance(items, list):
            raise ClientError(response.status_code, f"GET {path}: not a list")
        return items, response.links.get("next", {}).get("url")

    def pages(self, path: str, limit: int) -> Iterator[list[Any]]:
        """Each page of a paged collection, ``limit`` items at most, following the answers'
        ``Link: rel="next"`` until there is none."""
        url: str | None = f"{path}{'&' if '?' in path else '?'}limit={limit}"
        while url is not None:
            items, url = self.page(url)
            yield items

    def request(self, method: str, path: str, json: Any = None) -> Any:
        response = self._send(method, path, json)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def close(self) -> None:
        self._http.close()
