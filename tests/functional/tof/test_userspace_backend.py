"""The userspace backend's life cycle on real namespaces (no lab)."""

from __future__ import annotations

import gc
import os
import subprocess
from typing import Any

import pytest

from fluidedge.linux import netns
from fluidedge.tof.config import TofConfig
from fluidedge.tof.errors import DataPlaneError
from fluidedge.tof.userspace import UserspaceBackend
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.root


def _links(ns: str) -> str:
    return subprocess.run(
        ["ip", "-n", ns, "-o", "link"], capture_output=True, text=True, check=True
    ).stdout


def test_start_stop_leaves_nothing_and_bad_config_fails_cleanly() -> None:
    ns = f"tofbk{os.getpid() % 100000}"
    netns.create(ns)
    try:
        for name in ("s1enb", "s1sgw"):
            subprocess.run(
                ["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                check=True,
            )
        config = TofConfig(netns=ns, apps_tun="tofapps", ue_pools=["198.18.100.0/24"])
        backend = UserspaceBackend(config)
        backend.start()
        try:
            assert "tofapps" in _links(ns)
            routes = subprocess.run(
                ["ip", "-n", ns, "route"], capture_output=True, text=True, check=True
            ).stdout
            assert "198.18.100.0/24 dev tofapps" in routes
            assert backend.stats()["dataplane"] == "running"

            def io() -> dict[str, Any]:
                return backend.stats()["io"]  # type: ignore[no-any-return]

            # The first tick froze the start-up heap (fluidedge.tof.gcfreeze)...
            wait_for(lambda: io().get("gc_freezes"), 10, lambda: f"a freeze, io {io()}")
            assert io()["gc_frozen_objects"] > 0
        finally:
            backend.stop()
        assert gc.get_freeze_count() == 0  # ...and the thread's end unfroze it
        assert "tofapps" not in _links(ns)  # the TUN and its route left with the fd
        assert backend.stats()["dataplane"] == "stopped"
        broken = UserspaceBackend(TofConfig(netns=ns, enb_interface="nosuch0"))
        with pytest.raises(DataPlaneError, match="nosuch0"):
            broken.start()
        assert "tofapps" not in _links(ns)
    finally:
        netns.delete(ns)
