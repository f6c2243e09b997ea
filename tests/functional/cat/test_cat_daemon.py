"""A real daemon with the ``[cat]`` part on a host without resctrl: it says so, the rest works.

The mount is pointed at a directory that does not exist (as ``/sys/fs/resctrl`` does not on
this machine); the CLI talks to the daemon over HTTP like a user would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

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


# Every CAT operation with a body its schema takes, and one the schema refuses or that
# contradicts itself; (method, path, body, status) as a host without RDT answers.
_CALLS: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("GET", "/v1/cat/classes", None, 501),
    ("POST", "/v1/cat/classes", {"name": "a", "l3": "f", "cpus": "3-1"}, 501),
    ("POST", "/v1/cat/classes", {"name": "a", "cpus": "Ø"}, 400),
    ("POST", "/v1/cat/classes", {"name": "a", "exclusive": 0}, 400),
    ("GET", "/v1/cat/classes/a", None, 501),
    ("PUT", "/v1/cat/classes/a", {"name": "a", "l3": "f"}, 501),
    ("PUT", "/v1/cat/classes/0", {"name": "a", "l3": "f"}, 422),  # path and body disagree
    ("DELETE", "/v1/cat/classes/a", None, 501),
    ("POST", "/v1/cat/layout", {"classes": [{"name": "a"}]}, 501),
    ("POST", "/v1/cat/layout", {"classes": [{"name": "a"}], "replace": 0}, 400),
    ("POST", "/v1/cat/presets/4-4-4", {"cpus": {}, "names": {}, "resource": "L3"}, 501),
    ("POST", "/v1/cat/presets/0", {}, 400),
    ("POST", "/v1/cat/reset", None, 501),
    ("GET", "/v1/cat/instances", None, 501),
    ("GET", "/v1/cat/instances/a", None, 501),
    ("POST", "/v1/cat/classes/a/instances", {"instance": "mec-consumer"}, 404),  # not running
    ("DELETE", "/v1/cat/instances/a", None, 501),
]


def test_every_answer_without_rdt_is_documented(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """The schemathesis run's findings on a host without RDT: each route's 501 (and the
    assignment's 404) is in the served document; a contradiction between path and body is a
    documented 422; what the schema refuses is a 400."""
    daemon = daemon_factory(parts={"cat": {"mount": str(tmp_path / "no-resctrl-here")}})
    headers = {"Authorization": f"Bearer {daemon.token}"}
    with httpx.Client(base_url=daemon.url, headers=headers, timeout=30) as http:
        paths = http.get("/openapi.json").json()["paths"]
        for method, path, body, expected in _CALLS:
            answer = http.request(method, path, json=body)
            assert answer.status_code == expected, (method, path, answer.text)
            template = next(
                t
                for t in paths
                if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(t)), path)
                and method.lower() in paths[t]
            )
            documented = paths[template][method.lower()]["responses"]
            assert str(expected) in documented, (method, template, sorted(documented))
            if expected == 501:
                assert "not supported on this host: no RDT" in answer.json()["detail"]
