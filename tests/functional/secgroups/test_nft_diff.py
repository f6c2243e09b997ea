"""Updates that touch only what changed leave the kernel with exactly the tables a whole
install of the final program gives (real nft, two namespaces)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator

import pytest

from fluidedge.linux import netns
from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.driver import NftRenderer
from fluidedge.secgroups.model import AddressPair, Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.nft import Binding, table_name

pytestmark = pytest.mark.root

PREFIX = f"sgd{os.getpid() % 100000}"


@pytest.fixture
def two_netns() -> Iterator[tuple[str, str]]:
    names = (f"{PREFIX}-a", f"{PREFIX}-b")
    try:
        for name in names:
            netns.create(name)
            subprocess.run(
                ["ip", "-n", name, "link", "add", "brx", "type", "bridge"], check=True, timeout=30
            )
        yield names
    finally:
        for name in names:
            netns.delete(name)


def _port(n: int, groups: tuple[str, ...], **kw: object) -> Port:
    return Port(
        id=f"p{n}",
        device=f"v{n}",
        network="net",
        zone=9,
        mac=f"02:00:00:00:01:{n:02x}",
        fixed_ips=(ipaddress.ip_address(f"10.9.0.{n}"),),
        groups=groups,
        **kw,  # type: ignore[arg-type]
    )


def _listing(ns: str) -> dict[str, tuple[str, ...]]:
    """Both tables as {family/kind name: its lines} (nft lists chains in creation order,
    which differs between the two histories; the content must not)."""
    blocks: dict[str, tuple[str, ...]] = {}
    for family in ("bridge", "inet"):
        done = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "list", "table", family, table_name("net")],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        name, body = "", []
        for line in done.stdout.splitlines():
            text = line.strip()
            if line.startswith("\t") and not line.startswith("\t\t") and text.endswith("{"):
                name, body = f"{family} {text}", []
            elif line == "\t}":
                blocks[name] = tuple(body)
            elif name:
                body.append(text)
    return blocks


def test_diffs_end_where_a_whole_install_ends(two_netns: tuple[str, str]) -> None:
    web = SecurityGroup(
        id="web",
        rules=(
            Rule(id="h", direction="ingress", protocol=6, port_range_min=80),
            Rule(id="m", direction="ingress", protocol=17, remote_group="web"),
        ),
    )
    steps = [
        ([_port(1, ("default",)), _port(2, ("web",))], [default_group(), web]),
        # a rule goes, a port joins (new chains, a new set member)
        (
            [_port(1, ("default",)), _port(2, ("web",)), _port(3, ("web", "default"))],
            [default_group(), SecurityGroup(id="web", rules=web.rules[1:])],
        ),
        # a port leaves, another changes groups and gets a pair
        (
            [
                _port(2, ("default",)),
                _port(
                    3,
                    ("web",),
                    allowed_address_pairs=(AddressPair(ipaddress.ip_network("10.9.1.0/24")),),
                ),
            ],
            [default_group(), web],
        ),
    ]
    incremental = NftRenderer()
    texts = []
    for ports, groups in steps:
        program = compile_program(ports, groups)
        text, _ = incremental.render(program, Binding("net", "brx", two_netns[0]))
        texts.append(text)
        assert incremental.apply_network(program, Binding("net", "brx", two_netns[0]))
    # the later steps were diffs, not whole replacements
    assert texts[0].startswith("table bridge")
    assert all("delete table" not in t for t in texts[1:])
    whole = NftRenderer()
    whole.tags(program, "net")  # the same tags (port chain names) as the incremental one
    whole._tags["net"] = dict(incremental._tags["net"])
    assert whole.apply_network(program, Binding("net", "brx", two_netns[1]))
    final = _listing(two_netns[0])
    assert "inet chain p3_in {" in final
    assert final == _listing(two_netns[1])
