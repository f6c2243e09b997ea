"""``/v1/intercepts`` on a daemon with the null backend: admin only (a tenant token gets 403,
no token 401 even with open reads), audited, persisted and restored (the pcap appended to),
the copies written with timestamps, nothing about the target in ``/metrics`` or ``/stats``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient
from tests.fixtures.wait import scaled
from tests.unit.tof.test_pipeline import UE2
from tests.unit.tof.test_service_api import AUTH, TOKEN
from tests.unit.tof_accounting.test_usage import bearer_up, reply, send_up

from fluidedge.core.config import parse_config
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from fluidedge.daemon.app import create_app
from fluidedge.daemon.audit import AuditLog
from fluidedge.tof.backend import NullBackend
from fluidedge.tof.config import TofConfig
from fluidedge.tof.intercept.model import read_pcap
from fluidedge.tof.part import TofPart

SERVICE = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}
BODY = {"name": "case-7", "target": {"ue": "198.18.100.1"}, "destination": {"pcap": "c7.pcap"}}


def make(tmp_path: Path) -> tuple[TestClient, NullBackend]:
    tof = TofConfig(backend="none")
    backend = NullBackend(tof)
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    ctx.parts["tof"] = TofPart(tof, ctx, backend=backend)
    audit = AuditLog(tmp_path / "audit.log", max_bytes=1 << 20, backups=1)
    return TestClient(create_app(ctx, audit=audit)), backend


def wait_copied(client: TestClient, n: int) -> dict[str, object]:
    deadline = time.monotonic() + scaled(5)
    while True:
        row = client.get("/v1/intercepts/case-7", headers=AUTH).json()
        if row["stats"]["copied"] >= n or time.monotonic() > deadline:
            return row  # type: ignore[no-any-return]
        time.sleep(0.02)


def test_admin_creates_lists_deletes_and_a_tenant_sees_nothing(tmp_path: Path) -> None:
    client, backend = make(tmp_path)
    with client:
        assert client.post("/service", json=SERVICE, headers=AUTH).status_code == 200
        assert client.post("/v1/tenants", json={"name": "acme"}, headers=AUTH).status_code == 201
        made = client.post("/v1/tenants/acme/tokens", json={"description": "t"}, headers=AUTH)
        tenant = {"Authorization": f"Bearer {made.json()['token']}"}
        # Nobody but the admin: a tenant token (403), no token (401, reads are open here).
        assert client.post("/v1/intercepts", json=BODY, headers=tenant).status_code == 403
        assert client.post("/v1/intercepts", json=BODY).status_code == 401
        created = client.post("/v1/intercepts", json=BODY, headers=AUTH)
        assert created.status_code == 201, created.text
        row = created.json()
        assert row["destination"]["pcap"] == str((tmp_path / "intercepts" / "c7.pcap").resolve())
        assert row["state"] == "active"
        for path in ("/v1/intercepts", "/v1/intercepts/case-7"):
            assert client.get(path, headers=tenant).status_code == 403
            assert client.get(path).status_code == 401
        assert client.delete("/v1/intercepts/case-7", headers=tenant).status_code == 403
        # Conflicts and bad requests.
        again = client.post("/v1/intercepts", json={**BODY, "name": "x"}, headers=AUTH)
        assert again.status_code == 409  # the UE is intercepted already
        assert client.post("/v1/intercepts", json=BODY, headers=AUTH).status_code == 409
        bad = {**BODY, "name": "y", "target": {"ue": "198.18.100.2"}}
        # Malformed (400); well-formed but not possible here (409: a schema-valid request is
        # never a 400): an interface that cannot be opened, a file that exists, both or none.
        for dest, code in (
            ({"pcap": "../../etc/x.pcap"}, 400),
            ({"interface": "a b"}, 400),
            ({"interface": "nosuchif0"}, 409),
            ({"pcap": "c7.pcap"}, 409),
            ({"pcap": "/etc/x.pcap"}, 409),
            ({}, 409),
        ):
            r = client.post("/v1/intercepts", json={**bad, "destination": dest}, headers=AUTH)
            assert r.status_code == code, (dest, r.text)
        # Traffic: UE1's packets are copied, UE2's are not.
        p = backend.pipeline
        bearer_up(p)
        bearer_up(p, UE2, 0x101)
        with backend._lock:
            send_up(p, b"a" * 10, 2.0)
            send_up(p, b"b" * 20, 2.0, ue=UE2, teid=0x101)
            reply(p, b"c" * 30, 2.1)
            reply(p, b"d" * 40, 2.1, ue=UE2)
        assert wait_copied(client, 2)["stats"] == {  # type: ignore[comparison-overlap]
            "copied": 2,
            "queued": 0,
            "dropped": 0,
            "errors": 0,
            "error": None,
        }
        # Nothing about the target where others may look.
        for path in ("/metrics", "/stats", "/tunnels"):
            assert "case-7" not in client.get(path, headers=AUTH).text
        assert "case-7" not in client.get("/metrics", headers=AUTH).text
        assert [r["name"] for r in client.get("/v1/intercepts", headers=AUTH).json()] == ["case-7"]
    # Restart: the intercept comes back and its pcap is appended to.
    client, backend = make(tmp_path)
    with client:
        assert client.get("/v1/intercepts/case-7", headers=AUTH).json()["state"] == "active"
        p = backend.pipeline
        bearer_up(p)
        with backend._lock:
            send_up(p, b"e" * 50, 3.0)
        wait_copied(client, 1)
        deleted = client.delete("/v1/intercepts/case-7", headers=AUTH)
        assert deleted.status_code == 200
        with backend._lock:
            send_up(p, b"f" * 60, 4.0)  # after the stop: not copied
        assert client.get("/v1/intercepts/case-7", headers=AUTH).status_code == 404
        assert client.get("/v1/intercepts", headers=AUTH).json() == []
    pcap = tmp_path / "intercepts" / "c7.pcap"
    assert pcap.stat().st_mode & 0o777 == 0o600
    records = read_pcap(pcap.read_bytes())
    sizes = [len(packet) for _, packet in records]
    assert sizes == [20 + 8 + 10, 20 + 8 + 30, 20 + 8 + 50]
    assert all(abs(t / 1e9 - time.time()) < 60 for t, _ in records)
    # Audited: who created and deleted it, its target.
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    mine = [a for a in audit if a.get("path", "").startswith("/v1/intercepts")]
    ok = [(a["method"], a["status"], a.get("intercept"), a.get("target")) for a in mine]
    assert ("POST", 201, "case-7", "198.18.100.1") in ok
    assert ("DELETE", 200, "case-7", "198.18.100.1") in ok
    assert any(a["status"] == 403 and a.get("auth") == "tenant-token" for a in mine)


def test_a_stored_pcap_outside_the_allowed_directories_is_not_written_at_restart(
    tmp_path: Path,
) -> None:
    """A row whose pcap was moved (a hand edit, or a directory no longer allowed by the
    config): the restart opens nothing there, creates nothing, and says why in the row."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    client, _backend = make(tmp_path)
    with client:
        assert client.post("/v1/intercepts", json=BODY, headers=AUTH).status_code == 201
    store = Store(tmp_path / "db.sqlite")
    with store.transaction() as conn:
        conn.execute("UPDATE tof_intercept SET pcap = ?", (str(elsewhere / "c7.pcap"),))
    store.close()
    client, _backend = make(tmp_path)
    with client:
        row = client.get("/v1/intercepts/case-7", headers=AUTH).json()
        assert row["state"] != "active"
        assert "is not an allowed directory" in json.dumps(row)
    assert not (elsewhere / "c7.pcap").exists()
