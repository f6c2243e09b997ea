"""What a ruleset listing confirms of our tables (:mod:`fluidedge.secgroups.nftcheck`): the
listing is built here as ``nft -j list ruleset`` prints it (libnftables-json(5)); the
functional tests read real ones (tests/functional/secgroups/test_rules_lost.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fluidedge.secgroups.errors import FilterFailure
from fluidedge.secgroups.nft import Table
from fluidedge.secgroups.nftcheck import (
    Shape,
    changes,
    digests_of,
    listed_shapes,
    parse_listing,
    shape_of,
    shapes_of,
    summary,
)

TABLE = Table(
    family="inet",
    name="fesg_n",
    sets={
        "rg_a_4": ("type ipv4_addr; flags interval;", "10.0.0.1"),
        "rg_b_4": ("type ipv4_addr;", ""),
    },
    chains={
        "fe_fwd": ("type filter hook forward priority 0; policy accept;", ("jump net",)),
        "net": ("", ("ct state established,related accept", "meta mark vmap @m", "accept")),
    },
)


def _listing(*, net_rules: int = 3, policy: str = "accept", elems: bool = True) -> str:
    objects: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "filter", "handle": 1}},
        {
            "chain": {
                "family": "inet",
                "table": "filter",
                "name": "input",
                "handle": 1,
                "type": "filter",
                "hook": "input",
                "prio": 0,
                "policy": "drop",
            }
        },
        {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 2, "expr": []}},
        {"table": {"family": "inet", "name": "fesg_n", "handle": 7}},
        {
            "chain": {
                "family": "inet",
                "table": "fesg_n",
                "name": "fe_fwd",
                "handle": 1,
                "type": "filter",
                "hook": "forward",
                "prio": 0,
                "policy": policy,
            }
        },
        {"chain": {"family": "inet", "table": "fesg_n", "name": "net", "handle": 2}},
        {
            "set": {
                "family": "inet",
                "name": "rg_a_4",
                "table": "fesg_n",
                "type": "ipv4_addr",
                "handle": 3,
                **({"elem": ["10.0.0.1"]} if elems else {}),
            }
        },
        {
            "set": {
                "family": "inet",
                "name": "rg_b_4",
                "table": "fesg_n",
                "type": "ipv4_addr",
                "handle": 4,
            }
        },
        {"rule": {"family": "inet", "table": "fesg_n", "chain": "fe_fwd", "handle": 5, "expr": []}},
    ]
    objects += [
        {"rule": {"family": "inet", "table": "fesg_n", "chain": "net", "handle": 6 + i, "expr": []}}
        for i in range(net_rules)
    ]
    return json.dumps({"nftables": objects})


def test_an_installed_table_lists_as_its_shape() -> None:
    want = shape_of(TABLE)
    assert want == Shape(
        chains={"fe_fwd": ("filter/forward/0/accept", 1), "net": ("", 3)},
        sets={"rg_a_4": True, "rg_b_4": False},
    )
    listed = listed_shapes(_listing())
    assert set(listed) == {("inet", "fesg_n")}  # not the host's own table
    assert changes(want, listed[("inet", "fesg_n")]) == []


@pytest.mark.parametrize(
    ("listing", "said"),
    [
        (_listing(net_rules=0), ["0 rules in chain net instead of 3"]),
        (_listing(net_rules=4), ["4 rules in chain net instead of 3"]),
        (
            _listing(policy="drop"),
            ["chain fe_fwd's hook is filter/forward/0/drop, not filter/forward/0/accept"],
        ),
        (_listing(elems=False), ["set rg_a_4 emptied"]),
    ],
)
def test_each_change_is_named(listing: str, said: list[str]) -> None:
    assert changes(shape_of(TABLE), listed_shapes(listing)[("inet", "fesg_n")]) == said


def test_chains_and_sets_deleted_or_added() -> None:
    have = Shape(chains={"net": ("", 3), "extra": ("", 0)}, sets={"rg_b_4": True, "x": False})
    assert changes(shape_of(TABLE), have) == [
        "chain fe_fwd deleted",
        "chain extra added",
        "set rg_a_4 deleted",
        "set rg_b_4 filled",
        "set x added",
    ]


def test_an_empty_table_of_ours_is_listed() -> None:
    listing = json.dumps({"nftables": [{"table": {"family": "bridge", "name": "fesg_m"}}]})
    assert listed_shapes(listing) == {("bridge", "fesg_m"): Shape(chains={}, sets={})}


@pytest.mark.parametrize(
    "listing",
    ["not json", "{}", json.dumps({"nftables": [{"chain": {"family": "inet"}}]}), "[1]"],
)
def test_a_listing_not_understood_is_a_filter_failure(listing: str) -> None:
    with pytest.raises(FilterFailure, match="ruleset listing is not understood"):
        listed_shapes(listing)


def test_a_header_not_ours_is_refused() -> None:
    odd = Table("inet", "fesg_n", sets={}, chains={"c": ("type filter hook input;", ())})
    with pytest.raises(FilterFailure, match="header of ours not understood"):
        shape_of(odd)


def test_summary_names_three_and_counts_the_rest() -> None:
    assert summary(["a", "b"]) == "a, b"
    assert summary(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"


def _objects(listing: str) -> list[dict[str, Any]]:
    return list(json.loads(listing)["nftables"])


def _digest(objects: list[dict[str, Any]]) -> str:
    return digests_of(objects)[("inet", "fesg_n")]


def test_a_digest_sees_what_a_shape_does_not() -> None:
    """A rule replaced (the count kept) or a set's element replaced changes the digest; the
    kernel's handles (renumbered by a re-install) and other tables do not."""
    objects = _objects(_listing())
    base = _digest(objects)
    assert set(digests_of(objects)) == {("inet", "fesg_n")}  # not the foreign table
    renumbered = _objects(_listing())
    for item in renumbered:
        for body in item.values():
            if isinstance(body, dict) and "handle" in body:
                body["handle"] += 100
    assert _digest(renumbered) == base
    replaced = _objects(_listing())
    rules = [i["rule"] for i in replaced if "rule" in i and i["rule"]["table"] == "fesg_n"]
    rules[-1]["expr"] = [{"accept": None}]
    assert shapes_of(replaced) == shapes_of(objects)  # the shape cannot tell
    assert _digest(replaced) != base
    member = _objects(_listing())
    for item in member:
        if "set" in item and item["set"]["name"] == "rg_a_4":
            item["set"]["elem"] = ["192.0.2.99"]
    assert shapes_of(member) == shapes_of(objects)
    assert _digest(member) != base


def test_a_listing_that_is_not_a_list_of_objects_is_a_filter_failure() -> None:
    with pytest.raises(FilterFailure, match="not understood"):
        parse_listing('{"nftables": {"table": 1}}')
    with pytest.raises(FilterFailure, match="not understood"):
        digests_of([{"rule": {"family": "inet"}}])
