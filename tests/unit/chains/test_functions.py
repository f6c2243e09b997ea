"""The built-in function templates are valid template bodies: two isolated legs on the given
network, unfiltered, with the capability their script needs."""

from __future__ import annotations

import pytest

from fluidedge.chains import functions
from fluidedge.chains.errors import InvalidChain
from fluidedge.instances.models import TemplateSpec


def test_counter_template() -> None:
    spec = TemplateSpec.model_validate(functions.counter("ctr", "apps"))
    assert [(i.name, i.network, i.isolated, i.port_security) for i in spec.interfaces] == [
        ("eth0", "apps", True, False),
        ("eth1", "apps", True, False),
    ]
    assert spec.capabilities == ["CAP_NET_ADMIN"]
    script = spec.command[-1]
    assert "brctl addif br0 eth0" in script
    assert "brctl addif br0 eth1" in script
    assert spec.readiness.kind == "file"


def test_bad_names_refused() -> None:
    with pytest.raises(InvalidChain):
        functions.counter("Bad Name", "apps")
    with pytest.raises(InvalidChain):
        functions.counter("ctr", "x;rm")
