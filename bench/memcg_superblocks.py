"""What one superblock costs each memory cgroup: the kernel memory behind density at 10,000.

    .venv/bin/python bench/memcg_superblocks.py [--superblocks 2000] [--cgroups 200]
    scripts/vmtest --cmd -- .venv/bin/python bench/memcg_superblocks.py   # Debian's 6.1, v2

Every superblock registers a memcg-aware shrinker, and every memory cgroup keeps a map with a
slot for every shrinker id the kernel has handed out (``shrinker_info``: a flat array of 8-byte
counters up to 6.6, 64-slot units of ~520 bytes, i.e. 1 KiB slab objects, from 6.7). An
instance brings a memory cgroup *and* its own filesystems (proc, /dev, /tmp...), so the kernel
memory of N instances grows as N x N. This bench measures the slope on the running kernel:
``--cgroups`` memory cgroups are created (and removed) once with no extra superblock, then
again from a private mount namespace holding ``--superblocks`` extra tmpfs mounts; the kernel
memory each cgroup costs (Slab + VmallocUsed + Percpu of /proc/meminfo: pages, so on a fresh
kernel, where new objects need new pages) is reported for both, and the difference per cgroup
per superblock. Run it on a freshly booted
kernel (the VM, or a host before any density run): the shrinker-id high-water mark never
shrinks, so on a host that once held many superblocks every new cgroup already pays for all
of them and the slope is noise (the first row then says what a cgroup costs there now).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fluidedge.instances.cgroups import mount_kind
from instances_common import kernel_kib


def memory_root() -> Path:
    """Where new memory cgroups go: the v1 memory hierarchy, or the v2 root (memory enabled);
    the mode as the instance manager detects it."""
    root = Path("/sys/fs/cgroup")
    if mount_kind(Path("/proc/self/mountinfo").read_text()) != "v2":
        return root / "memory"
    if "memory" not in (root / "cgroup.controllers").read_text().split():
        sys.exit("no memory controller on this host")
    return root


def cost_per_cgroup(count: int) -> float:
    """KiB of kernel memory per new memory cgroup (``count`` made, measured, removed)."""
    root = memory_root()
    parent = root / f"fe-sb-probe-{os.getpid()}"
    v2 = root == Path("/sys/fs/cgroup")
    if v2:
        (root / "cgroup.subtree_control").write_text("+memory")
    parent.mkdir()
    try:
        if v2:
            (parent / "cgroup.subtree_control").write_text("+memory")
        time.sleep(0.2)
        before = kernel_kib()
        for index in range(count):
            (parent / str(index)).mkdir()
        time.sleep(0.2)
        after = kernel_kib()
        return (after - before) / count
    finally:
        for index in range(count):
            if (parent / str(index)).exists():
                (parent / str(index)).rmdir()
        parent.rmdir()
        time.sleep(2.0)  # a removed cgroup is freed later (RCU): not into the next measurement


def child(base: Path, superblocks: int, cgroups: int) -> None:
    """In a private mount namespace: mount ``superblocks`` tmpfs under ``base``, measure."""
    libc = ctypes.CDLL(None, use_errno=True)
    for index in range(superblocks):
        target = base / str(index)
        target.mkdir()
        if libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", 0, b"size=4k") != 0:
            sys.exit(f"mount {target}: {os.strerror(ctypes.get_errno())}")
    print(f"{cost_per_cgroup(cgroups):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--superblocks", type=int, default=2000)
    parser.add_argument("--cgroups", type=int, default=200)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None and args.base is not None:
        child(args.base, args.child, args.cgroups)
        return
    print(f"memcg x superblock bench: {os.uname().release}, memory cgroups in {memory_root()}")
    rows = []
    for extra in (0, args.superblocks):
        # The mounts go with the child's mount namespace; their directories are removed here.
        base = Path(tempfile.mkdtemp(prefix="fe-sb-"))
        try:
            run = subprocess.run(
                ["unshare", "-m", "--propagation", "private", sys.executable, __file__,
                 "--child", str(extra), "--base", str(base), "--cgroups", str(args.cgroups)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
        finally:
            shutil.rmtree(base, ignore_errors=True)
        rows.append(float(run.stdout.strip()))
        print(f"  {extra:6d} extra superblocks: {rows[-1]:8.2f} KiB per new memory cgroup")
    slope = (rows[1] - rows[0]) * 1024 / args.superblocks
    print(f"  per memory cgroup per superblock: {slope:.1f} bytes")
    print(
        f"  so 10,000 instances with 8 superblocks each: {slope * 80_000 / 2**20:.2f} MiB "
        f"per memory cgroup, {slope * 80_000 * 10_000 / 2**30:.1f} GiB in all"
    )


if __name__ == "__main__":
    main()
