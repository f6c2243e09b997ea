"""A TOF whose namespace or interfaces are not there when the daemon starts waits for them,
and the rest of the daemon serves meanwhile (a real ``fluidedge serve``, the userspace data
plane, a real instance manager).

What it waits for is named as it changes (the namespace, then its interfaces); services are
declared while it waits and offloaded once it runs; an on-demand service, which needs the data
plane's control calls, gets a 503 saying why; a stop while it waits is prompt and clean.
"""

from __future__ import annotations

import secrets
import signal
from typing import Any

import httpx
import pytest

from fluidedge.linux import netns
from fluidedge.linux.proc import run
from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _tof(name: str) -> dict[str, Any]:
    return {
        "backend": "userspace",
        "netns": name,
        "enb_interface": "s1enb",
        "sgw_interface": "s1sgw",
        "apps_tun": "tofapps",
        "ue_pools": ["198.18.100.0/24"],
        "program_check_interval": 0.2,
    }


def _health(daemon: DaemonHandle) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(f"{daemon.url}/healthz").json()
    return got


def _http(daemon: DaemonHandle) -> httpx.Client:
    return httpx.Client(
        base_url=daemon.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )


def _stopped_cleanly(daemon: DaemonHandle) -> None:
    """A graceful stop: uvicorn re-raises the SIGTERM once the parts stopped; nothing failed."""
    assert daemon.process is not None
    assert daemon.process.returncode == -signal.SIGTERM
    assert "Traceback" not in daemon.log()


def test_the_tof_waits_for_its_namespace_then_its_interfaces_then_runs(
    daemon_factory: DaemonFactory,
) -> None:
    name = f"fe-tofw-{secrets.token_hex(3)}"
    daemon = daemon_factory({"tof": _tof(name), "instances": {"pool_scale": 1}})
    try:
        with _http(daemon) as http:
            gone = f"network namespace {name!r} does not exist"
            assert _health(daemon)["waiting"] == {"tof": gone}
            assert http.get("/stats").json()["dataplane"] == f"waiting: {gone}"
            # The rest of the node serves: an instance runs.
            made = http.post("/v1/instances", json={"name": "i1", "template": "idle"})
            assert made.status_code == 201, made.text
            assert made.json()["state"] == "running"
            web = {"name": "web", "serviceIP": "198.18.50.1", "applicationIP": "198.19.0.10"}
            assert http.post("/service", json=web).status_code == 200  # the seed's API: 200
            ondemand = {
                "name": "od",
                "serviceIP": "198.18.50.9",
                "onDemand": {"template": "idle", "addressPool": "198.19.0.128/28"},
            }
            refused = http.post("/service", json=ondemand)
            assert refused.status_code == 503, refused.text
            assert gone in refused.json()["detail"]

            netns.create(name)  # the operator's set-up, in two steps
            absent = f"interfaces s1enb, s1sgw are not in namespace {name}"
            assert wait_until(lambda: _health(daemon)["waiting"] == {"tof": absent}, timeout=10)
            for dev in ("s1enb", "s1sgw"):
                run(["ip", "-n", name, "link", "add", dev, "type", "veth", "peer", f"{dev}p"])
            assert wait_until(lambda: http.get("/stats").json()["dataplane"] == "running", 20)
            stats = http.get("/stats").json()
            assert sorted(stats["services"]) == ["web"]  # pushed into the running plane
            assert _health(daemon) | {"waiting": {}} == _health(daemon)
            assert _health(daemon)["status"] == "ok"
            # The data plane is the real one: its apps TUN exists in the namespace now.
            assert "tofapps" in run(["ip", "-n", name, "-br", "link"]).stdout
            log = daemon.log()
            assert log.count("event=tof_waiting") == 2  # once per distinct reason
            assert "event=tof_started" in log
    finally:
        daemon.stop()
        netns.delete(name)
    _stopped_cleanly(daemon)


def test_a_stop_while_the_tof_waits_is_prompt_and_clean(daemon_factory: DaemonFactory) -> None:
    name = f"fe-tofw-{secrets.token_hex(3)}"
    accounting = {"enabled": True, "jsonl": {}}
    daemon = daemon_factory({"tof": {**_tof(name), "accounting": accounting}})
    assert _health(daemon)["status"] == "degraded"
    with _http(daemon) as http:  # usage: nothing counted yet, said as such (not "off")
        usage = http.get("/usage")
        assert usage.status_code == 503, usage.text
        assert f"network namespace {name!r} does not exist" in usage.json()["detail"]
    daemon.stop(timeout=10)
    _stopped_cleanly(daemon)
    assert not netns.exists(name)  # waiting never makes the operator's namespace
