"""What the security groups' check costs in Python per namespace and second, by what it reads.

Each ``[secgroups] check_interval_s`` the check parses the namespace's ``nft -j list ruleset``
and compares every table of ours with what it installed: its shape (chains, hooks, rule counts,
sets) and, since the content digest, the digest of its rules and sets' elements
(:mod:`fluidedge.secgroups.nftcheck`). This times the three steps on listings shaped as the
kernel prints ours (per port: a rule matching its device and a TCP port, accepted), for
``--rules`` rules, ``--rounds`` times each, in one invocation; ``nft`` itself (the listing) is
not timed: the same for every step.

Run: ``.venv/bin/python bench/secgroups_check_cost.py [--rules 500 5000] [--rounds 20]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluidedge.secgroups.nftcheck import digests_of, parse_listing, shapes_of


def _listing(rules: int) -> str:
    objects: list[dict[str, object]] = [
        {"table": {"family": "inet", "name": "fesg_n", "handle": 1}},
        {"chain": {"family": "inet", "table": "fesg_n", "name": "net", "handle": 2}},
    ]
    for i in range(rules):
        device = {
            "match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": f"fe{i:08x}i0"}
        }
        dport = {"payload": {"protocol": "tcp", "field": "dport"}}
        expr = [device, {"match": {"op": "==", "left": dport, "right": 5432}}, {"accept": None}]
        rule = {"family": "inet", "table": "fesg_n", "chain": "net", "handle": 3 + i, "expr": expr}
        objects.append({"rule": rule})
    return json.dumps({"nftables": objects})


def _ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print("secgroups: the check's Python per namespace, ms (median), by step")
    for rules in args.rules:
        text = _listing(rules)
        objects = parse_listing(text)
        parse = _ms(lambda: parse_listing(text), args.rounds)  # noqa: B023 (called at once)
        shape = _ms(lambda: shapes_of(objects), args.rounds)  # noqa: B023
        digest = _ms(lambda: digests_of(objects), args.rounds)  # noqa: B023
        before = parse + shape
        print(
            f"  {rules:6d} rules ({len(text) / 1e6:.2f} MB): parse {parse:7.2f}  shape "
            f"{shape:6.2f}  digest {digest:6.2f}  -> with digest / without = "
            f"{(before + digest) / before:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
