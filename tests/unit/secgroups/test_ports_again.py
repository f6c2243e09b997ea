"""An instance's ports brought up again under the same names (its restart policy makes it
again with its id, while its old ports are still filtered) replace the old ones.

A real store on a file, the service with the nftables renderer and no network bound (nothing
is installed): the compile of the new program is what refused it ("port: i1.eth0 appears
twice"), so a restarted instance with security groups was never made again."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fluidedge.core.store import Store
from fluidedge.secgroups.driver import FirewallDriver, NftRenderer
from fluidedge.secgroups.persist import Tables
from fluidedge.secgroups.service import SecgroupService

WEB = {"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}


def _instance(name: str, number: int) -> Any:
    iface = SimpleNamespace(
        name="eth0", network="n1", host_ifname=f"fet{number}", addresses=[f"10.9.0.{number}/24"]
    )
    return SimpleNamespace(name=name, interfaces=[iface])


def test_ports_up_again_replace_the_old_ones_with_the_stored_settings(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    try:
        service = SecgroupService(Tables(store), FirewallDriver(NftRenderer()))
        service.load()
        service.create_group({"id": "web", "rules": [WEB]})
        iface = SimpleNamespace(
            name="eth0", port_security=True, allowed_address_pairs=[], security_groups=["web"]
        )
        template = SimpleNamespace(interfaces=[iface])
        service.ports_up(_instance("i1", 2), None, template)
        service.ports_up(_instance("i2", 3), None, template)

        service.ports_up(_instance("i1", 2), None, None)  # made again: the stored settings

        ports = {p.id: (p.device, p.groups) for p in service.list_ports()}
        assert ports == {"i1.eth0": ("fet2", ("web",)), "i2.eth0": ("fet3", ("web",))}
    finally:
        store.close()
