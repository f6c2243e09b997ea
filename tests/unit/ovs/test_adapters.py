"""The OVS adapters' validation (pure): nothing malformed reaches a command line.

The adapters themselves run against a real ovsdb-server/ovs-vswitchd in
tests/functional/instances/test_ovs_network.py and tests/functional/secgroups/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.ovs.daemons import OvsDaemons, choose_datapath
from fluidedge.ovs.errors import OvsFailure
from fluidedge.ovs.ofctl import Ofctl, check_flow
from fluidedge.ovs.vsctl import _ids, check_name


@pytest.mark.parametrize("name", ["br0", "fe1234abcd5678i0", "a.b-c_d"])
def test_good_names(name: str) -> None:
    if len(name) > 15:
        with pytest.raises(OvsFailure):
            check_name(name)
    else:
        assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "a;b", "x" * 16, "br0\n"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(OvsFailure, match="invalid"):
        check_name(name)


def test_external_ids_are_quoted_and_validated() -> None:
    assert _ids("external_ids", {"fluidedge-network": "n1", "b": "x"}) == [
        'external_ids:"b"="x"',
        'external_ids:"fluidedge-network"="n1"',
    ]
    for bad in ({"k": 'a"b'}, {"k k": "v"}, {"k": "v v"}, {"k": "a,b"}):
        with pytest.raises(OvsFailure, match="external_ids"):
            _ids("external_ids", bad)


def test_flow_texts_are_one_line_without_shell_or_extra_commands() -> None:
    flow = (
        "cookie=0x5e5e,table=72,priority=70,reg5=1,ct_state=+new-est,tcp,"
        "tp_dst=0x1f90/0xfff8,actions=resubmit(,73)"
    )
    assert check_flow(flow) == flow
    for bad in (flow + "\nadd table=0,actions=NORMAL", flow + "\n", "a b", "x;y", "$(id)", "a|b"):
        with pytest.raises(OvsFailure, match="malformed"):
            check_flow(bad)


def test_bundle_refuses_unknown_flow_mod_commands(tmp_path: Path) -> None:
    ofctl = Ofctl(OvsDaemons(tmp_path), "br0")
    with pytest.raises(OvsFailure, match="unknown flow-mod"):
        ofctl.bundle(["drop-all table=0"])
    assert ofctl.bundle([]) == 0  # nothing to send: no command runs


@pytest.mark.parametrize(
    ("wanted", "module", "foreign", "chosen"),
    [
        ("netdev", True, False, "netdev"),
        ("system", False, False, "system"),  # as asked: the start says what is missing
        ("system", True, True, "system"),  # as asked: the start refuses (another switch's)
        ("auto", True, False, "system"),
        ("auto", False, False, "netdev"),
        ("auto", True, True, "netdev"),  # the host's own Open vSwitch keeps its datapath
    ],
)
def test_datapath_choice(wanted: str, module: bool, foreign: bool, chosen: str) -> None:
    assert choose_datapath(wanted, module=module, foreign=foreign) == chosen


def test_datapath_choice_and_private_environment(tmp_path: Path) -> None:
    with pytest.raises(OvsFailure, match="datapath"):
        choose_datapath("dpdk", module=True, foreign=False)
    daemons = OvsDaemons(tmp_path / "sw", "ns1")
    assert daemons.env["OVS_RUNDIR"] == str(tmp_path / "sw" / "run")
    assert daemons.mgmt("br0") == f"unix:{tmp_path / 'sw' / 'run' / 'br0'}.mgmt"
    assert daemons.db == f"unix:{tmp_path / 'sw' / 'run' / 'db.sock'}"
    assert not daemons.running()
