"""The chain state both compilers' unit tests start from::

    va -> [fw: fw1 (f1i/f1o), fw2 (f2i/f2o)] -> [ctr: ctr1 (c1i/c1o)] -> vb

one classifier ``web`` (TCP to 10.0.0.2/32 ports 8080-8081) and chain ``ch`` (number 1);
``chain`` and ``classifier`` override their JSON fields.
"""

from __future__ import annotations

from typing import Any

from fluidedge.chains.model import (
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
)


def two_groups(chain: dict[str, Any] | None = None, **classifier: Any) -> ChainState:
    fc: dict[str, Any] = {
        "id": "web",
        "logical_source_port": "va",
        "logical_destination_port": "vb",
        "protocol": "tcp",
        "destination_ip_prefix": "10.0.0.2/32",
        "destination_port_range_min": 8080,
        "destination_port_range_max": 8081,
    }
    fc.update(classifier)
    ch: dict[str, Any] = {"id": "ch", "chain_id": 1, "port_pair_groups": ["fw", "ctr"],
                          "flow_classifiers": ["web"]}  # fmt: skip
    ch.update(chain or {})
    return ChainState(
        port_pairs={
            "fw1": PortPair("fw1", "f1i", "f1o"),
            "fw2": PortPair("fw2", "f2i", "f2o"),
            "ctr1": PortPair("ctr1", "c1i", "c1o"),
        },
        groups={"fw": PortPairGroup("fw", ("fw1", "fw2")), "ctr": PortPairGroup("ctr", ("ctr1",))},
        classifiers={"web": FlowClassifier.from_json(fc)},
        chains={"ch": PortChain.from_json(ch)},
    )
