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
