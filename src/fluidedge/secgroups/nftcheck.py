"""Whether the kernel still holds the tables we installed, read from one ruleset listing.

A table deleted from outside (``nft flush ruleset``) is only the bluntest way to lose a
network's filter. ``nft flush table inet fesg_n`` keeps the table and empties its chains,
``nft delete rule`` / ``flush chain`` / ``flush set`` take out a part, ``nft add chain ... {
policy drop; }`` changes a hook: each leaves the ports filtered differently from the policy
(unfiltered where the dropping rules went), with every table still listed. So the check
compares what a listing shows of each table of ours with what we installed, reduced to what an
apply of ours determines and a listing reports unchanged:

- its chains, by name; a base chain's type, hook, priority and policy;
- the number of rules in each chain (one line of ours is one kernel rule);
- its sets, by name, and whether each holds elements (their count is not compared: ``nft``
  merges and splits interval elements as it stores them).

What a shape cannot see, a rule replaced by a different one (the count unchanged) or a set's
elements replaced, its digest does (:func:`digests_of`): every rule's expressions in order and
every set's elements, handles left out. Its digest is not known ahead (the kernel's listing of
a rule is not the text we wrote), so the driver learns it from the first listing after an
apply of ours in which the shape holds, and compares the later ones with it (a change keeping
the shape between our apply and that listing is learnt as ours). Our tables hold
no stateful expression (no counter, quota or dynamic set) whose listing would change on its
own. Pure: the listing is ``nft -j list ruleset`` (libnftables-json(5)).
"""

from __future__ import annotations

import hashlib
import json
import marshal
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fluidedge.secgroups.errors import FilterFailure
from fluidedge.secgroups.nft import TABLE_PREFIX, Table

# a base chain's header as the renderer writes it (nft.py)
_HEADER = re.compile(r"^type (\w+) hook (\w+) priority (-?\d+); policy (\w+);$")
MAX_NAMED = 3  # changes named in one message; the rest are counted


@dataclass(frozen=True)
class Shape:
    """What a listing can confirm of one table: chain name -> (hook or "", rule count), set
    name -> holds elements. The hook is ``type/hook/priority/policy``."""

    chains: Mapping[str, tuple[str, int]]
    sets: Mapping[str, bool]


def _hook(header: str) -> str:
    if not header:
        return ""
    m = _HEADER.match(header)
    if m is None:
        raise FilterFailure(f"nft check: a base chain header of ours not understood: {header!r}")
    return f"{m[1]}/{m[2]}/{m[3]}/{m[4]}"


def shape_of(table: Table) -> Shape:
    """The shape a listing shows of ``table`` once installed."""
    return Shape(
        chains={
            name: (_hook(header), len(rules)) for name, (header, rules) in table.chains.items()
        },
        sets={name: bool(elements) for name, (_, elements) in table.sets.items()},
    )


def parse_listing(listing: str) -> list[dict[str, Any]]:
    """The objects of an ``nft -j list ruleset``."""
    try:
        objects = json.loads(listing)["nftables"]
        if not isinstance(objects, list):
            raise TypeError(f"nftables is a {type(objects).__name__}")
        return objects
    except (ValueError, KeyError, TypeError) as exc:
        raise FilterFailure(f"nft check: the ruleset listing is not understood: {exc!r}") from exc


def listed_shapes(listing: str) -> dict[tuple[str, str], Shape]:
    """(family, name) -> shape of every table of ours in an ``nft -j list ruleset``."""
    return shapes_of(parse_listing(listing))


def shapes_of(objects: list[dict[str, Any]]) -> dict[tuple[str, str], Shape]:
    """:func:`listed_shapes` of a parsed listing."""
    try:
        chains: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}
        sets: dict[tuple[str, str], dict[str, bool]] = {}
        counts: dict[tuple[str, str, str], int] = {}
        for item in objects:
            if "table" in item:
                key = (item["table"]["family"], item["table"]["name"])
                chains.setdefault(key, {})
                sets.setdefault(key, {})
            elif "chain" in item:
                c = item["chain"]
                hook = f"{c['type']}/{c['hook']}/{c['prio']}/{c['policy']}" if "hook" in c else ""
                chains.setdefault((c["family"], c["table"]), {})[c["name"]] = (hook, 0)
            elif "rule" in item:
                r = item["rule"]
                key3 = (r["family"], r["table"], r["chain"])
                counts[key3] = counts.get(key3, 0) + 1
            elif "set" in item:
                s = item["set"]
                sets.setdefault((s["family"], s["table"]), {})[s["name"]] = bool(s.get("elem"))
    except (ValueError, KeyError, TypeError) as exc:
        raise FilterFailure(f"nft check: the ruleset listing is not understood: {exc!r}") from exc
    out = {}
    for key, by_name in chains.items():
        if not key[1].startswith(TABLE_PREFIX):
            continue
        filled = {name: (hook, counts.get((*key, name), 0)) for name, (hook, _) in by_name.items()}
        out[key] = Shape(chains=filled, sets=sets.get(key, {}))
    return out


def digests_of(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(family, name) -> digest of the rules (expressions, per chain, in order) and the sets'
    elements of every table of ours in a parsed listing; what :class:`Shape` cannot see."""
    parts: dict[tuple[str, str], list[object]] = {}
    try:
        for item in objects:
            if "rule" in item:
                r = item["rule"]
                key, part = (r["family"], r["table"]), (r["chain"], r["expr"])
            elif "set" in item:
                st = item["set"]
                key, part = (st["family"], st["table"]), (st["name"], st.get("elem", []))
            else:
                continue
            if key[1].startswith(TABLE_PREFIX):
                parts.setdefault(key, []).append(part)
        # One encoding per table, in the listing's own key order (nft prints the same content
        # the same way). marshal version 2 encodes structure only (no references between equal
        # objects, which version 3 adds), three times faster than JSON; the digest is compared
        # within the process that learnt it.
        return {
            key: hashlib.sha256(marshal.dumps(items, 2)).hexdigest() for key, items in parts.items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise FilterFailure(f"nft check: the ruleset listing is not understood: {exc!r}") from exc


def changes(want: Shape, have: Shape) -> list[str]:
    """How ``have`` differs from ``want``, in words (empty: it holds)."""
    out = []
    for name, (hook, rules) in want.chains.items():
        seen = have.chains.get(name)
        if seen is None:
            out.append(f"chain {name} deleted")
            continue
        if seen[0] != hook:
            out.append(f"chain {name}'s hook is {seen[0] or 'none'}, not {hook or 'none'}")
        if seen[1] != rules:
            out.append(f"{seen[1]} rules in chain {name} instead of {rules}")
    out += [f"chain {name} added" for name in have.chains if name not in want.chains]
    for name, filled in want.sets.items():
        if name not in have.sets:
            out.append(f"set {name} deleted")
        elif have.sets[name] != filled:
            out.append(f"set {name} {'emptied' if filled else 'filled'}")
    out += [f"set {name} added" for name in have.sets if name not in want.sets]
    return out


def summary(found: list[str]) -> str:
    """At most :data:`MAX_NAMED` changes named, the rest counted."""
    named = ", ".join(found[:MAX_NAMED])
    rest = len(found) - MAX_NAMED
    return f"{named} and {rest} more" if rest > 0 else named
