"""``fluidedge.linux.links.waiting``: which devices of a parsed ``ip -j link show`` cannot send."""

from __future__ import annotations

from fluidedge.linux.links import waiting


def test_only_devices_operationally_up_are_ready() -> None:
    listing: list[dict[str, object]] = [
        {"ifname": "lo", "operstate": "UNKNOWN"},
        {"ifname": "va", "qdisc": "noqueue", "operstate": "LOWERLAYERDOWN"},  # no carrier yet
        {"ifname": "vb", "qdisc": "noqueue", "operstate": "UP"},
        {"ifname": "eth0", "operstate": "DOWN"},
        {"ifname": "br0"},  # no state given: not known to be up
    ]
    assert waiting(listing, ["vb"]) == []
    assert waiting(listing, ["vb", "va", "gone", "br0", "va", "lo", "eth0"]) == [
        "br0",
        "eth0",
        "gone",
        "lo",
        "va",
    ]
    assert waiting([], []) == []
