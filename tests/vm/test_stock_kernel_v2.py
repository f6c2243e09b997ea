"""The VM tier: the instance tests on a pure cgroup-v2 host with Debian's stock kernel.

``scripts/vmtest`` boots Debian's own kernel under QEMU (TCG: these hosts cannot run it with
KVM), with cgroup2 mounted at ``/sys/fs/cgroup`` by the guest's init, and runs pytest there on
this checkout (shared read-only over 9p). This test runs it on demand (`scripts/test -m vm`;
the default selection leaves it out, see docs/instances.md): about 1.5 min to prepare the
image once (cached in /var/cache/fluidedge-vm), then about 4 min per run on 2 cores.

The payload is ``tests/functional/instances``: the manager's cgroup, pool, pause/resume,
network, placement, isolation, abuse and attack tests, the ones that touch the cgroup adapter;
then a subset again with crun as the runtime (``FLUIDEDGE_TEST_RUNTIME=crun``); then the
security-group tests (both renderers: nftables with br_netfilter loaded by the renderer, and
Open vSwitch) and the ovs instance network on the **kernel** OVS datapath
(``FLUIDEDGE_TEST_OVS_DATAPATH=system``), which these development hosts lack, with the guard
that keeps a switch of ours off another switch's kernel datapath; then the eBPF
programs' tests (the TOF's fast path, fail-open guard and intercepts, the chains' tc program)
on Debian 12's own kernel and verifier; then the daemon under its own systemd unit, the VM
booted with systemd as PID 1 (``FLUIDEDGE_VM_INIT=systemd``), as an operator's host is.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.vm]

REPO = Path(__file__).resolve().parents[2]
INSTANCES = "tests/functional/instances"
# runc: every instance functional test. crun (refused on the hybrid development hosts, so this
# is where it is tested): the pool/paths/pause/delete, attack and launcher tests.
# The kernel OVS datapath (the openvswitch module): security groups on both renderers and the
# ovs instance network.
PAYLOADS: dict[str, tuple[list[str], dict[str, str]]] = {
    "runc": ([INSTANCES], {"FLUIDEDGE_TEST_RUNTIME": "runc"}),
    "crun": (
        [
            f"{INSTANCES}/test_pool_and_paths.py",
            f"{INSTANCES}/test_attacks.py",
            f"{INSTANCES}/test_launcher.py",
        ],
        {"FLUIDEDGE_TEST_RUNTIME": "crun"},
    ),
    "kernel-ovs": (
        [
            "tests/functional/secgroups",
            f"{INSTANCES}/test_ovs_network.py",
            "tests/functional/ovs",  # never on another switch's kernel datapath
        ],
        {"FLUIDEDGE_TEST_OVS_DATAPATH": "system"},
    ),
    # The eBPF programs (the TOF's fast path and fail-open guard, the chains' tc program) on
    # Debian 12's kernel: its verifier, helpers and tc hooks, not the development hosts'.
    # With them, the socket buffers on the stock sysctls (net.core.rmem_max 212,992 bytes).
    # Left out: the tests that need a rate an emulated CPU cannot reach (the rate limits, whose
    # sender must outrun the limit; a flood budget; 10,000 datagrams/s; hundreds of map
    # rewrites while traffic flows). The VM gives correctness, not speed.
    "ebpf": (
        [
            "tests/functional/tof_fastpath",
            "tests/functional/chains/test_tc_program.py",
            "tests/functional/chains/test_linux_chains.py",
            "tests/functional/tof_intercept",
            "tests/functional/linux/test_sockbuf.py",
            "-k",
            "not rate_limit and not keep_their_budget and not under_10000_datagrams"
            " and not half_replaced",
        ],
        {},
    ),
    # The daemon under its own unit, systemd as PID 1 (as on an operator's host): the unit's
    # sandbox and systemd's cgroup delegation with every part that runs without a lab.
    "systemd": (
        ["tests/functional/daemon/test_systemd_unit.py"],
        {"FLUIDEDGE_VM_INIT": "systemd"},
    ),
}


@pytest.mark.timeout(3000)
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_instance_tests_pass_on_stock_kernel_cgroup_v2(payload: str) -> None:
    args, env = PAYLOADS[payload]
    result = subprocess.run(
        [str(REPO / "scripts/vmtest"), *args, "-q", "-rfE"],
        capture_output=True,
        text=True,
        timeout=2900,
        check=False,
        env={**os.environ, "FLUIDEDGE_VM_TIMEOUT": "2800", **env},
    )
    output = result.stdout + result.stderr
    print(output[-6000:])  # pytest -s / failure report: the VM's own pytest output
    summary = [line for line in output.splitlines() if re.search(r"\d+ passed", line)]
    assert result.returncode == 0, output[-4000:]
    assert summary, "no pytest summary line from inside the VM"
    assert " failed" not in summary[-1]
    assert " error" not in summary[-1]
    if env.get("FLUIDEDGE_VM_INIT") == "systemd":
        assert "systemd as PID 1" in output
        assert " skipped" not in summary[-1]  # it ran: its test skips without systemd
    else:
        # The guest init reports the hierarchy it mounted: the payload ran on pure cgroup v2.
        assert "cgroup v2 at /sys/fs/cgroup" in output


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("layout", "kind"), [("hybrid", "hybrid"), ("v2", "v2")])
def test_the_vm_boots_either_cgroup_layout_and_the_manager_sees_it(layout: str, kind: str) -> None:
    """``FLUIDEDGE_VM_CGROUP=hybrid`` gives the same kernel the development hosts' layout (what
    ``bench/instances_cgroup_modes.py`` compares with pure v2); the manager's detection, which
    picks the cgroup adapter, must see that layout."""
    probe = (
        "from pathlib import Path; from fluidedge.instances.cgroups import mount_kind; "
        "print('fe-kind', mount_kind(Path('/proc/self/mountinfo').read_text())); "
        "print('fe-freezer', Path('/sys/fs/cgroup/freezer/cgroup.procs').exists())"
    )
    result = subprocess.run(
        [str(REPO / "scripts/vmtest"), "--cmd", "--", ".venv/bin/python", "-c", probe],
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
        env={**os.environ, "FLUIDEDGE_VM_TIMEOUT": "560", "FLUIDEDGE_VM_CGROUP": layout},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"fe-kind {kind}" in output
    # A v1 freezer hierarchy exists in the hybrid layout only (v2 freezes with cgroup.freeze).
    assert f"fe-freezer {layout == 'hybrid'}" in output
