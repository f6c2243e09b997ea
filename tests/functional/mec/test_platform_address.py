"""The ME platform's address keeper (``MecPart._keep_address``) against a real bridge.

The platform network is a Linux bridge of the instances part in the daemon's namespace. Its
address flushed: added again, said once, counted. The bridge deleted: nothing said by this
check (the instances part's own check makes the bridge again and says so), and the address
added once the bridge is back. Before, the deletion was a second error line of ours: the
check's own failure to read a device that was not there.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fluidedge.core.config import parse_config
from fluidedge.core.store import Store
from fluidedge.mec.part import MecConfig, MecPart

pytestmark = pytest.mark.root

BRIDGE = f"fepa{os.getpid() % 100000}"
ADDRESS = "198.51.100.1/24"  # TEST-NET-2: never routed beyond this bridge


def ip(*argv: str) -> str:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=True).stdout


def make_bridge() -> None:
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("link", "set", BRIDGE, "up")


@pytest.fixture
def part(tmp_path: Path) -> Iterator[MecPart]:
    make_bridge()
    network = SimpleNamespace(bridge=BRIDGE, driver="linuxbridge", netns=None)
    manager = SimpleNamespace(networks={"plat": network}, provide_templates=lambda s: [])
    ctx: Any = SimpleNamespace(
        config=parse_config({"state_dir": str(tmp_path)}),
        store=Store(tmp_path / "db.sqlite"),
        parts={"instances": SimpleNamespace(manager=manager)},
    )
    config = MecConfig(
        example_templates=False,
        platform_network="plat",
        platform_address=ADDRESS,
        allow_plain_http=True,  # no listener here: only the keeper
    )
    try:
        yield MecPart(config, ctx)
    finally:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


def test_the_address_is_kept_and_a_gone_bridge_is_not_ours_to_report(
    part: MecPart, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="fluidedge.mec"):
        part._keep_address()  # added (it was never there: the listener's start adds it)
        assert f"inet {ADDRESS}" in ip("addr", "show", "dev", BRIDGE)
        assert part.address_restored == 1
        part._keep_address()
        assert part.address_restored == 1  # there: nothing done

        ip("addr", "flush", "dev", BRIDGE)
        part._keep_address()
        assert f"inet {ADDRESS}" in ip("addr", "show", "dev", BRIDGE)
        assert part.address_restored == 2

        ip("link", "del", BRIDGE)
        part._keep_address()  # neither raises nor says anything
        assert part.address_restored == 2
        make_bridge()  # the instances part's check, made again without our address
        part._keep_address()
        assert f"inet {ADDRESS}" in ip("addr", "show", "dev", BRIDGE)
        assert part.address_restored == 3
    said = [r.getMessage() for r in caplog.records]
    assert sum("was gone" in m for m in said) == 3, said
