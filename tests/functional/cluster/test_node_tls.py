"""Node-to-node HTTPS: the cluster part's forwarding client verifies a node's certificate
against ``cluster.ca_file`` (a real TLS server on loopback), and refuses one it does not trust."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from fluidedge.cluster.part import ClusterPart, create_part
from fluidedge.core.config import DaemonConfig
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from tests.fixtures.tls import self_signed


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"node": "there"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Another node's API over HTTPS on loopback: its URL and its certificate."""
    cert, key = self_signed(tmp_path, "127.0.0.1", "node")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


def _part(tmp_path: Path, ca_file: Path | None) -> ClusterPart:
    ctx = DaemonContext(DaemonConfig(state_dir=tmp_path), Store(tmp_path / "s.sqlite"))
    section: dict[str, object] = {
        "etcd": "http://127.0.0.1:1",
        "node": "here",
        "url": "https://127.0.0.1:2",
        "token": "t" * 24,
    }
    if ca_file is not None:
        section["ca_file"] = str(ca_file)
    return create_part(section, ctx)


def test_the_forwarding_client_trusts_the_site_ca_and_nothing_else(
    node: tuple[str, Path], tmp_path: Path
) -> None:
    url, cert = node
    trusting = _part(tmp_path / "a", cert)
    answer = trusting._sync_http.get(f"{url}/v1/nodes")
    assert answer.status_code == 200
    assert answer.json() == {"node": "there"}
    default = _part(tmp_path / "b", None)  # the system's CAs: a self-signed node is refused
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        default._sync_http.get(f"{url}/v1/nodes")
