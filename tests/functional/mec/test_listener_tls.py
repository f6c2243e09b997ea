"""The Mp1 platform listener over HTTPS: real TLS on a real socket, the app's CA file trusted,
plain HTTP refused, only Mp1's paths served, a bad key a clear error."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.mec.listener import ListenerError, Mp1Listener, mp1_only
from tests.fixtures.tls import self_signed

PREFIXES = ("/mec_app_support/v1", "/mec_service_mgmt/v1")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _daemon(scope: Any, _receive: Any, send: Any) -> None:
    """Stands in for the daemon's ASGI application: 200 with the path it was given."""
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_mp1_is_served_over_https_with_the_certificate_the_apps_trust(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "127.0.0.1")
    port = _free_port()

    async def scenario() -> tuple[int, str, int, str]:
        listener = Mp1Listener(
            mp1_only(lambda: _daemon, PREFIXES), "127.0.0.1", port, tls=(cert, key)
        )
        await listener.start()
        try:
            trust = ssl.create_default_context(cafile=str(cert))  # what /.fe/mec/ca.pem holds
            async with httpx.AsyncClient(verify=trust, timeout=10) as client:
                mp1 = await client.get(f"https://127.0.0.1:{port}/mec_app_support/v1/timing/x")
                other = await client.get(f"https://127.0.0.1:{port}/v1/instances")
            plain = "answered"
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    await client.get(f"http://127.0.0.1:{port}/mec_app_support/v1/timing/x")
            except httpx.HTTPError as exc:
                plain = type(exc).__name__
            untrusted = "answered"
            try:
                async with httpx.AsyncClient(timeout=5) as client:  # the system's CAs only
                    await client.get(f"https://127.0.0.1:{port}/mec_app_support/v1/timing/x")
            except httpx.ConnectError as exc:
                untrusted = "refused" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else str(exc)
            return mp1.status_code, mp1.text, other.status_code, f"{plain}/{untrusted}"
        finally:
            await listener.stop()

    status, path, other, refused = asyncio.run(scenario())
    assert status == 200
    assert path == "/mec_app_support/v1/timing/x"  # handed to the daemon's application
    assert other == 404  # the operator's API is not on the platform network
    plain, untrusted = refused.split("/")
    assert plain != "answered"  # no plain HTTP on a TLS listener
    assert untrusted == "refused"  # a client that does not trust the certificate stops


def test_a_bad_key_is_a_clear_error(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path, "127.0.0.1")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    listener = Mp1Listener(
        mp1_only(lambda: _daemon, PREFIXES), "127.0.0.1", _free_port(), tls=(cert, bad)
    )
    with pytest.raises(ListenerError, match="TLS"):
        asyncio.run(listener.start())
