"""The apps-side check and set-up against a real namespace (sysctl, ip)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fluidedge.linux.proc import run
from fluidedge.tof import apps_side
from fluidedge.tof.config import TofConfig
from fluidedge.tof.errors import DataPlaneError
from tests.fixtures.netns import scratch_netns

pytestmark = pytest.mark.root


@pytest.fixture
def ns() -> Iterator[str]:
    with scratch_netns("apps") as name:
        run(["ip", "-n", name, "link", "add", "apps0", "type", "veth", "peer", "name", "apps0p"])
        run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=0"])
        yield name


def sysctl(ns: str, key: str) -> str:
    return run(["ip", "netns", "exec", ns, "sysctl", "-n", key]).stdout.strip()


def test_check_refuses_then_auto_sets_up(ns: str) -> None:
    base = {"backend": "none", "netns": ns, "apps_interface": "apps0"}
    check = TofConfig(**base, apps_gateway="198.19.0.1/24", apps_setup="check")  # type: ignore[arg-type]
    with pytest.raises(DataPlaneError) as info:
        apps_side.prepare(check)
    text = str(info.value)
    assert f"net.ipv4.ip_forward is 0 in namespace {ns}" in text
    assert "apps interface apps0 is down" in text
    assert "lacks the gateway address 198.19.0.1/24" in text
    assert sysctl(ns, "net.ipv4.ip_forward") == "0"  # check changed nothing
    auto = check.model_copy(update={"apps_setup": "auto"})
    apps_side.prepare(auto)
    assert sysctl(ns, "net.ipv4.ip_forward") == "1"
    shown = run(["ip", "-n", ns, "addr", "show", "dev", "apps0"]).stdout
    assert "inet 198.19.0.1/24" in shown
    assert apps_side.prepare(check).commands == ()  # ready now: check passes
    missing = TofConfig(**{**base, "apps_interface": "nothere"})  # type: ignore[arg-type]
    with pytest.raises(
        DataPlaneError, match=f"apps interface nothere does not exist in namespace {ns}"
    ):
        apps_side.prepare(missing)


def test_the_check_reads_each_forwarding_sysctl_of_the_namespace(ns: str) -> None:
    """One thread inside the namespace reads every key; the host's values do not leak in, and
    a key that does not exist reads as off."""
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
    read = apps_side.sysctls_in(ns)
    assert read([*apps_side.FORWARDING, "net.nothere.at_all"]) == [False, True, False]
    run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    assert read(apps_side.FORWARDING) == [True, True]
    assert apps_side.sysctls_in("fe-no-such-ns")(apps_side.FORWARDING) == [False, False]
