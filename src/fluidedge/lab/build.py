"""Bring a lab up and down: the only lab module that creates or removes system objects.

``up`` executes a :class:`~fluidedge.lab.topology.Plan`: namespaces, sysctls, one ``ip -batch``
per namespace to create links (run concurrently), one per namespace to configure them, tx
checksum offload off on S1 interfaces (so captures and AF_PACKET readers see complete
checksums), then the processes. The state record is written before each step, and any failure
triggers ``down``, so a failed ``up`` leaves nothing behind either.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from fluidedge.lab.config import LabConfig
from fluidedge.lab.errors import LabAlreadyUpError, LabConfigError, LabNotUpError, LabSystemError
from fluidedge.lab.state import (
    LabState,
    ProcessRecord,
    process_alive,
    process_start_time,
    run_dir,
)
from fluidedge.lab.topology import Plan, ProcessSpec, Topology, sgsn_spec, validate_prefix
from fluidedge.linux import netns

# How long the lab's processes get to report ready. An emulated machine (the stock-kernel VM
# tier runs under QEMU TCG, ~10x slower) needs more: FLUIDEDGE_LAB_READY_TIMEOUT (seconds).
READY_TIMEOUT = float(os.environ.get("FLUIDEDGE_LAB_READY_TIMEOUT", "15"))
TERM_GRACE = 2.0
DETACH_GRACE = 5.0  # an osmo UE's supervisor waits for the GGSN's Delete PDP Context Response

# Children this Python process spawned, so ``down`` can reap them (no zombies in pytest).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _run_all(jobs: Sequence[tuple[list[str], str | None]], what: str) -> None:
    """Run ``(argv, stdin)`` jobs concurrently; raise naming the first that failed."""
    procs = []
    for argv, stdin in jobs:
        p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append((argv, stdin, p))
    failures = []
    for argv, stdin, p in procs:
        _, err = p.communicate(stdin, timeout=60)
        if p.returncode != 0:
            failures.append(f"{' '.join(argv)}: {err.strip()}")
    if failures:
        raise LabSystemError(f"{what} failed: " + "; ".join(failures))


def _write_sysctls(ns: str, values: Iterable[tuple[str, str]]) -> None:
    def apply() -> None:
        for key, value in values:
            Path("/proc/sys", key).write_text(value)

    try:
        netns.call_in_netns(ns, apply)
    except OSError as exc:
        raise LabSystemError(f"sysctl in {ns} failed: {exc}") from exc


def _spawn(spec: ProcessSpec, directory: Path, python: str) -> subprocess.Popen[bytes]:
    spec_path = directory / f"{spec.name}.spec.json"
    spec_path.write_text(json.dumps(spec.spec, indent=1))
    log = (directory / f"{spec.name}.log").open("ab")
    argv = ["ip", "netns", "exec", spec.netns, python, "-m", spec.module, str(spec_path)]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI that started it; no Ctrl-C from it
            close_fds=True,
        )
    finally:
        log.close()
    _children[proc.pid] = proc
    return proc


def _ready_marker(spec: ProcessSpec) -> Path:
    key = "stats_path" if spec.module.endswith(".node") else "ready_path"
    return Path(str(spec.spec[key]))


def up(config: LabConfig, prefix: str, *, python: str | None = None) -> LabState:
    """Create the lab described by ``config`` under ``prefix``; refuse if it already exists."""
    validate_prefix(prefix)
    if LabState.load(prefix) is not None:
        raise LabAlreadyUpError(
            f"lab {prefix!r} is already up (or half up); run `fluidedge lab down --prefix {prefix}`"
        )
    topo = Topology(config, prefix)
    directory = run_dir(prefix)
    plan = topo.plan(python or sys.executable, str(directory))
    clash = [ns for ns in plan.namespaces if netns.exists(ns)]
    if clash:
        raise LabAlreadyUpError(
            f"namespace {clash[0]!r} already exists but no lab {prefix!r} is recorded; "
            f"remove it or run `fluidedge lab down --prefix {prefix} --force`"
        )
    state = LabState(
        prefix=prefix,
        mode=config.lab.mode,
        config=config.model_dump(mode="json"),
        namespaces=list(plan.namespaces),
    )
    try:  # creating the run directory is the lock: two concurrent `up`s cannot both pass
        directory.mkdir(parents=True)
    except FileExistsError as exc:
        raise LabAlreadyUpError(
            f"lab {prefix!r} is being brought up or was left half up ({directory} exists); "
            f"run `fluidedge lab down --prefix {prefix}`"
        ) from exc
    except OSError as exc:
        raise LabSystemError(f"cannot create {directory}: {exc.strerror}") from exc
    state.save()  # before the first namespace exists
    try:
        _execute(plan, state, directory, python or sys.executable)
    except BaseException:
        down(prefix)
        raise
    state.phase = "up"
    state.save()
    return state


def _execute(plan: Plan, state: LabState, directory: Path, python: str) -> None:
    for ns in plan.namespaces:
        netns.create(ns)
    for ns in plan.namespaces:
        _write_sysctls(ns, plan.sysctls[ns])
    _run_all(
        [
            (["ip", "-n", ns, "-batch", "-"], "\n".join(cmds) + "\n")
            for ns, cmds in plan.create.items()
            if cmds
        ],
        "creating links",
    )
    for ns, values in plan.link_sysctls.items():
        if values:
            _write_sysctls(ns, values)
    _run_all(
        [
            (["ip", "-n", ns, "-batch", "-"], "\n".join(cmds) + "\n")
            for ns, cmds in plan.configure.items()
            if cmds
        ],
        "configuring links",
    )
    _run_all(
        [
            (["ip", "-6", "-n", ns, "-batch", "-"], "\n".join(cmds) + "\n")
            for ns, cmds in plan.configure6.items()
            if cmds
        ],
        "configuring IPv6",
    )
    _run_all(
        [
            (["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"], None)
            for ns, dev in plan.tx_offload_off
        ],
        "turning tx checksum offload off",
    )
    for stage in sorted({spec.stage for spec in plan.processes}):
        _start_processes([p for p in plan.processes if p.stage == stage], state, directory, python)
    _run_all(
        [
            (["ip", "-n", ns, "-batch", "-"], "\n".join(cmds) + "\n")
            for ns, cmds in plan.finish.items()
            if cmds
        ],
        "finishing",
    )


def _log_tail(path: Path, size: int = 2000) -> str:
    """The end of a lab process's log, for an error that says why it is not ready."""
    try:
        return path.read_text(errors="replace")[-size:] or "(empty)"
    except OSError as exc:
        return f"(unreadable: {exc.strerror})"


def _start_processes(
    specs: list[ProcessSpec], state: LabState, directory: Path, python: str
) -> None:
    """Spawn ``specs`` (each recorded right after its spawn) and wait until all are ready."""
    procs: list[tuple[ProcessSpec, subprocess.Popen[bytes]]] = []
    for spec in specs:
        proc = _spawn(spec, directory, python)
        state.processes.append(
            ProcessRecord(
                name=spec.name,
                netns=spec.netns,
                pid=proc.pid,
                start_time=process_start_time(proc.pid),
                argv=[spec.module],
            )
        )
        state.save()
        procs.append((spec, proc))
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(procs)
    while pending:
        for item in list(pending):
            spec, proc = item
            if _ready_marker(spec).exists():
                pending.remove(item)
            elif proc.poll() is not None:
                log = _log_tail(directory / f"{spec.name}.log")
                raise LabSystemError(
                    f"lab process {spec.name} exited ({proc.returncode}) during start-up: {log}"
                )
        if pending and time.monotonic() > deadline:
            logs = "".join(
                f"\n--- {s.name}.log (end):\n{_log_tail(directory / f'{s.name}.log')}"
                for s, _ in pending
            )
            raise LabSystemError(
                "lab processes not ready after "
                f"{READY_TIMEOUT:.0f}s: {', '.join(s.name for s, _ in pending)}{logs}"
            )
        if pending:
            time.sleep(0.02)


def _netns_pids(ns: str) -> list[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
    )
    return [int(x) for x in result.stdout.split() if x.isdigit()]


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    child = _children.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            _children[pid] = child


def _stop_processes(records: list[tuple[int, int | None]], *, grace: float = TERM_GRACE) -> None:
    """SIGTERM, wait up to ``grace``, then SIGKILL; reap our own children."""
    alive = [(pid, st) for pid, st in records if process_alive(pid, st)]
    for pid, _ in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        for pid, _ in alive:
            if pid in _children and _children[pid].poll() is not None:
                _reap(pid)
        alive = [(pid, st) for pid, st in alive if process_alive(pid, st)]
        if alive:
            time.sleep(0.02)
    for pid, _ in alive:
        _signal(pid, signal.SIGKILL)
    for pid, _ in records:
        _reap(pid)


def down(prefix: str, *, force: bool = False) -> list[str]:
    """Remove every recorded process, namespace and file of lab ``prefix``; return what went.

    Idempotent: a lab that is not up is a no-op. With ``force``, namespaces named
    ``<prefix>-*`` are removed even without a state record (e.g. the record was deleted).
    """
    validate_prefix(prefix)
    state = LabState.load(prefix)
    namespaces = list(state.namespaces) if state else []
    if force:
        pattern = re.compile(rf"^{re.escape(prefix)}-[a-z][a-z0-9]*$")
        namespaces += [n for n in netns.list_names() if pattern.match(n) and n not in namespaces]
    removed: list[str] = []
    if state is not None and state.config.get("lab", {}).get("flavour") == "osmo":
        # UEs first, while the GGSN still answers their Delete PDP Context Requests.
        sgsns = {str(e["name"]) for e in state.config.get("enb", [])}
        _stop_processes([(p.pid, p.start_time) for p in state.processes if p.name in sgsns])
    records = [(p.pid, p.start_time) for p in state.processes] if state else []
    _stop_processes(records)
    removed += [f"process {p.name} ({p.pid})" for p in (state.processes if state else [])]
    # Anything else running inside the lab's namespaces (captures, `lab exec` leftovers).
    strays: list[tuple[int, int | None]] = [
        (pid, None) for ns in namespaces if netns.exists(ns) for pid in _netns_pids(ns)
    ]
    if strays:
        _stop_processes(strays)
        removed += [f"stray process {pid}" for pid, _ in strays]
    for ns in namespaces:
        if netns.exists(ns):
            netns.delete(ns)
            removed.append(f"namespace {ns}")
    directory = run_dir(prefix)
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(f"state {directory}")
    return removed


def reattach(prefix: str, ue: str, *, delete: bool = True, python: str | None = None) -> str:
    """Detach ``ue`` of an osmo-flavour lab and attach it again; return its new address.

    ``delete``: a clean detach (sgsnemu sends Delete PDP Context, the GGSN frees the context and
    its TEID: the next attach typically gets both TEIDs again and the next pool address).
    Without it, the "radio lost" case: sgsnemu is killed, the GGSN keeps the old context, and
    the new attach gets a new uplink TEID and address while sgsnemu reuses downlink TEID 1.
    Every attach uses a new IMSI. The new process is recorded right after it is spawned.
    """
    state = require(prefix)
    topo = Topology(LabConfig.model_validate(state.config), prefix)
    if not topo.osmo:
        raise LabConfigError(f"lab {prefix!r}: re-attach needs the osmo flavour")
    sgsn = next((u.enb for u in topo.config.ue if u.name == ue), None)
    if sgsn is None:
        raise LabConfigError(f"lab {prefix!r} has no UE {ue!r}")
    directory = run_dir(prefix)
    record = next(p for p in state.processes if p.name == sgsn)
    child = _read_pid(directory / sgsn / "child.pid")
    (directory / f"{sgsn}.ready").unlink(missing_ok=True)
    if delete:
        _stop_processes([(record.pid, record.start_time)], grace=DETACH_GRACE)
    else:
        if process_alive(record.pid, record.start_time):
            _signal(record.pid, signal.SIGKILL)
        _reap(record.pid)
    deadline = time.monotonic() + READY_TIMEOUT  # sgsnemu dies with its supervisor
    while child is not None and process_alive(child, None) and time.monotonic() < deadline:
        time.sleep(0.01)
    state.processes.remove(record)
    state.attaches[ue] = state.attaches.get(ue, 0) + 1
    state.save()
    spec = ProcessSpec(
        name=sgsn,
        netns=record.netns,
        module=record.argv[0],
        spec=sgsn_spec(topo, sgsn, ue, str(directory), attach=state.attaches[ue]),
    )
    _start_processes([spec], state, directory, python or sys.executable)
    return str(json.loads((directory / f"{sgsn}.ready").read_text())["address"])


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def require(prefix: str) -> LabState:
    """The state of lab ``prefix`` or :class:`LabNotUpError`."""
    validate_prefix(prefix)
    state = LabState.load(prefix)
    if state is None:
        raise LabNotUpError(f"no lab {prefix!r} is up (no state in {run_dir(prefix)})")
    return state
