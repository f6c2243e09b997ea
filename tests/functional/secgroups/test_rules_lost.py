"""Rules taken away from outside come back: an ``nft flush ruleset`` in the bridges' namespace
(what ``systemctl restart nftables`` does with Debian's ``/etc/nftables.conf``) or the
``br_netfilter`` knobs set to 0 leave every port unfiltered; :meth:`FirewallDriver.heal` (the
daemon runs it every ``[secgroups] check_interval_s``) re-installs the tables, and a
connection the rules refuse, opened meanwhile, does not survive it. Real nftables, real TCP,
Linux bridges."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fluidedge.secgroups.nft import table_name
from fluidedge.secgroups.nftwatch import NftWatch
from tests.fixtures.netns import scratch_netns
from tests.fixtures.secgroups_net import SgLab, run
from tests.fixtures.wait import wait_until

# the client/db pair of the stateful tests: c may open TCP 5432 to d, not 80
from .test_stateful import DB, TIMEOUT, _pair

pytestmark = pytest.mark.root

KNOBS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")


@pytest.fixture
def lab() -> Iterator[SgLab]:
    lab = SgLab("linuxbridge")
    try:
        yield lab
    finally:
        lab.close()


def _tables(lab: SgLab) -> set[str]:
    out = run("ip", "netns", "exec", lab.switch, "nft", "list", "tables").stdout
    return {line.split()[2] for line in out.splitlines() if line.startswith("table ")}


def test_a_flushed_ruleset_comes_back_and_what_opened_meanwhile_dies(lab: SgLab) -> None:
    c, d = _pair(lab)
    assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) is False
    assert lab.driver.heal() == {}  # nothing lost: nothing done
    run("ip", "netns", "exec", lab.switch, "nft", "flush", "ruleset")
    assert table_name("n") not in _tables(lab)
    # unfiltered now: a connection the rules refuse opens
    stream = c.call("stream_open", dst=d.v4, port=80, timeout=TIMEOUT)
    assert stream
    assert c.call("stream_echo", sid=stream, timeout=TIMEOUT) is True

    lost = lab.driver.heal()
    assert set(lost) == {"n"}
    assert "removed from outside" in lost["n"]
    assert table_name("n") in _tables(lab)
    assert c.call("stream_echo", sid=stream, timeout=TIMEOUT) is False  # it died
    assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) is False
    assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) == "d"
    assert lab.driver.heal() == {}


T = table_name("n")


@pytest.mark.parametrize(
    ("change", "opens", "said"),
    [
        # every chain emptied, the table kept: everything passes
        (("flush", "table", "inet", T), True, "0 rules in chain zroute instead of 2"),
        # one rule put in front of the verdict maps: everything passes
        (("insert", "rule", "inet", T, "net", "accept"), True, "4 rules in chain net instead of 3"),
        # the remote group's members gone: the db refuses its clients (fails closed)
        (("flush", "set", "inet", T, "rg_client_21_4"), False, "set rg_client_21_4 emptied"),
        # a base chain's policy turned to drop
        (
            (
                "add",
                "chain",
                "inet",
                T,
                "fe_fwd",
                "{ type filter hook forward priority 0; policy drop; }",
            ),
            False,
            "chain fe_fwd's hook is filter/forward/0/drop, not filter/forward/0/accept",
        ),
        # the bridge table's port dispatch emptied: no spoofing check, no port tags
        (("flush", "chain", "bridge", T, "pre"), False, "0 rules in chain pre instead of 2"),
    ],
    ids=["flush-table", "insert-accept", "flush-set", "policy-drop", "flush-bridge-chain"],
)
def test_a_table_changed_from_outside_is_installed_again(
    lab: SgLab, change: tuple[str, ...], opens: bool, said: str
) -> None:
    """Not deleted, changed: every table still listed, the ports filtered otherwise than the
    policy says (open, or closed), until the check compares what the kernel holds with what
    was installed and installs it whole."""
    c, d = _pair(lab)
    run("ip", "netns", "exec", lab.switch, "nft", *change)
    assert T in _tables(lab)
    if opens:
        assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) == "d"
    lost = lab.driver.heal()
    assert set(lost) == {"n"}
    assert "changed from outside" in lost["n"]
    assert said in lost["n"]
    assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) is False
    assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) == "d"
    assert lab.driver.heal() == {}


def _first_rule_handle(lab: SgLab, chain: str) -> str:
    """The handle of the first rule of our inet table's ``chain`` (``nft -a``: a rule's line
    is indented twice and ends ``# handle N``)."""
    listing = run("ip", "netns", "exec", lab.switch, "nft", "-a", "list", "chain", "inet", T, chain)
    rules = [line for line in listing.stdout.splitlines() if line.startswith("\t\t")]
    return rules[0].rsplit("# handle ", 1)[1].strip()


@pytest.mark.parametrize("what", ["rule", "set"])
def test_a_rule_or_set_replaced_with_the_same_shape_is_seen(lab: SgLab, what: str) -> None:
    """Every chain keeps its number of rules, every set holds elements: only their content
    tells. The first check after our apply learns it; a later one finds it changed and
    installs the table whole. A rule replaced by ``accept`` opens the ports; the remote
    group's member replaced by a stranger refuses the client its database (fails closed)."""
    c, d = _pair(lab)
    assert lab.driver.heal() == {}  # learns what the kernel lists of our tables
    nft = ("ip", "netns", "exec", lab.switch, "nft")
    if what == "rule":
        handle = _first_rule_handle(lab, "net")
        run(*nft, "replace", "rule", "inet", T, "net", "handle", handle, "accept")
        assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) == "d"  # unfiltered now
    else:
        run(*nft, "flush", "set", "inet", T, "rg_client_21_4")
        run(*nft, "add", "element", "inet", T, "rg_client_21_4", "{ 192.0.2.99 }")
        assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) is False
    lost = lab.driver.heal()
    assert set(lost) == {"n"}
    assert (
        f"table inet {T} changed from outside (a rule or a set's elements replaced)" in (lost["n"])
    )
    assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) is False
    assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) == "d"
    assert lab.driver.heal() == {}  # learns again
    assert lab.driver.heal() == {}  # and holds


def test_bridge_knobs_set_to_zero_are_set_back(lab: SgLab) -> None:
    c, d = _pair(lab)
    for knob in KNOBS:
        run("ip", "netns", "exec", lab.switch, "sysctl", "-q", "-w", f"{knob}=0")
    # bridged frames skip the inet hooks: the ingress rules no longer run
    assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) == "d"
    lost = lab.driver.heal()
    assert set(lost) == {"n"}
    assert "set to 0" in lost["n"]
    shown = run("ip", "netns", "exec", lab.switch, "sysctl", "-n", *KNOBS).stdout.split()
    assert shown == ["1", "1"]
    assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) is False
    assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) == "d"
    assert lab.driver.heal() == {}


def test_the_kernels_word_of_a_change_brings_it_back_at_once(lab: SgLab) -> None:
    """With the part's watcher (the kernel's nftables announcements), a flushed ruleset or
    table comes back without waiting for the periodic check: nobody calls heal() here but the
    watcher. A table that is not ours wakes nothing, nor do our own changes (the
    announcement names the process that committed them)."""
    c, d = _pair(lab)
    woken: list[dict[str, str]] = []
    watch = NftWatch(lambda: woken.append(lab.driver.heal()))
    try:
        watch.watch(lab.driver.namespaces())
        assert watch.watched() == {lab.switch}
        run("ip", "netns", "exec", lab.switch, "nft", "add", "table", "inet", "other")
        run("ip", "netns", "exec", lab.switch, "nft", "delete", "table", "inet", "other")
        lab.host("e", "n", 3, groups=("client",))  # our own transactions on our tables
        lab.driver.update_security_group_rules("db", (DB.rules[0],))
        time.sleep(0.3)
        assert woken == []

        run("ip", "netns", "exec", lab.switch, "nft", "flush", "ruleset")
        assert wait_until(lambda: table_name("n") in _tables(lab), 3)
        assert any("n" in lost for lost in woken)  # the first wake-up re-installed it
        assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) is False

        woken.clear()
        run("ip", "netns", "exec", lab.switch, "nft", "flush", "table", "inet", T)
        assert wait_until(lambda: any("n" in lost for lost in woken), 3)
        assert "changed from outside" in next(lost["n"] for lost in woken if "n" in lost)
        assert c.call("tcp", dst=d.v4, port=80, timeout=TIMEOUT) is False
        assert c.call("tcp", dst=d.v4, port=5432, timeout=TIMEOUT) == "d"
        thread = next(iter(watch._watchers.values())).thread
    finally:
        watch.close()
    assert not thread.is_alive()  # its reader ended with the watch
    assert watch.watched() == set()


def test_a_watched_namespace_that_is_gone_is_not_kept_alive() -> None:
    with scratch_netns("sgw") as ns:
        watch = NftWatch(dict)
        try:
            watch.watch([ns])
            assert watch.watched() == {ns}
            thread = next(iter(watch._watchers.values())).thread
        except BaseException:
            watch.close()
            raise
    try:
        watch.watch([ns])  # its name is gone: a socket inside would keep it alive
        assert watch.watched() == set()
        thread.join(timeout=5)
        assert not thread.is_alive()
    finally:
        watch.close()
