"""Which of the things found at start are orphans (pure: names in, verdicts out)."""

from __future__ import annotations

from pathlib import Path

from fluidedge.instances.orphans import find_orphans

KNOWN = "fe0000000001"
LOST = "fe00000000aa"
DIR_ONLY = "fe00000000bb"


def test_unknown_containers_dirs_and_veths_are_orphans_known_ones_are_not() -> None:
    orphans = find_orphans(
        containers={
            KNOWN: {"status": "running", "pid": 10},
            LOST: {"status": "running", "pid": 11},
        },
        known={KNOWN},
        shell_dirs=[Path(f"/s/{KNOWN}"), Path(f"/s/{LOST}"), Path(f"/s/{DIR_ONLY}")],
        bridge_ports={
            "apps": [f"{KNOWN}i0", f"{LOST}i0", f"{LOST}i1", "fe0000000cc0i0", "eth0"],
            "other": ["fe00000000ddi0", "vethXYZ"],
        },
        known_veths={f"{KNOWN}i0"},
    )
    assert set(orphans) == {LOST, DIR_ONLY, "fe0000000cc0i0", "fe00000000ddi0"}
    lost = orphans[LOST]
    assert (lost.kind, lost.status, lost.pid) == ("container", "running", 11)
    assert lost.veths == [f"{LOST}i0", f"{LOST}i1"]
    assert lost.directory == f"/s/{LOST}"
    assert orphans[DIR_ONLY].kind == "directory"
    assert orphans["fe00000000ddi0"].kind == "veth"
    assert orphans["fe0000000cc0i0"].kind == "veth"
    # Links without a shell-style name (another tool's) are never ours: eth0, vethXYZ.


def test_nothing_found_nothing_reported() -> None:
    assert find_orphans({}, set(), [], {}, set()) == {}
