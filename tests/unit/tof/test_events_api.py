"""``GET /tunnels/events``, ``/stats`` and ``/metrics`` show bearer events with their reasons."""

from __future__ import annotations

from pathlib import Path

from tests.unit.tof.bearer_frames import up_from
from tests.unit.tof.test_pipeline import ENB1, SGW1, UE1, UE2
from tests.unit.tof.test_service_api import AUTH, RecordingBackend, _make

from fluidedge.tof.pipeline import ENB


def test_events_stats_and_metrics(tmp_path: Path) -> None:
    backend = RecordingBackend()
    p = backend.pipeline
    p.from_s1(up_from(ENB1, SGW1, 7, UE1), ENB, 1.0)
    p.from_s1(up_from(ENB1, SGW1, 7, UE2), ENB, 2.0)  # TEID 7 now names UE2
    with _make(tmp_path, backend) as client:
        events = client.get("/tunnels/events").json()
        assert [(e["event"], e["reason"], e["ue"]) for e in events] == [
            ("learned", "user_plane", "198.18.100.1"),
            ("retired", "uplink_teid_reused", "198.18.100.1"),
            ("learned", "user_plane", "198.18.100.2"),
        ]
        assert events[1]["replacedBy"] == "198.18.100.2"
        assert events[1]["uplinkTEID"] == 7
        stats = client.get("/stats").json()
        assert stats["bearerEvents"]["retired"] == {"uplink_teid_reused": 1}
        assert stats["counters"]["bearers_retired_uplink_teid_reused"] == 1
        metrics = client.get("/metrics").text
        assert (
            'fluidedge_tof_bearer_events_total{event="retired",reason="uplink_teid_reused"} 1'
            in metrics
        )
        assert client.delete("/tunnels", headers=AUTH).json() == {"purged": 1}
        last = client.get("/tunnels/events").json()[-1]
        assert (last["event"], last["reason"], last["bearers"]) == ("purged", "api", 1)
