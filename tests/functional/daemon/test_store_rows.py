"""Rows damaged inside a sound store file, in a real daemon with real runc containers.

The file passes every open-time check; some rows' content does not decode (an ``sqlite3``
edit, a bit flipped on a disk without checksums, a fault of an older release). The daemon
starts with everything else, sets each such row aside whole (:mod:`fluidedge.core.rows`),
names it in its log, counts it in ``/healthz`` and lists it in ``fluidedge state set-aside``;
the instance whose row was set aside keeps running and is reported as an orphan, never
destroyed; the objects can be declared again under the same names.
"""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from fluidedge.core import rows
from fluidedge.instances import runc
from tests.fixtures.daemon import DaemonFactory, DaemonHandle
from tests.functional.daemon.test_store_instances import _cli, _http, _purge, _service

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_damaged_rows_are_set_aside_and_everything_else_is_served(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = daemon_factory({"tof": {"backend": "none"}, "instances": {"pool_scale": 0.5}})
    try:
        _damage_and_restart(daemon)
    finally:
        _purge(daemon)


def _damage_and_restart(daemon: DaemonHandle) -> None:
    scratch = daemon.state_dir.parent / "not-a-container"
    scratch.mkdir()
    (scratch / "keep").write_text("mine")
    with _http(daemon) as http:
        for index in range(3):
            assert http.post("/service", json=_service(index)).status_code == 200
        made = {
            name: http.post("/v1/instances", json={"name": name, "template": "idle"}).json()
            for name in ("keep", "hurt", "far")
        }
    daemon.stop()
    damage = {
        # an address that is not one; JSON that does not parse; an instance record whose
        # id could name another container (or a path)
        ("UPDATE tof_service SET service_ip = 'not-an-ip' WHERE name = 'svc1'", ()),
        ("UPDATE tof_service SET classify = '{bad' WHERE name = 'svc2'", ()),
        (
            "UPDATE inst_instances SET record = json_set(record, '$.id', '../../etc') "
            "WHERE name = 'hurt'",
            (),
        ),
        # a directory a destroy would remove that is not the container's
        (
            "UPDATE inst_instances SET record = json_set(record, '$.directory', ?) "
            "WHERE name = 'far'",
            (str(scratch),),
        ),
    }
    with sqlite3.connect(daemon.store_path) as db:
        for sql, params in damage:
            assert db.execute(sql, params).rowcount == 1, sql
    db.close()

    daemon.start()
    with _http(daemon) as http:
        services = {s["name"] for s in http.get("/service").json()}
        instances = {i["name"]: i for i in http.get("/v1/instances").json()}
        orphans = {o["id"] for o in http.get("/v1/orphans").json()}
        health = httpx.get(f"{daemon.url}/healthz").json()
    assert services == {"svc0"}
    assert set(instances) == {"keep"}
    assert instances["keep"]["state"] == "running"
    assert instances["keep"]["pid"] == made["keep"]["pid"]
    # The instance whose row was set aside is not destroyed: kept running, an orphan.
    for name in ("hurt", "far"):
        assert made[name]["id"] in orphans
        assert runc.pid_alive(made[name]["pid"])
    assert health["set_aside_rows"] == 4
    assert health["status"] == "ok"
    log = daemon.log()
    for table, key in (
        ("tof_service", "svc1"),
        ("tof_service", "svc2"),
        ("inst_instances", "hurt"),
    ):
        assert f"row {key} of table {table} set aside (" in log

    listed = _cli(daemon, "state", "set-aside", "--json", "--config", str(daemon.config_path))
    assert listed.returncode == 0, listed.stderr
    aside = {(r["source"], r["key"]): r for r in json.loads(listed.stdout)}
    assert set(aside) == {
        ("tof_service", "svc1"),
        ("tof_service", "svc2"),
        ("inst_instances", "hurt"),
        ("inst_instances", "far"),
    }
    assert aside["tof_service", "svc1"]["row"]["service_ip"] == "not-an-ip"  # kept whole
    assert "is not an IP address" in aside["tof_service", "svc1"]["reason"]
    assert "not a container id of ours" in aside["inst_instances", "hurt"]["reason"]
    assert "not-a-container' is not" in aside["inst_instances", "far"]["reason"]
    # The orphans purged: what the set-aside rows named outside is left alone.
    purged = _cli(daemon, "pool", "purge", "--orphans")
    assert purged.returncode == 0, purged.stderr
    assert (scratch / "keep").read_text() == "mine"

    # The names are free: declared again, they are served, and survive the next restart.
    with _http(daemon) as http:
        assert http.post("/service", json=_service(1)).status_code == 200
    daemon.restart()
    with _http(daemon) as http:
        assert {s["name"] for s in http.get("/service").json()} == {"svc0", "svc1"}
    assert httpx.get(f"{daemon.url}/healthz").json()["set_aside_rows"] == 4

    # Dealt with: forgotten one by one, through the API (the admin's token) and the CLI.
    anonymous = httpx.get(f"{daemon.url}/v1/store/set-aside").json()
    assert {r["row"] for r in anonymous} == {"<redacted>"}  # reads without the token
    with _http(daemon) as http:
        listed = {(r["source"], r["key"]): r for r in http.get("/v1/store/set-aside").json()}
        assert listed["tof_service", "svc1"]["row"]["service_ip"] == "not-an-ip"
        svc1 = listed["tof_service", "svc1"]["id"]
        assert httpx.delete(f"{daemon.url}/v1/store/set-aside/{svc1}").status_code == 401
        dropped = http.delete(f"/v1/store/set-aside/{svc1}")
        assert dropped.status_code == 200, dropped.text
        assert dropped.json()["key"] == "svc1"
        again = http.delete(f"/v1/store/set-aside/{svc1}")
        assert again.status_code == 404
        assert f"no row set aside has id {svc1}" in again.json()["detail"]
    svc2 = listed["tof_service", "svc2"]["id"]
    out = _cli(daemon, "state", "set-aside", "--drop", str(svc2))
    assert out.returncode == 0, out.stderr
    assert f"dropped #{svc2}: table tof_service, row svc2" in out.stdout
    assert httpx.get(f"{daemon.url}/healthz").json()["set_aside_rows"] == 2


def test_every_row_of_a_table_failing_refuses_the_start_with_one_clear_line(
    daemon_factory: DaemonFactory,
) -> None:
    """Not damage to a row (a store of another release, or a fault of ours): nothing is set
    aside, the start is refused (exit 3, as any failed start), and the log ends with what is
    wrong and how to recover, after the server's own report."""
    daemon = daemon_factory({"instances": {"pool_scale": 0}})
    try:
        with _http(daemon) as http:
            for name in ("one", "two"):
                answer = http.post("/v1/instances", json={"name": name, "template": "idle"})
                assert answer.status_code == 201, answer.text
        daemon.stop()
        with sqlite3.connect(daemon.store_path) as db:
            assert db.execute("UPDATE inst_instances SET record = '[]'").rowcount == 2
        db.close()
        before = len(daemon.log())
        with pytest.raises(RuntimeError, match="exited early"):
            daemon.start()
        assert daemon.process is not None
        assert daemon.process.returncode == 3
        lines = [line for line in daemon.log()[before:].splitlines() if line.strip()]
        last = next(line for line in reversed(lines) if "the start failed" in line)
        assert "not one of the 2 rows of table inst_instances can be read" in last
        assert "nothing was set aside" in last
        with sqlite3.connect(daemon.store_path) as db:
            assert db.execute("SELECT count(*) FROM inst_instances").fetchone()[0] == 2
            assert rows.listing(db) == []
        db.close()
        # Put right, the same store starts with both.
        with sqlite3.connect(daemon.store_path) as db:
            db.execute("DELETE FROM inst_instances")
        db.close()
        daemon.start()
    finally:
        _purge(daemon)
