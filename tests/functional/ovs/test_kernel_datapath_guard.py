"""A switch of ours never takes a kernel datapath another Open vSwitch has.

On an operator's host Debian's ``openvswitch-switch`` service often runs its own switch; a
second ``ovs-vswitchd`` on the same kernel datapath deletes the first one's ports, flushes its
flows and deletes the datapath at its stop. Here a real "foreign" switch (a plain pair, as the
host's would be) runs in a namespace of the test's own; a switch of ours asked for the kernel
datapath there is refused before anything starts, and the foreign one is untouched. The same
refusal holds on a stock kernel with the module (the VM tier runs this file too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.linux.proc import run
from fluidedge.ovs import bridges
from fluidedge.ovs.daemons import OvsDaemons, foreign_switches
from fluidedge.ovs.errors import OvsFailure
from fluidedge.ovs.vsctl import Vsctl
from tests.fixtures.netns import scratch_netns
from tests.fixtures.ovs_datapath import DATAPATH

pytestmark = pytest.mark.root


@pytest.fixture
def foreign(tmp_path: Path) -> Iterator[tuple[str, OvsDaemons]]:
    """A namespace where an Open vSwitch that is not ours runs, with a bridge and a port (on
    the tests' datapath: the kernel's in the VM tier, as a host's own switch has it)."""
    with scratch_netns("ovsg") as ns:
        host = OvsDaemons(tmp_path / "hosts-own-ovs", ns, DATAPATH)
        host.start()
        try:
            run(["ip", "-n", ns, "link", "add", "hostp0", "type", "veth", "peer", "hostp1"])
            vsctl = Vsctl(host)
            vsctl.add_bridge("hostbr0")
            vsctl.add_port("hostbr0", "hostp0", {})
            yield ns, host
        finally:
            host.destroy()


def test_the_other_switch_is_found_in_its_namespace_only(
    foreign: tuple[str, OvsDaemons],
) -> None:
    ns, host = foreign
    pid = host.pids()[1]
    assert pid is not None
    found = foreign_switches(ns)
    assert [p for p, _ in found] == [pid]
    assert str(host.vswitchd_pidfile) in found[0][1]  # its command line, for the message
    assert foreign_switches(ns, ours=pid) == []
    with scratch_netns("ovsh") as elsewhere:
        assert foreign_switches(elsewhere) == []


def test_the_kernel_datapath_of_another_switch_is_refused_and_it_is_untouched(
    foreign: tuple[str, OvsDaemons], tmp_path: Path
) -> None:
    ns, host = foreign
    before = host.pids()
    ours = OvsDaemons(tmp_path / "ours", ns, "system")
    try:
        with pytest.raises(OvsFailure, match=rf"Open vSwitch's \(ovs-vswitchd pid {before[1]}"):
            ours.start()
        assert ours.pids() == (None, None)
        assert not (tmp_path / "ours").exists()  # nothing of ours was started or written
    finally:
        ours.destroy()  # had it started (the refusal missing), it must not outlive the test
    assert host.running()
    assert host.pids() == before
    vsctl = Vsctl(host)
    assert vsctl.bridges() == ["hostbr0"]
    assert vsctl.ports("hostbr0") == ["hostp0"]
    assert vsctl.ofport("hostp0") > 0  # still on its datapath


def test_auto_leaves_the_kernel_datapath_to_the_other_switch(
    foreign: tuple[str, OvsDaemons], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` where the module exists (as on a stock host): the userspace datapath in the
    namespace where another switch runs, the kernel's elsewhere."""
    ns, _host = foreign
    for name in ("_switches", "_base", "_wanted", "_module"):  # the process's, put back after
        monkeypatch.setattr(bridges, name, getattr(bridges, name))
    monkeypatch.setattr(bridges, "_switches", {})
    monkeypatch.setattr(bridges, "kernel_datapath_available", lambda: True)
    bridges.configure(tmp_path / "state", "auto")
    assert bridges.switch(ns).datapath == "netdev"
    with scratch_netns("ovsf") as free:
        assert bridges.switch(free).datapath == "system"
