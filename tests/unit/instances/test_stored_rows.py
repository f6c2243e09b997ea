"""The instance manager's rows read back at start: what a damaged row may not smuggle in.

An instance's or shell's id becomes a path, a cgroup and a runc argument; its pid is signalled;
an image's rootfs is a directory under the image store. A row whose values could not be
ours is set aside (:mod:`fluidedge.core.rows`), never used.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.rows import set_aside

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.instances.persist import Tables
from fluidedge.instances.reconcile import _kept_here
from fluidedge.instances.records import Instance, Shell

RECORD: dict[str, Any] = {
    "name": "web",
    "id": "fe0123456789",
    "template": "idle",
    "state": "running",
    "pid": 4242,
    "path": "warm",
    "cpus": [0],
    "resources": {"cpus": 1.0, "memory_mb": 64, "pids": 64},
    "interfaces": [],
    "labels": {},
    "timing": {},
    "created_at": 1.0,
    "directory": "/var/lib/fluidedge/instances/fe0123456789",
}


def _tables(tmp_path: Path) -> Tables:
    return Tables(Store(tmp_path / "db.sqlite"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": "../../etc"}, "not a container id of ours"),
        ({"id": "fe0123456780"}, "is not its row's"),
        ({"pid": "4242"}, "is not a non-negative integer"),
        ({"pid": True}, "is not a non-negative integer"),
        ({"cpus": "0-3"}, "is not a list of integers"),
        ({"name": "../web"}, "is not its row's"),
    ],
)
def test_an_instance_row_that_could_not_be_ours_is_set_aside(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    tables = _tables(tmp_path)
    tables.put_instance({**RECORD, "name": "good", "id": "fe00000000aa"})
    tables.put_instance(RECORD)
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute(
            "UPDATE inst_instances SET record = ? WHERE name = 'web'",
            (json.dumps({**RECORD, **change}),),
        )
    db.close()
    loaded = tables.stored_instances(Instance.from_record)
    assert [i.name for i in loaded] == ["good"]
    (aside,) = set_aside(tmp_path / "db.sqlite")
    assert (aside.source, aside.key) == ("inst_instances", "web")
    assert reason in aside.reason


def test_a_shell_row_that_is_not_an_object_is_set_aside(tmp_path: Path) -> None:
    tables = _tables(tmp_path)
    info = {
        "id": "fe00000000bb",
        "template": "idle",
        "state": "ready",
        "pid": 7,
        "directory": "/x",
        "ifaces": [],
        "cpus": [],
    }
    tables.put_shell(info)
    tables.put_shell({**info, "id": "fe00000000cc"})
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("UPDATE inst_shells SET info = '[1, 2]' WHERE id = 'fe00000000cc'")
    db.close()
    assert [s.id for s in tables.stored_shells(Shell.from_info)] == ["fe00000000bb"]
    assert rows.count(tables.store) == 1
    assert tables.store.query("SELECT id FROM inst_shells")[0]["id"] == "fe00000000bb"


HOST_ETH0 = {"name": "eth0", "network": "n", "host_ifname": "eth0", "netns": None}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"directory": "/etc"}, "is not"),
        ({"directory": "/var/lib/fluidedge/instances/shells/fe00000000ff"}, "is not"),
        (
            {
                "shell_ifaces": [
                    {"name": "eth0", "network": "n", "host_ifname": "eth0", "netns": None}
                ]
            },
            "host interface 'eth0' is not one of fe0123456789's",
        ),
    ],
)
def test_what_a_destroy_would_touch_must_be_the_containers_own(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    root = Path("/var/lib/fluidedge/instances/shells")
    record = {**RECORD, "directory": str(root / RECORD["id"]), **change}
    with pytest.raises(ValueError, match=reason):
        _kept_here(Instance.from_record(record), root)


def test_a_containers_own_directory_and_veths_are_kept(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    iface = {"name": "eth0", "network": "n", "host_ifname": "fe0123456789i0", "netns": None}
    record = {
        **RECORD,
        "directory": str(tmp_path / "link" / RECORD["id"]),
        "shell_ifaces": [iface],
    }
    inst = Instance.from_record(record)
    assert _kept_here(inst, tmp_path / "real") is inst  # the same place, spelt another way
