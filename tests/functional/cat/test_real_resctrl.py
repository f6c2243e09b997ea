"""The real resctrl adapter against the host's real mount, when the host has one.

On a host with RDT (resctrl mounted, or mountable: ``resctrl`` in ``/proc/filesystems``) the
adapter reads the host's capabilities and does a real round trip: a group is created, the
host's whole ``cbm_mask`` written to it, read back, this test's own pid moved in and back, and
the group removed. On a host without RDT the test checks that the manager says so plainly, with
what it checked, and prints that in the test output: nothing is skipped silently.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fluidedge.cat.fs import DEFAULT_MOUNT, RealResctrlFS, probe, read_host
from fluidedge.cat.layout import parse_schemata

pytestmark = pytest.mark.root


def _kernel_has_resctrl() -> bool:
    return any(
        line.split()[-1] == "resctrl"
        for line in Path("/proc/filesystems").read_text().splitlines()
        if line.strip()
    )


def test_real_mount_round_trip_or_a_plain_no(capsys: pytest.CaptureFixture[str]) -> None:
    fs = RealResctrlFS(DEFAULT_MOUNT)
    mounted_here = False
    if not fs.exists("info") and _kernel_has_resctrl():
        DEFAULT_MOUNT.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "resctrl", "resctrl", str(DEFAULT_MOUNT)],
            capture_output=True,
            text=True,
            check=False,
        )
        mounted_here = result.returncode == 0
        assert mounted_here, f"the kernel has resctrl but mounting it failed: {result.stderr}"
    support = probe(fs)
    try:
        if not support.supported:
            assert support.reason.startswith("not supported on this host: no RDT")
            assert f"{DEFAULT_MOUNT}/info and {DEFAULT_MOUNT}/schemata: absent" in support.checks[0]
            assert not _kernel_has_resctrl()
            with capsys.disabled():
                print(f"\nresctrl: THIS HOST HAS NONE -- {support.reason}")
            return
        host = read_host(fs)
        cache = next(iter(host.caches.values()))
        name = f"fe-test-{os.getpid()}"
        fs.mkdir(name)
        try:
            line = f"{cache.resource}:" + ";".join(
                f"{dom}={cache.cbm_mask:x}" for dom in cache.domains
            )
            fs.write(f"{name}/schemata", line + "\n")
            got = parse_schemata(fs.read(f"{name}/schemata"))[cache.resource]
            assert {d: int(v, 16) for d, v in got.items()} == dict.fromkeys(
                cache.domains, cache.cbm_mask
            )
            fs.write(f"{name}/tasks", f"{os.getpid()}\n")
            assert str(os.getpid()) in fs.read(f"{name}/tasks").split()
            fs.write("tasks", f"{os.getpid()}\n")
        finally:
            fs.rmdir(name)
        with capsys.disabled():
            print(f"\nresctrl: real mount used -- {host.describe()}")
    finally:
        if mounted_here:
            subprocess.run(["umount", str(DEFAULT_MOUNT)], check=False)
