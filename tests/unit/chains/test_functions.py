"""The built-in function templates are valid template bodies: two isolated legs on the given
network, unfiltered, with the capability their script needs."""

from __future__ import annotations

import re

import pytest

from fluidedge.chains import functions
from fluidedge.chains.errors import ChainUnprocessable, InvalidChain
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


def test_firewall_template_and_ruleset() -> None:
    spec = TemplateSpec.model_validate(
        functions.firewall(
            "fw", "apps", ["udp dport 7001 counter drop", "tcp dport { 22, 23 } drop"]
        )
    )
    assert spec.image == "nft"
    assert "nft -f /.fe/firewall.nft" in spec.command[-1]
    text = spec.files["firewall.nft"]
    assert text.startswith("table bridge fw {\n  chain forward {\n")
    assert "    udp dport 7001 counter drop\n    tcp dport { 22, 23 } drop\n" in text
    assert text.endswith("  }\n}\n")


@pytest.mark.parametrize(
    "rule", ["", "drop; flush ruleset", "drop # c", "a\nb", 'meta mark "x"', "x" * 201]
)
def test_firewall_rule_must_be_one_statement(rule: str) -> None:
    """Outside RULE_PATTERN: malformed (the API's schema refuses these first)."""
    assert not re.fullmatch(functions.RULE_PATTERN, rule)
    with pytest.raises(InvalidChain, match="firewall"):
        functions.firewall_ruleset([rule])


@pytest.mark.parametrize("rule", ["drop } table ip x {", "}", "tcp dport { 22", "{ 1 } }"])
def test_firewall_braces_that_do_not_nest_are_unprocessable(rule: str) -> None:
    """Within RULE_PATTERN (the schema holds) but braces that would close the chain: what the
    schema cannot state, so a 422."""
    assert re.fullmatch(functions.RULE_PATTERN, rule)
    with pytest.raises(ChainUnprocessable, match="braces"):
        functions.firewall_ruleset([rule])


def test_router_template_and_routes() -> None:
    spec = TemplateSpec.model_validate(
        functions.router("rtr", "apps", ["198.18.46.1/32"], ["198.18.46.0/25", "2001:db8::/64"])
    )
    assert "ip link set eth1 arp off" in spec.command[-1]
    assert spec.files["routes"] == (
        "-4 198.18.46.1/32 eth0\n-4 198.18.46.0/25 eth1\n-6 2001:db8::/64 eth1\n"
    )
    with pytest.raises(InvalidChain, match="router"):
        functions.router_routes(["10.0.0.0/8; reboot"], [])


def test_tap_template_has_one_isolated_leg_and_no_bridge() -> None:
    spec = TemplateSpec.model_validate(functions.tap("mirror", "apps"))
    assert [(i.name, i.network, i.isolated) for i in spec.interfaces] == [("eth0", "apps", True)]
    assert "brctl" not in spec.command[-1]
    assert "ip link set eth0 up" in spec.command[-1]
