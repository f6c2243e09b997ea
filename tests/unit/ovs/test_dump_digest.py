"""The digest the security groups' and the chains' checks compare a switch's flows with
(:func:`fluidedge.ovs.flows.dump_digest`): the switch lists its flows in its classifier's
order, which may change between two dumps of the same table; any change of one flow's text
(its actions replaced by ``mod-flows``, a priority, a timeout) changes the digest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fluidedge.ovs.flows import dump_digest

FLOWS = [
    "cookie=0x5e5e, table=0, priority=100,in_port=1 actions=ct(table=1,zone=7)",
    "cookie=0x5e5e, table=1, priority=50,ct_state=+est+trk actions=NORMAL",
    "cookie=0x5e5e, table=1, priority=0 actions=drop",
]


@given(st.permutations(FLOWS))
def test_the_order_of_the_dump_does_not_matter(order: list[str]) -> None:
    assert dump_digest(order) == dump_digest(FLOWS)


def test_a_flow_replaced_in_place_changes_it() -> None:
    replaced = [*FLOWS[:2], "cookie=0x5e5e, table=1, priority=0 actions=NORMAL"]
    assert len(replaced) == len(FLOWS)
    assert dump_digest(replaced) != dump_digest(FLOWS)
    assert dump_digest(FLOWS[:2]) != dump_digest(FLOWS)
    # one flow's text cut differently is not the same two flows
    assert dump_digest(["a b", "c"]) != dump_digest(["a", "b c"])
