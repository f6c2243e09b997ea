"""The HTTP client the CLI uses to talk to a running daemon.

Endpoint and token come from ``FLUIDEDGE_URL`` / ``FLUIDEDGE_TOKEN``, else from the defaults of
:mod:`fluidedge.daemon.config` (loopback port, token file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from fluidedge.daemon.config import DEFAULT_PORT, DEFAULT_STATE_DIR
from fluidedge.errors import FluidedgeError


class ClientError(FluidedgeError):
    """The daemon answered with an error, or could not be reached."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}" if status else detail)


def _default_token() -> str | None:
    token = os.environ.get("FLUIDEDGE_TOKEN")
    if token:
        return token
    path = Path(os.environ.get("FLUIDEDGE_TOKEN_FILE", DEFAULT_STATE_DIR / "token"))
    try:
        return path.read_text().strip()
    except OSError:
        return None


class Client:
    """A small synchronous JSON client for the daemon API."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 30.0
    ) -> None:
        self.url = url or os.environ.get("FLUIDEDGE_URL", f"http://127.0.0.1:{DEFAULT_PORT}")
        token = token or _default_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, json: Any = None) -> Any:
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
