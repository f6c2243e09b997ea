"""The daemon against the host's hard cases (root): a full disk (small tmpfs), a read-only state
directory, HTTPS off loopback inside a network namespace, and the CLI reaching that daemon
through its Unix socket."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fluidedge.linux.netns import call_in_netns
from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.tls import self_signed

pytestmark = pytest.mark.root

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOF = {"tof": {"backend": "none"}}


def _svc(index: int) -> dict[str, str]:
    address = ipaddress.IPv4Address("198.18.64.0") + index
    return {"name": f"s{index}", "serviceIP": str(address), "applicationIP": "198.19.0.10"}


@contextlib.contextmanager
def _tmpfs(path: Path, *options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "fe-test", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the file system is full (ENOSPC); return it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    failure: OSError | None = None
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    failure = exc
                    break
    finally:
        os.close(fd)
    assert failure is not None
    assert failure.errno == errno.ENOSPC
    return filler


def test_full_disk_answers_507_and_loses_nothing(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    with _tmpfs(tmp_path / "small", "size=4m", "mode=0700") as small:
        daemon = daemon_factory(TOF, start=False)
        daemon.config["state_dir"] = str(small / "state")
        daemon.write_config()
        daemon.start()
        with httpx.Client(base_url=daemon.url, headers=AUTH) as client:
            assert client.post("/service", json=_svc(1)).status_code == 200
            filler = _fill(small)
            # Under synchronous=FULL the store's WAL is written out to its working size (about
            # 4 MiB) once, so commits go on into that space after the disk is full; a 507
            # comes when the WAL would have to grow. Every 200 before it must survive.
            statuses = []
            accepted = {"s1"}
            for index in range(2, 4000):
                response = client.post("/service", json=_svc(index))
                statuses.append(response.status_code)
                if response.status_code != 200:
                    assert response.status_code == 507, response.text
                    assert "no space left" in response.json()["detail"]
                    break
                accepted.add(_svc(index)["name"])
            assert statuses[-1] == 507, statuses[-5:]
            refused = _svc(len(statuses) + 1)["name"]
            # Reads still work, and the refused write is not there.
            names = {s["name"] for s in client.get("/service").json()}
            assert "s1" in names
            assert refused not in names
            filler.unlink()
            again = client.post("/service", json=_svc(len(statuses) + 1))
            assert again.status_code == 200, again.text
        daemon.restart()
        names = {s["name"] for s in httpx.get(f"{daemon.url}/service").json()}
        assert {refused} | accepted <= names, sorted(accepted - names)
        daemon.stop()


def test_read_only_state_dir_is_a_clear_message(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    with _tmpfs(tmp_path / "ro", "size=1m", "ro") as read_only:
        daemon = daemon_factory(TOF, start=False)
        daemon.config["state_dir"] = str(read_only)
        daemon.write_config()
        with pytest.raises(RuntimeError, match="daemon exited early") as failed:
            daemon.start(timeout=30)
        message = str(failed.value)
        assert f"state directory {read_only} is not usable: Read-only file system" in message
        assert "Traceback" not in message
        assert daemon.process is not None
        assert daemon.process.returncode == 1


def test_off_loopback_needs_tls_then_serves_https(
    api_netns: str, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    plain = daemon_factory(TOF, start=False, api={"listen": "192.0.2.1"}, netns=api_netns)
    with pytest.raises(RuntimeError, match=r"is not loopback: set api.tls_cert and api.tls_key"):
        plain.start(timeout=30)

    cert, key = self_signed(tmp_path, "192.0.2.1")
    daemon = daemon_factory(
        TOF,
        api={"listen": "192.0.2.1", "tls_cert": str(cert), "tls_key": str(key)},
        netns=api_netns,
    )
    https = f"https://192.0.2.1:{daemon.port}"

    def inside() -> tuple[int, list[dict[str, str]], str]:
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trust, headers=AUTH) as client:
            created = client.post(f"{https}/service", json=_svc(1)).status_code
            listed = client.get(f"{https}/service").json()
        try:
            httpx.get(f"http://192.0.2.1:{daemon.port}/healthz", timeout=5)
            plain_text = "answered"
        except httpx.HTTPError as exc:
            plain_text = type(exc).__name__
        return created, listed, plain_text

    created, listed, plain_answer = call_in_netns(api_netns, inside)
    assert created == 200
    assert listed == [_svc(1)]
    assert plain_answer != "answered"  # plain HTTP on the TLS port gets no answer

    # From the host's namespace the TCP address is unreachable, the socket is not: the CLI
    # reaches the daemon with --socket alone (token from the environment).
    assert daemon.socket_path is not None
    result = subprocess.run(
        [sys.executable, "-m", "fluidedge", "--socket", str(daemon.socket_path),
         "service", "list", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "FLUIDEDGE_TOKEN": TOKEN},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"s1"' in result.stdout
