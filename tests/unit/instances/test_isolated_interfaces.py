"""A template's ``isolated`` interfaces (a service function's legs): on ``ovs`` and
``linuxbridge`` networks, whose drivers plug them outside the learning switch; not on ``ovn``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fluidedge.instances.catalog import Catalog
from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.models import NetworkSpec, TemplateSpec


class _Tables:
    def __init__(self) -> None:
        self.templates: dict[str, Any] = {}

    def put_template(self, name: str, data: dict[str, Any], builtin: bool) -> None:
        self.templates[name] = data


def _catalog() -> tuple[Catalog, _Tables]:
    tables = _Tables()
    catalog = Catalog(tables, threading.RLock())  # type: ignore[arg-type]
    for name, driver in (("sw", "ovs"), ("lb", "linuxbridge"), ("ln", "ovn")):
        catalog.networks[name] = NetworkSpec(name=name, bridge=f"br{name}", driver=driver)
    return catalog, tables


def _fn(network: str) -> TemplateSpec:
    legs = [{"name": n, "network": network, "isolated": True} for n in ("eth0", "eth1")]
    return TemplateSpec.model_validate({"name": "fn", "interfaces": legs})


@pytest.mark.parametrize("network", ["sw", "lb"])
def test_isolated_interfaces_on_ovs_and_linuxbridge_networks(network: str) -> None:
    catalog, tables = _catalog()
    catalog.create_template(_fn(network))
    stored = tables.templates["fn"]["interfaces"]
    assert [i["isolated"] for i in stored] == [True, True]


def test_isolated_interfaces_refused_on_ovn() -> None:
    catalog, tables = _catalog()
    with pytest.raises(InvalidRequest, match="isolated needs an ovs or linuxbridge network"):
        catalog.create_template(_fn("ln"))
    assert tables.templates == {}


def test_interfaces_are_not_isolated_by_default() -> None:
    spec = TemplateSpec.model_validate(
        {"name": "app", "interfaces": [{"name": "eth0", "network": "lb"}]}
    )
    assert spec.interfaces[0].isolated is False
