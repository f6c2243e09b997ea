"""etcd over TLS with client certificates: a real etcd (``--client-cert-auth``) on loopback;
the cluster's etcd client, configured with ``cluster.etcd_ca_file`` and its certificate and
key, reads and writes through the JSON gateway; without its certificate, or without the CA
that signed the server's, it is refused."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.cluster.config import ClusterConfig
from fluidedge.cluster.errors import ClusterFailure
from fluidedge.cluster.etcd import Etcd
from tests.fixtures.daemon import _free_port
from tests.fixtures.tls import self_signed
from tests.fixtures.wait import wait_for

TOKEN = "t" * 24


@pytest.fixture
def etcd_tls(tmp_path: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    """An etcd that requires client certificates: (URL, server cert, client cert, key)."""
    server_cert, server_key = self_signed(tmp_path, "127.0.0.1", "etcd")
    client_cert, client_key = self_signed(tmp_path, "127.0.0.1", "node")
    # what etcd trusts for clients: the node's certificate, and its own (its JSON gateway
    # dials its gRPC server with the server certificate); a site CA signing both does the same
    trusted = tmp_path / "clients.pem"
    trusted.write_bytes(client_cert.read_bytes() + server_cert.read_bytes())
    url = f"https://127.0.0.1:{_free_port()}"
    peer = f"http://127.0.0.1:{_free_port()}"
    log = (tmp_path / "etcd.log").open("wb")
    process = subprocess.Popen(
        [
            "etcd", "--name", "m0", "--data-dir", str(tmp_path / "data"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"m0={peer}",
            "--cert-file", str(server_cert), "--key-file", str(server_key),
            "--client-cert-auth", "--trusted-ca-file", str(trusted),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield url, server_cert, client_cert, client_key
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def config(url: str, **tls: Path) -> ClusterConfig:
    return ClusterConfig(etcd=url, node="here", url="https://127.0.0.1:2", token=TOKEN, **tls)


def works(etcd: Etcd) -> bool:
    try:
        etcd.put("/fe-tls/probe", {"ok": True})
    except ClusterFailure:
        return False
    return etcd.get_prefix("/fe-tls/") == {"/fe-tls/probe": {"ok": True}}


def test_the_etcd_client_presents_its_certificate_and_verifies_etcds(
    etcd_tls: tuple[str, Path, Path, Path],
) -> None:
    url, server_cert, client_cert, client_key = etcd_tls
    full = config(
        url, etcd_ca_file=server_cert, etcd_cert_file=client_cert, etcd_key_file=client_key
    )
    etcd = Etcd(full.etcd, verify=full.etcd_verify())
    try:
        wait_for(lambda: works(etcd), 30, "etcd over TLS answering")
        lease = etcd.grant(5)
        assert etcd.keepalive(lease)
    finally:
        etcd.close()
    # without a client certificate: etcd refuses the handshake
    no_cert = config(url, etcd_ca_file=server_cert)
    anonymous = Etcd(no_cert.etcd, verify=no_cert.etcd_verify())
    # without the CA that signed etcd's certificate: we refuse etcd
    untrusting = Etcd(url)
    try:
        with pytest.raises(ClusterFailure):
            anonymous.put("/fe-tls/probe", {"ok": False})
        with pytest.raises(ClusterFailure):
            untrusting.get_prefix("/fe-tls/")
    finally:
        anonymous.close()
        untrusting.close()


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    cert, _key = self_signed(tmp_path, "127.0.0.1", "node")
    with pytest.raises(ValueError, match="https://"):
        config("http://127.0.0.1:2379", etcd_ca_file=cert)
    with pytest.raises(ValueError, match="etcd_key_file"):
        config("https://127.0.0.1:2379", etcd_cert_file=cert)
    with pytest.raises(ValueError, match="mix"):
        config("https://127.0.0.1:2379,http://127.0.0.1:2380")
    with pytest.raises(ValueError, match="etcd TLS"):
        config("https://127.0.0.1:2379", etcd_ca_file=tmp_path / "missing.pem").etcd_verify()
    assert config("https://127.0.0.1:2379").etcd_verify() is True
