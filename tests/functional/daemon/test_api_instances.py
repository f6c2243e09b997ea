"""Client errors of the instance manager's API are 4xx (or a documented 504) with a reason, on a
real daemon with real runc; field size limits; template secrets redacted for anonymous reads."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.images import APP_PORT, AppImage
from tests.functional.daemon.conftest import purge_instances

pytestmark = pytest.mark.root

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SUFFIX = os.getpid() % 100000


@pytest.fixture
def api(daemon_factory: DaemonFactory) -> Iterator[httpx.Client]:
    handle = daemon_factory(
        {"instances": {"pool_scale": 0, "memory_mb": 1024, "builtin_templates": False}}
    )
    try:
        with httpx.Client(base_url=handle.url, headers=AUTH, timeout=60) as client:
            yield client
    finally:
        handle.stop()
        purge_instances(handle)


def _template(name: str, **fields: object) -> dict[str, object]:
    return {"name": name, "command": ["/bin/busybox", "sleep", "1000"], **fields}


def test_networks_missing_netns_and_non_bridge_are_refused(api: httpx.Client) -> None:
    missing = api.post("/v1/networks", json={"name": "n1", "bridge": "febr0", "netns": "fe-nope"})
    assert missing.status_code == 404
    assert "namespace 'fe-nope' does not exist" in missing.json()["detail"]
    veth = f"feva{SUFFIX}"[:15]
    subprocess.run(
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", f"fevb{SUFFIX}"[:15]],
        check=True,
    )
    try:
        refused = api.post("/v1/networks", json={"name": "n2", "bridge": veth})
        assert refused.status_code == 409
        assert f"{veth} exists and is a veth: not adopted" in refused.json()["detail"]
        state = subprocess.run(
            ["ip", "-o", "link", "show", veth], capture_output=True, text=True, check=True
        ).stdout
        assert "state DOWN" in state  # left untouched (not set up)
        assert api.get("/v1/networks").json() == []
    finally:
        subprocess.run(["ip", "link", "del", veth], check=False)


LIMIT_CASES: list[tuple[dict[str, object], str]] = [
    ({"files": {"go": "x"}}, "reserved for the launcher"),
    ({"files": {"assign/x": "x"}}, "reserved for the launcher"),
    ({"files": {"started": "x"}}, "reserved for the launcher"),
    ({"description": "d" * 4097}, "at most 4096 characters"),
    ({"env": {"BIG": "v" * 32769}}, "at most 32768 characters"),
    ({"env": {f"K{i}": "v" for i in range(257)}}, "at most 256 items"),
    ({"files": {f"f{i}": "x" for i in range(65)}}, "at most 64 items"),
    ({"files": {"big": "x" * (256 * 1024 + 1)}}, "at most 262144 characters"),
    ({"command": ["/bin/busybox", *["a"] * 256]}, "at most 256 items"),
    ({"command": ["/bin/busybox", "a" * 4097]}, "at most 4096 characters"),
    ({"labels": {"k": "v" * 64}}, "at most 63 characters"),
]


def test_template_field_limits(api: httpx.Client) -> None:
    for fields, reason in LIMIT_CASES:
        response = api.post("/v1/templates", json=_template("limits", **fields))
        assert response.status_code == 400, fields.keys()
        assert reason in response.json()["detail"], fields.keys()
    assert api.get("/v1/templates").json() == []
    # At the limits, accepted.
    edge = _template("edge", description="d" * 4096, env={"BIG": "v" * 32768})
    assert api.post("/v1/templates", json=edge).status_code == 201


def test_template_secrets_are_redacted_without_the_token(api: httpx.Client) -> None:
    spec = _template("secret", env={"PASSWORD": "hunter2"}, files={"key.pem": "PRIVATE"})
    assert api.post("/v1/templates", json=spec).status_code == 201
    anonymous = httpx.get(f"{str(api.base_url).rstrip('/')}/v1/templates/secret").json()
    assert anonymous["env"] == {"PASSWORD": "<redacted>"}
    assert anonymous["files"] == {"key.pem": "<redacted>"}
    listed = httpx.get(f"{str(api.base_url).rstrip('/')}/v1/templates").json()
    assert "hunter2" not in str(listed)
    assert "PRIVATE" not in str(listed)
    full = api.get("/v1/templates/secret").json()
    assert full["env"] == {"PASSWORD": "hunter2"}
    assert full["files"] == {"key.pem": "PRIVATE"}


def test_readiness_timeout_is_504_and_workload_exit_422(api: httpx.Client) -> None:
    slow = _template("slow", readiness={"kind": "tcp", "port": 9, "timeout_s": 0.5})
    assert api.post("/v1/templates", json=slow).status_code == 201
    timed_out = api.post("/v1/instances", json={"name": "s1", "template": "slow"})
    assert timed_out.status_code == 504
    assert "not ready (tcp) within 0.5 s" in timed_out.json()["detail"]
    assert api.get("/v1/instances/s1").status_code == 404
    # A TCP readiness the workload never reaches: it exits first, whatever the host's load.
    dying = _template(
        "dying",
        command=["/bin/busybox", "false"],
        readiness={"kind": "tcp", "port": 9, "timeout_s": 30},
    )
    assert api.post("/v1/templates", json=dying).status_code == 201
    exited = api.post("/v1/instances", json={"name": "d1", "template": "dying"})
    assert exited.status_code == 422
    assert "workload exited" in exited.json()["detail"]
    assert api.get("/v1/instances").json() == []


def test_files_that_cannot_all_be_written_are_422_not_500(api: httpx.Client) -> None:
    # Found by schemathesis: a request's files where one path is a directory of another
    # failed on the host (IsADirectoryError, a 500). The schema cannot say it, so the request
    # is understood and refused (422): in a template, in a request, with the template's files.
    conflict = _template("fx", files={"0/0": "x", "0/0/0/0": "x"})
    refused = api.post("/v1/templates", json=conflict)
    assert refused.status_code == 422, refused.text
    assert "files: file path '0/0' is also the directory of '0/0/0/0'" in refused.json()["detail"]
    assert api.get("/v1/templates/fx").status_code == 404
    dot = api.post("/v1/templates", json=_template("fd", files={"./x": "x"}))
    assert dot.status_code == 422, dot.text
    assert "names '.', a directory, not a file" in dot.json()["detail"]
    assert api.post("/v1/templates", json=_template("fw", files={"www": "x"})).status_code == 201
    for files, reason in (
        ({"0/0/0/0": "", "0/0/0/0/0/0": ""}, "'0/0/0/0' is also the directory of '0/0/0/0/0/0'"),
        ({"www/index.html": "y"}, "'www' is also the directory of 'www/index.html'"),
    ):
        refused = api.post("/v1/instances", json={"name": "f1", "template": "fw", "files": files})
        assert refused.status_code == 422, refused.text
        assert reason in refused.json()["detail"]
    assert api.get("/v1/instances").json() == []
    made = api.post("/v1/instances", json={"name": "f1", "template": "fw", "files": {"www": "z"}})
    assert made.status_code == 201, made.text  # the same path over the template's is fine


def test_instances_list_in_keyset_pages_that_follow_their_link(api: httpx.Client) -> None:
    assert api.post("/v1/templates", json=_template("pg")).status_code == 201
    for name in ("pg-c", "pg-a", "pg-e", "pg-b", "pg-d"):
        made = api.post("/v1/instances", json={"name": name, "template": "pg"})
        assert made.status_code == 201, made.text
    first = api.get("/v1/instances", params={"limit": 2})
    assert [v["name"] for v in first.json()] == ["pg-a", "pg-b"]
    assert first.links["next"]["url"] == "/v1/instances?after=pg-b&limit=2"
    # Between two pages an instance before the marker goes and one after it comes: the walk
    # neither repeats nor skips what stayed, and sees the newcomer.
    assert api.delete("/v1/instances/pg-a").status_code == 204
    made = api.post("/v1/instances", json={"name": "pg-f", "template": "pg"})
    assert made.status_code == 201
    seen = [v["name"] for v in first.json()]
    url: str | None = first.links["next"]["url"]
    while url is not None:
        page = api.get(url)
        assert page.status_code == 200
        assert len(page.json()) <= 2
        seen += [v["name"] for v in page.json()]
        url = page.links.get("next", {}).get("url")
    assert seen == ["pg-a", "pg-b", "pg-c", "pg-d", "pg-e", "pg-f"]
    # a full last page has no Link; without limit: all, no Link; views are whole
    last = api.get("/v1/instances", params={"limit": 2, "after": "pg-d"})
    assert [v["name"] for v in last.json()] == ["pg-e", "pg-f"]
    assert "link" not in last.headers
    whole = api.get("/v1/instances")
    assert [v["name"] for v in whole.json()] == ["pg-b", "pg-c", "pg-d", "pg-e", "pg-f"]
    assert "link" not in whole.headers
    assert whole.json()[0]["state"] == "running"
    assert whole.json()[0] == api.get("/v1/instances", params={"limit": 1}).json()[0]
    for params, reason in (
        ({"limit": 0}, "greater than or equal to 1"),
        ({"limit": 1001}, "less than or equal to 1000"),
        ({"limit": "two"}, "valid integer"),
        ({"after": "PG-A"}, "should match pattern"),
    ):
        refused = api.get("/v1/instances", params=params)
        assert refused.status_code == 400, params
        assert reason in refused.json()["detail"], refused.json()


def test_images_over_http(api: httpx.Client, app_image: AppImage, tmp_path: Path) -> None:
    names = [image["name"] for image in api.get("/v1/images").json()]
    assert names == ["busybox"]  # built at first start from busybox-static
    made = api.post(
        "/v1/images",
        json={"name": "app", "source": str(app_image.oci_archive), "format": "oci-archive"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["config"]["ports"] == [APP_PORT]
    assert api.get("/v1/images/app").json()["rootfs"] == made.json()["rootfs"]
    again = api.post("/v1/images", json={"name": "app", "source": str(app_image.layout)})
    assert again.status_code == 409
    missing = api.post("/v1/images", json={"name": "x", "source": str(tmp_path / "none")})
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["detail"]
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"junk")
    bad = api.post(
        "/v1/images", json={"name": "x", "source": str(junk), "format": "docker-archive"}
    )
    assert bad.status_code == 422
    assert "cannot read docker-archive" in bad.json()["detail"]
    remote = api.post("/v1/images", json={"name": "x", "source": "docker://busybox"})
    assert remote.status_code == 400  # only local paths: no transport can be named
    assert api.post("/v1/templates", json={"name": "web", "image": "app"}).status_code == 201
    used = api.delete("/v1/images/app")
    assert used.status_code == 409
    assert "used by template web" in used.json()["detail"]
    assert api.delete("/v1/templates/web").status_code == 204
    assert api.delete("/v1/images/app").status_code == 204
    assert api.get("/v1/images/app").status_code == 404
    opt_out = api.post(
        "/v1/templates",
        json={**_template("root"), "userns_opt_out": "  "},
    )
    assert opt_out.status_code == 400
    assert "userns_opt_out" in opt_out.json()["detail"]
