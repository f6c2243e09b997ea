"""A real daemon with the ``[cat]`` part on a host without resctrl: it says so, the rest works.

The mount is pointed at a directory that does not exist (as ``/sys/fs/resctrl`` does not on
this machine); the CLI talks to the daemon over HTTP like a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.daemon import DaemonFactory


def _cli(daemon: object, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FLUIDEDGE_URL": daemon.url,  # type: ignore[attr-defined]
        "FLUIDEDGE_TOKEN": daemon.token,  # type: ignore[attr-defined]
    }
    return subprocess.run(
        [sys.executable, "-m", "fluidedge", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_no_rdt_is_stated_and_the_daemon_is_unaffected(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    mount = tmp_path / "no-resctrl-here"
    daemon = daemon_factory(parts={"cat": {"mount": str(mount)}})
    client = daemon.client()
    try:
        assert client.get("/healthz")["parts"] == ["cat"]
        status = _cli(daemon, "cat", "status")
        assert status.returncode == 0, status.stderr
        body = json.loads(status.stdout)
        assert body["supported"] is False
        assert any(str(mount) in check for check in body["checks"])
        listing = _cli(daemon, "cat", "ls")
        assert listing.returncode == 1
        assert "not supported on this host: no RDT" in listing.stderr
        create = _cli(daemon, "cat", "create", "vfw", "--l3", "f0")
        assert create.returncode == 1
        assert "not supported on this host: no RDT" in create.stderr
        assert "fluidedge_cat_supported 0" in client.request("GET", "/metrics")
    finally:
        client.close()
