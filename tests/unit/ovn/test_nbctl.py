"""The ovn-nbctl adapter's pure parts: argv (one transaction) and OVSDB JSON decoding."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fluidedge.ovn.central import Central
from fluidedge.ovn.chassis import Chassis, check_lsp
from fluidedge.ovn.errors import OvnInvalid, OvnUnreachable
from fluidedge.ovn.nbctl import Nbctl, as_list, decode, reachable


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``listening(name)``: the remote of a Unix socket that accepts connections."""
    servers: list[socket.socket] = []

    def make(name: str) -> str:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(tmp_path / name))
        server.listen(4)
        servers.append(server)
        return f"unix:{tmp_path / name}"

    try:
        yield make
    finally:
        for server in servers:
            server.close()


def test_commands_are_one_invocation_separated_by_double_dashes(
    listening: Callable[[str], str],
) -> None:
    a, b = listening("a"), listening("b")
    argv = Nbctl(f"{a},{b}").argv([["ls-add", "x"], ["lsp-add", "x", "p"]], wait="hv")
    assert argv == [
        "ovn-nbctl", f"--db={a},{b}", "--timeout=30", "--wait=hv",
        "ls-add", "x", "--", "lsp-add", "x", "p",
    ]  # fmt: skip


def test_a_database_no_member_of_which_answers_is_said_at_once(tmp_path: Path) -> None:
    """Not after ovn-nbctl's own 30 s (a central down, or not up yet after a reboot)."""
    nb = Nbctl(f"unix:{tmp_path / 'a.sock'},tcp:127.0.0.1:1")
    with pytest.raises(OvnUnreachable, match=r"accepts no connection") as info:
        nb.argv([["ls-add", "x"]])
    assert info.value.http_status == 503
    with pytest.raises(OvnUnreachable):
        Nbctl(f"unix:{tmp_path / 'a.sock'}").run("ls-list")  # one member: checked too


def test_ovsdb_json_decodes_to_python() -> None:
    assert decode(["set", [["uuid", "u1"], ["uuid", "u2"]]]) == ["u1", "u2"]
    assert decode(["map", [["k", "v"]]]) == {"k": "v"}
    assert decode(["uuid", "u"]) == "u"
    assert decode("plain") == "plain"
    assert as_list("one") == ["one"]
    assert as_list(["a", "b"]) == ["a", "b"]


def test_cluster_remotes_name_every_member(tmp_path: Path) -> None:
    central = Central(tmp_path, members=3, raft_ports=[1, 2, 3, 4, 5, 6])
    assert central.nb_remote.count("unix:") == 3
    assert central.members[2].raft("sb") == "tcp:127.0.0.1:6"
    with pytest.raises(OvnInvalid):
        Central(tmp_path, members=2)


def test_names_and_addresses_are_checked() -> None:
    with pytest.raises(OvnInvalid):
        Chassis(Path("/nonexistent"), "Bad Name", "unix:/x", "10.0.0.1/24")
    with pytest.raises(OvnInvalid):
        Chassis(Path("/nonexistent"), "h1", "unix:/x", "not-an-ip")
    with pytest.raises(OvnInvalid):
        check_lsp("a;rm -rf")


def test_only_members_that_answer_are_named(tmp_path: Path) -> None:
    live = tmp_path / "live.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(live))
    server.listen(4)
    try:
        nb = Nbctl(f"unix:{tmp_path / 'dead.sock'},unix:{live}")
        assert nb.live_remote() == f"unix:{live}"
        assert reachable(f"unix:{live}")
        assert not reachable("tcp:127.0.0.1:1")
        assert not reachable("bogus")
    finally:
        server.close()


def test_a_host_ports_names_and_mac_are_stable_and_valid(tmp_path: Path) -> None:
    from fluidedge.ovn import networks
    from fluidedge.ovn.node import OvnNode

    node = OvnNode(
        nb="unix:/x/nb.sock", sb="unix:/x/sb.sock", chassis="edge-1", encap="10.0.0.1/24"
    )
    networks.configure(tmp_path, node)
    try:
        assert networks.host_peer("apps0") == "apps0-ls"
        assert networks.host_peer("averylongname15") == "averylongnam-ls"  # 15 chars at most
        mac = networks.host_mac("apps0")
        assert mac == networks.host_mac("apps0")
        assert mac.startswith("02:")  # locally administered, unicast
        assert mac != networks.host_mac("apps1")
    finally:
        networks.configure(tmp_path, None)
