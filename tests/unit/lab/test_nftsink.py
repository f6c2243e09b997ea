"""The nft sink helpers produce the scripts the generator and the benchmark always loaded."""

from __future__ import annotations

import json

from fluidedge.lab.nftsink import rule_counters, sink_table


def test_sink_table_is_one_ingress_chain_with_the_rules_in_order() -> None:
    script = sink_table("fluidedge_gen", "s1", ["udp dport 2152 counter drop", "udp drop"])
    assert script == (
        "table netdev fluidedge_gen {\n"
        "  chain sink {\n"
        "    type filter hook ingress device s1 priority -500;\n"
        "    udp dport 2152 counter drop\n"
        "    udp drop\n"
        "  }\n"
        "}\n"
    )


def test_rule_counters_takes_each_rules_first_counter_and_skips_rules_without() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0"}},
            {"table": {"family": "netdev", "name": "t"}},
            {"rule": {"expr": [{"match": {}}, {"counter": {"packets": 7, "bytes": 700}}]}},
            {"rule": {"expr": [{"match": {}}, {"drop": None}]}},
            {
                "rule": {
                    "expr": [
                        {"counter": {"packets": 3, "bytes": 30}},
                        {"counter": {"packets": 99, "bytes": 1}},
                    ]
                }
            },
        ]
    }
    assert rule_counters(json.dumps(listing)) == [7, 3]
    assert rule_counters(json.dumps({"nftables": []})) == []
