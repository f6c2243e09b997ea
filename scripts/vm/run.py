"""Run a command inside the stock-kernel test VM (QEMU TCG) and report its exit status.

Usage (through ``scripts/vmtest``)::

    scripts/vmtest tests/functional/instances [pytest args...]   # pytest inside the VM
    scripts/vmtest --cmd -- CMD [ARGS...]                        # any payload command

The image comes from ``scripts/vm/prepare`` (cached under /var/cache/fluidedge-vm, keyed by
versions). Each run gets a fresh io directory shared over 9p (``/fe-io`` inside: the guest
init, ``config.json``, the payload's ``output`` and ``rc``); the root image is used with
``snapshot=on`` (writes vanish with the VM). The repository, its virtualenv and the
virtualenv's base Python (when it is not Debian's own under /usr) are shared read-only at their
host paths, so the payload runs the very code and dependencies of this checkout. Extra host
directories: ``FLUIDEDGE_VM_SHARES="/path[:rw] ..."``; ``FLUIDEDGE_TEST_*`` and ``FLUIDEDGE_LAB_*``
variables are passed to the payload (``FLUIDEDGE_TEST_TIME_SCALE`` defaults to 30 and
``FLUIDEDGE_LAB_READY_TIMEOUT`` to 600 there). The guest has no network device.
``FLUIDEDGE_VM_CGROUP=hybrid`` boots the same kernel with the development machines' hybrid
cgroup layout instead of pure v2 (``bench/instances_cgroup_modes.py`` compares the two).
``FLUIDEDGE_VM_INIT=systemd`` boots systemd as PID 1, as a stock host does, and runs the payload
as a service of it (the daemon's own unit can then be started with ``systemctl``).

Why TCG: these hosts' /dev/kvm cannot run a stock kernel (see shared notes); TCG is slow, so
correctness only, never timing figures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _shares() -> list[tuple[Path, bool]]:
    venv = (REPO / ".venv").resolve()
    shares: list[tuple[Path, bool]] = [(REPO, True)]
    if not venv.is_relative_to(REPO):
        shares.append((venv, True))
    base = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if base and not base.startswith("/usr"):
        shares.append((Path(base).resolve(), True))
    for item in os.environ.get("FLUIDEDGE_VM_SHARES", "").split():
        path, _, mode = item.partition(":")
        shares.append((Path(path).resolve(), mode != "rw"))
    return shares


def main(argv: list[str]) -> int:
    # FLUIDEDGE_TEST_* settings of the tests (e.g. FLUIDEDGE_TEST_RUNTIME=crun) go inside too.
    # Deadlines stretched for TCG (about ten times slower than the host) unless set: the
    # suite's waits (tests/fixtures/wait.py) and the lab's start.
    env = {"FLUIDEDGE_TEST_TIME_SCALE": "30", "FLUIDEDGE_LAB_READY_TIMEOUT": "600"}
    env |= {
        k: v for k, v in os.environ.items() if k.startswith(("FLUIDEDGE_TEST_", "FLUIDEDGE_LAB_"))
    }
    if argv[:1] == ["--cmd"]:
        payload = argv[2:] if argv[1:2] == ["--"] else argv[1:]
    else:
        # Importing every installed pytest plugin (hypothesis, schemathesis...) takes over a
        # minute under TCG over 9p: load only the one the configuration needs (timeout).
        payload = [
            ".venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider", "-p", "pytest_timeout",
            *argv,
        ]  # fmt: skip
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    if not payload:
        print(__doc__, file=sys.stderr)
        return 2
    image = Path(
        subprocess.run([str(HERE / "prepare")], stdout=subprocess.PIPE, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    memory = os.environ.get("FLUIDEDGE_VM_MEMORY", "2048")
    cpus = os.environ.get("FLUIDEDGE_VM_CPUS", "2")
    timeout = float(os.environ.get("FLUIDEDGE_VM_TIMEOUT", "2400"))
    io_dir = Path(tempfile.mkdtemp(prefix="fluidedge-vm-", dir="/var/tmp"))  # noqa: S108
    try:
        shutil.copy(HERE / "guest_init.py", io_dir / "guest_init.py")
        mounts = []
        qemu = [
            "qemu-system-x86_64",
            "-accel", "tcg,thread=multi",
            "-machine", "q35",
            "-cpu", "max",
            "-smp", cpus,
            "-m", memory,
            "-nographic",
            "-no-reboot",
            "-nic", "none",
            "-kernel", str(image / "vmlinux"),
            "-initrd", str(image / "initrd.gz"),
            "-append", "console=ttyS0 quiet loglevel=3 panic=-1 rw",
            "-drive", f"file={image / 'rootfs.img'},format=raw,if=virtio,snapshot=on",
            "-virtfs", f"local,path={io_dir},mount_tag=feio,security_model=none,id=feio",
        ]  # fmt: skip
        for index, (path, readonly) in enumerate(_shares()):
            tag = f"fes{index}"
            mounts.append({"tag": tag, "path": str(path), "readonly": readonly})
            qemu += [
                "-virtfs",
                f"local,path={path},mount_tag={tag},security_model=none,id={tag}"
                + (",readonly=on" if readonly else ""),
            ]
        config = {
            "argv": payload,
            "cwd": str(REPO),
            "env": {
                "PYTHONPATH": str(REPO / "src"),
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "FLUIDEDGE_IN_VM": "1",
                # The repository is shared read-only: Hypothesis keeps its example database
                # in the guest's tmpfs (its default, .hypothesis/ in the repository, is
                # unusable there, and the suite's warnings are errors).
                "HYPOTHESIS_STORAGE_DIRECTORY": "/tmp/hypothesis",  # noqa: S108 (the guest's)
                **env,
            },
            "mounts": mounts,
            "cgroup": os.environ.get("FLUIDEDGE_VM_CGROUP", "v2"),
            "init": os.environ.get("FLUIDEDGE_VM_INIT", "script"),
        }
        (io_dir / "config.json").write_text(json.dumps(config))
        try:
            subprocess.run(qemu, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            print(f"scripts/vmtest: the VM did not finish in {timeout:.0f} s", file=sys.stderr)
            return 124
        rc_file = io_dir / "rc"
        if not rc_file.exists():
            print("scripts/vmtest: the VM stopped without a payload status", file=sys.stderr)
            return 125
        return int(rc_file.read_text().strip() or 255)
    finally:
        shutil.rmtree(io_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
