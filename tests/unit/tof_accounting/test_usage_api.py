"""``GET /usage`` and the Prometheus totals on a daemon with the null backend; a stop closes
and exports every open record (JSON Lines under the state directory)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from tests.unit.tof.test_pipeline import UE2
from tests.unit.tof.test_service_api import AUTH, TOKEN
from tests.unit.tof_accounting.test_usage import bearer_up, reply, send_up

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame
from fluidedge.core.auth import TokenGuard
from fluidedge.core.config import parse_config
from fluidedge.core.part import DaemonContext
from fluidedge.core.store import Store
from fluidedge.daemon.app import create_app
from fluidedge.tof.backend import NullBackend
from fluidedge.tof.config import TofConfig
from fluidedge.tof.part import TofPart
from fluidedge.tof.pipeline import ENB, Pipeline

SERVICE = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}
UE1_TEID = 0x100


def frame_up(p: Pipeline, teid: int, now: float) -> tuple[bytes, int, float]:
    """``from_s1`` arguments: a 1000-byte uplink packet of UE1 to the service."""
    ue, svc = bytes([198, 18, 100, 1]), bytes([198, 18, 50, 1])
    inner = ipv4.encode(ue, svc, 17, udp.encode(ue, svc, 40000, 8080, b"x" * 972))
    outer = encapsulate_gpdu(bytes([198, 18, 0, 11]), bytes([198, 18, 0, 21]), teid, inner)
    return ethernet_frame(b"\x02" * 6, b"\x04" * 6, outer), ENB, now


def make(
    tmp_path: Path, accounting: bool, ratelimit: dict[str, object] | None = None
) -> tuple[TestClient, NullBackend]:
    acct = {"enabled": True, "jsonl": {}, "period": None} if accounting else {}
    tof = TofConfig(backend="none", accounting=acct, ratelimit=ratelimit or {})  # type: ignore[arg-type]
    backend = NullBackend(tof)
    config = parse_config({"state_dir": str(tmp_path), "api": {"token": TOKEN}})
    ctx = DaemonContext(config=config, store=Store(tmp_path / "db.sqlite"))
    ctx.parts["tof"] = TofPart(tof, ctx, backend=backend)
    return TestClient(create_app(ctx)), backend


def test_usage_filters_metrics_and_export_on_stop(tmp_path: Path) -> None:
    client, backend = make(tmp_path, accounting=True)
    with client:
        assert client.post("/service", json=SERVICE, headers=AUTH).status_code == 200
        p = backend.pipeline
        bearer_up(p)
        bearer_up(p, UE2, 0x101)
        up1 = send_up(p, b"a" * 50, 2.0)
        down1 = reply(p, b"b" * 70, 2.1)
        send_up(p, b"c", 2.0, ue=UE2, teid=0x101)
        body = client.get("/usage").json()
        assert body["enabled"] is True
        assert len(body["open"]) == 2
        one = client.get("/usage", params={"ue": "198.18.100.1", "service": "web"}).json()
        (row,) = one["open"]
        assert row["uplink"] == {"packets": 1, "bytes": up1}
        assert row["downlink"] == {"packets": 1, "bytes": down1}
        assert (row["uplinkTEID"], row["downlinkTEID"]) == (0x100, 0x200)
        assert client.get("/usage", params={"service": "other"}).json()["open"] == []
        bad = client.get("/usage", params={"ue": "198.18.100.01"})
        assert bad.status_code == 400
        assert "ue" in bad.json()["detail"]
        assert client.get("/usage", params={"service": "no spaces"}).status_code == 400
        metrics = client.get("/metrics").text
        assert (
            f'fluidedge_tof_usage_bytes_total{{direction="down",service="web"}} {down1}.0'
            in metrics
        )
        assert "fluidedge_tof_usage_open_records 2.0" in metrics
    # The daemon stopped: both records closed (shutdown) and written.
    path = tmp_path / "accounting" / "records" / "usage.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((r["ue"], r["trigger"]) for r in rows) == [
        ("198.18.100.1", "shutdown"),
        ("198.18.100.2", "shutdown"),
    ]
    assert not (tmp_path / "accounting" / "open.json").exists()


def test_usage_when_off(tmp_path: Path) -> None:
    client, _ = make(tmp_path, accounting=False)
    with client:
        assert client.get("/usage").json() == {
            "enabled": False,
            "open": [],
            "totals": {},
            "export": {},
            "rateLimited": [],
        }
        assert "fluidedge_tof_usage" not in client.get("/metrics").text


def test_usage_is_the_admins_not_a_tenants() -> None:
    """It names subscribers: like every TOF route, a tenant token is refused (403)."""
    assert not TokenGuard.tenant_may("GET", "/usage")
    assert not TokenGuard.tenant_may("GET", "/tunnels")


def test_rate_limited_ues_in_usage_and_metrics(tmp_path: Path) -> None:
    """Per-UE drops in ``GET /usage`` (filtered like the records, with accounting off too),
    per-service totals in ``/metrics``."""
    limits = {"services": {"web": {"uplink": 24_000, "burst": 0.1}}}  # 3000 B/s, 3000 B deep
    client, backend = make(tmp_path, accounting=False, ratelimit=limits)
    with client:
        assert client.post("/service", json=SERVICE, headers=AUTH).status_code == 200
        p = backend.pipeline
        bearer_up(p)
        bearer_up(p, UE2, 0x101)
        size = send_up(p, b"a" * 972, 2.0)  # 1000 bytes each: the burst holds 3
        assert size == 1000
        passed = [p.from_s1(*frame_up(p, UE1_TEID, 2.0)) for _ in range(4)]
        assert [bool(out) for out in passed] == [True, True, False, False]
        send_up(p, b"b" * 972, 2.0, ue=UE2, teid=0x101)  # UE2 has its own bucket
        body = client.get("/usage").json()
        assert body["enabled"] is False
        assert body["rateLimited"] == [
            {
                "ue": "198.18.100.1",
                "service": "web",
                "uplink": {"droppedPackets": 2, "droppedBytes": 2000},
                "downlink": {"droppedPackets": 0, "droppedBytes": 0},
            }
        ]
        assert client.get("/usage", params={"ue": "198.18.100.2"}).json()["rateLimited"] == []
        assert client.get("/usage", params={"service": "x"}).json()["rateLimited"] == []
        metrics = client.get("/metrics").text
        assert (
            'fluidedge_tof_rate_limited_bytes_total{direction="up",service="web"} 2000.0' in metrics
        )
        assert 'fluidedge_tof_drops_total{reason="rate_limited_uplink"} 2.0' in metrics


def test_usage_pages_follow_the_link_and_see_each_record_once(tmp_path: Path) -> None:
    client, backend = make(tmp_path, accounting=True)
    with client:
        assert client.post("/service", json=SERVICE, headers=AUTH).status_code == 200
        p = backend.pipeline
        ues = [bytes([198, 18, 100, i]) for i in range(1, 6)]
        for i, ue in enumerate(ues):
            bearer_up(p, ue, 0x100 + i)
            send_up(p, b"a" * (10 + i), 2.0, ue=ue, teid=0x100 + i)
        every = client.get("/usage").json()["open"]
        assert len(every) == 5
        seen: list[dict[str, object]] = []
        url: str | None = "/usage?limit=2"
        pages = 0
        while url is not None:
            r = client.get(url)
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["open"]) <= 2
            assert body["totals"]["open"] == 5  # the totals are always every record's
            seen += body["open"]
            pages += 1
            link = r.headers.get("link")
            url = link[link.index("<") + 1 : link.index(">")] if link else None
        assert pages == 3
        assert sorted(r["ue"] for r in seen) == sorted(r["ue"] for r in every)
        assert [r["ue"] for r in seen] == sorted(r["ue"] for r in seen)  # by marker
        filtered = client.get("/usage", params={"limit": 1, "ue": "198.18.100.3"})
        assert [r["ue"] for r in filtered.json()["open"]] == ["198.18.100.3"]
        assert "link" not in filtered.headers
        for bad in ({"limit": 0}, {"limit": 1001}, {"after": "c612"}, {"after": "x-y-z-web"}):
            r = client.get("/usage", params=bad)
            assert r.status_code == 400, (bad, r.text)
