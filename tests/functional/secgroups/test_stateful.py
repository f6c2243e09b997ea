"""Stateful semantics with real TCP: replies need no rule, removing a rule cuts the live
connections it allowed, unrelated changes keep them, a bare ACK opens nothing."""

from __future__ import annotations

import pytest

from fluidedge.secgroups.model import Rule, SecurityGroup
from tests.fixtures.secgroups_net import Host, SgLab
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

TIMEOUT = 2.0
CLIENT = SecurityGroup(
    id="client", rules=(Rule(id="out", direction="egress", protocol=6, port_range_min=5432),)
)
DB = SecurityGroup(
    id="db",
    rules=(
        Rule(id="pg", direction="ingress", protocol=6, port_range_min=5432, remote_group="client"),
        Rule(id="other", direction="ingress", protocol=17, port_range_min=9),
    ),
)


def _pair(lab: SgLab) -> tuple[Host, Host]:
    lab.network("n", zone=21)
    with lab.driver.defer_apply():
        lab.driver.set_group(CLIENT)
        lab.driver.set_group(DB)
        c = lab.host("c", "n", 1, groups=("client",), tcp=(80,))
        d = lab.host("d", "n", 2, groups=("db",), tcp=(5432, 80))
    return c, d


def test_replies_need_no_rule(sg_lab: SgLab) -> None:
    c, d = _pair(sg_lab)
    # d has no egress rule at all, yet its replies reach c; d cannot open anything itself.
    assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) == "d"
    assert d.call("tcp", dst=c.v4, port=80, timeout=TIMEOUT) is False


def test_removing_the_rule_cuts_the_live_stream(sg_lab: SgLab) -> None:
    c, d = _pair(sg_lab)
    stream = c.call("stream_open", dst=d.v4, port=5432, timeout=TIMEOUT)
    assert stream
    assert c.call("stream_echo", sid=stream, timeout=TIMEOUT) is True
    sg_lab.driver.update_security_group_rules("db", (DB.rules[1],))
    assert c.call("stream_echo", sid=stream, timeout=TIMEOUT) is False
    assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) is False


def test_unrelated_changes_keep_the_live_stream(sg_lab: SgLab) -> None:
    c, d = _pair(sg_lab)
    stream = c.call("stream_open", dst=d.v4, port=5432, timeout=TIMEOUT)
    assert c.call("stream_echo", sid=stream, timeout=TIMEOUT) is True
    # another rule of the same group goes, a rule is added to the client's group, and a
    # new port joins the network: each re-renders the tables, none may touch the stream.
    lab = sg_lab
    lab.driver.update_security_group_rules("db", (DB.rules[0],))
    lab.driver.update_security_group_rules(
        "client", (*CLIENT.rules, Rule(id="dns", direction="egress", protocol=17))
    )
    lab.host("e", "n", 3, groups=("client",))
    assert c.call("stream_echo", sid=stream, timeout=TIMEOUT) is True
    assert c.call("stream_echo", sid=stream, timeout=TIMEOUT) is True


def test_ack_without_syn_is_dropped(sg_lab: SgLab) -> None:
    c, d = _pair(sg_lab)
    # The port is open for c (a SYN gets through), but a bare ACK opens nothing: no RST
    # comes back. Without filtering the same probe is answered with a RST.
    assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) == "d"
    assert c.call("bare_ack", src=c.v4, dst=d.v4, port=5432, timeout=TIMEOUT) is False
    with sg_lab.driver.defer_apply():
        sg_lab.update(c, groups=(), port_security=False)
        sg_lab.update(d, groups=(), port_security=False)
    # A probe may be lost on a loaded machine (the userspace datapath's first packet is an
    # upcall): what must happen is retried within a deadline; what must not, above, is not.
    assert wait_until(
        lambda: c.call("bare_ack", src=c.v4, dst=d.v4, port=5432, timeout=TIMEOUT) is True,
        timeout=30,
    )
