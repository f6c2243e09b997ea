"""The shell launchers: the static C one and the busybox fallback give the workload the same
environment and argv; a fallback built without a compiler does not stick once one is there;
the API's limits are the launcher's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fluidedge.instances import launcher
from fluidedge.instances.errors import InvalidRequest
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import LIMITS, MAX_ASSIGNMENT_BYTES, InstanceRequest
from tests.fixtures.wait import wait_for

from .conftest import ManagerFactory

pytestmark = pytest.mark.root


def _output(manager: Manager, name: str, marker: str, timeout: float = 20.0) -> str:
    def logged() -> str | None:
        text = manager.logs(name)
        return text if marker in text else None

    return wait_for(
        logged, timeout, lambda: f"{marker!r} in the logs of {name}: {manager.logs(name)!r}"
    )


@pytest.mark.parametrize("kind", ["c", "sh"])
def test_both_launchers_give_the_same_environment(
    manager_factory: ManagerFactory, kind: str
) -> None:
    manager = manager_factory(pool_scale=0, launcher=kind)
    assert manager.launcher_kind == kind
    view = manager.create_instance(
        InstanceRequest(
            name="envp",
            template="idle",
            command=[
                "/bin/busybox",
                "sh",
                "-c",
                'env | sort; echo "ARGS:$0|$1|$2"; echo END; sleep 1000',
                "a b",
                "",
                "c*",
            ],
            env={"ZED": "last one", "EMPTY": ""},
        )
    )
    assert view.state == "running"
    text = _output(manager, "envp", "END")
    lines = text.splitlines()
    env = sorted(line for line in lines if "=" in line and not line.startswith("ARGS:"))
    # Exactly the assignment's environment (PATH default, the request's, the instance name),
    # plus what busybox sh itself always exports to its children (PWD, SHLVL).
    assert [e for e in env if not e.startswith(("PWD=", "SHLVL="))] == [
        "EMPTY=",
        "FLUIDEDGE_INSTANCE=envp",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "ZED=last one",
    ]
    assert "ARGS:a b||c*" in lines


def test_stale_fallback_is_rebuilt_once_a_compiler_is_present(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is part of scripts/setup's packages")
    directory = tmp_path / "launcher"
    path, kind = launcher.build_launcher(directory, "sh")  # as if built without a compiler
    assert kind == "sh"
    assert path.read_text() == launcher.SH_SOURCE
    path, kind = launcher.build_launcher(directory, "auto")
    assert kind == "c"
    assert path.read_bytes().startswith(b"\x7fELF")
    assert (directory / "fe-launcher.kind").read_text() == "c"


def test_sizes_beyond_the_launcher_are_refused_not_dropped(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory(pool_scale=0)
    entries, value = LIMITS["env"], "x" * LIMITS["env_value"]
    with pytest.raises(ValueError, match=f"at most {entries} items"):
        InstanceRequest(name="big", template="idle", env={f"V{i}": "x" for i in range(entries + 1)})
    # Every field within its own limit, the whole beyond what the launcher reads.
    with pytest.raises(ValueError, match=f"at most {MAX_ASSIGNMENT_BYTES} bytes"):
        InstanceRequest(name="big", template="idle", env={f"V{i}": value for i in range(5)})
    # Within the request's own limit, but not with the template's environment added.
    template = manager.get_template("idle").model_copy(
        update={"name": "envy", "env": {f"T{i}": value for i in range(3)}}
    )
    manager.create_template(template)
    request = InstanceRequest(name="big", template="envy", env={f"V{i}": value for i in range(2)})
    with pytest.raises(InvalidRequest, match=f"at most {MAX_ASSIGNMENT_BYTES} bytes"):
        manager.create_instance(request)
    assert "big" not in manager.instances
    assert "big" not in manager.reserved_names


@pytest.mark.parametrize("kind", ["c", "sh"])
def test_an_assignment_larger_than_the_pipe_arrives_whole(
    manager_factory: ManagerFactory, kind: str
) -> None:
    """The C launcher reads its assignment from the go FIFO (64 KiB of pipe): one near the
    launcher's limit is written as the launcher reads it and reaches the workload whole."""
    manager = manager_factory(pool_scale=0, launcher=kind)
    value = "v" * LIMITS["env_value"]
    count = (MAX_ASSIGNMENT_BYTES - 4096) // (len(value) + 8)
    env = {f"BIG{i}": value.replace("v", str(i % 10)) for i in range(count)}
    assert len(launcher.go_frame(b"\0".join(f"{k}={v}".encode() for k, v in env.items()))) > (
        1 << 16
    )
    view = manager.create_instance(InstanceRequest(name="big", template="idle", env=env))

    def workload_env() -> dict[str, str] | None:
        # The busybox launcher's exec is of ``env -i``, which execs the workload in turn.
        environ = Path(f"/proc/{view.pid}/environ").read_bytes().split(b"\0")
        got = {k: v for k, _, v in (e.decode().partition("=") for e in environ if e)}
        return got if "BIG0" in got else None

    got = wait_for(workload_env, 20, "the workload's environment")
    assert {k: got.get(k) for k in env} == env


def test_a_go_frame_cut_short_fails_the_start(
    manager_factory: ManagerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon that dies while it writes the go frame leaves the launcher an EOF before the
    frame's end: the launcher exits with its reason instead of running a truncated command
    (the pool discards the shell and logs the reason)."""
    manager = manager_factory(pool_scale=1.0, launcher="c")
    assert manager.wait_pools()
    shell = next(iter(manager.pools["idle"].ready))
    frame = launcher.go_frame(b"1\0/bin/busybox\0CUT=short\0")
    launcher.signal_go(shell.directory / "assign" / launcher.GO_FIFO, shell.pid, frame[:-8])
    wait_for(
        lambda: "fe-launcher: assignment cut short" in caplog.text,
        20,
        lambda: f"the pool's report of shell {shell.id}: {caplog.text}",
    )
    assert f"pooled shell {shell.id} (pid {shell.pid}) had exited" in caplog.text
