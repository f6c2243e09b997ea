"""OCI config generation (isolation defaults) and request validation (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fluidedge.instances.builtin import builtin_templates
from fluidedge.instances.bundle import (
    DENIED_SYSCALLS,
    LAUNCHER_IN_ROOT,
    cpu_quota_us,
    cpu_shares,
    encode_assignment,
    oci_config,
)
from fluidedge.instances.models import InstanceRequest, TemplateSpec


def _config(**overrides: object) -> dict[str, object]:
    template = TemplateSpec.model_validate(
        {"name": "t", "command": ["/bin/busybox", "true"], **overrides}
    )
    return oci_config(
        template,
        container_id="fe0123456789",
        rootfs=Path("/r"),
        assign_dir=Path("/s/assign"),
        bind_dirs=["/usr", "/etc"],
        cgroups_path="/fluidedge/fe0123456789",
    )


def test_least_privilege_defaults() -> None:
    config = _config()
    process = config["process"]
    assert isinstance(process, dict)
    assert process["noNewPrivileges"] is True
    assert process["capabilities"]["bounding"] == []
    assert process["args"] == [LAUNCHER_IN_ROOT]
    assert config["root"] == {"path": "/r", "readonly": True}
    linux = config["linux"]
    assert isinstance(linux, dict)
    kinds = {ns["type"] for ns in linux["namespaces"]}
    assert {"pid", "network", "ipc", "uts", "mount"} <= kinds
    assert linux["resources"]["pids"]["limit"] == 64
    assert linux["resources"]["memory"]["limit"] == 32 * 1024 * 1024
    denied = linux["seccomp"]["syscalls"][0]["names"]
    for name in ("mount", "kexec_load", "init_module", "ptrace", "bpf", "unshare", "setns"):
        assert name in denied
    mounts = {m["destination"]: m for m in config["mounts"]}  # type: ignore[union-attr]
    assert mounts["/tmp"]["type"] == "tmpfs"
    assert "ro" in mounts["/usr"]["options"]
    assert mounts["/.fe"]["source"] == "/s/assign"
    assert "ro" in mounts["/.fe"]["options"]


def test_capabilities_are_only_those_asked() -> None:
    config = _config(capabilities=["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"])
    caps = config["process"]["capabilities"]  # type: ignore[index]
    assert caps["bounding"] == ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]


def test_dangerous_capability_refused() -> None:
    with pytest.raises(ValidationError, match="CAP_SYS_ADMIN"):
        TemplateSpec(name="t", command=["/bin/x"], capabilities=["CAP_SYS_ADMIN"])


def test_denied_syscalls_are_unique_and_sorted_for_review() -> None:
    assert list(DENIED_SYSCALLS) == sorted(set(DENIED_SYSCALLS))


def test_cpu_conversions() -> None:
    assert cpu_shares(1) == 1024
    assert cpu_shares(0.0001) == 2
    assert cpu_quota_us(0.5) == 50_000
    assert cpu_quota_us(0.001) == 1000


def test_assignment_encoding() -> None:
    blob = encode_assignment(["/bin/busybox", "sleep", "1"], {"A": "b c"})
    assert blob == b"3\0/bin/busybox\0sleep\0001\0A=b c\0"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", "Bad_Name", "pattern"),
        ("interfaces", {"eth0": {"addresses": ["198.18.0.300/24"]}}, "invalid address"),
        ("interfaces", {"eth0": {"addresses": ["198.18.0.3"]}}, "prefix length"),
        ("command", ["relative"], "absolute"),
        ("affinity", ["nokey"], "key=value"),
        ("env", {"1BAD": "x"}, "environment"),
    ],
)
def test_bad_requests_have_reasons(field: str, value: object, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        InstanceRequest.model_validate({"name": "ok", "template": "idle", field: value})


def test_addresses_are_normalised() -> None:
    request = InstanceRequest.model_validate(
        {"name": "a", "template": "t", "interfaces": {"eth0": {"addresses": ["2001:DB8::1/64"]}}}
    )
    assert request.interfaces["eth0"].addresses == ["2001:db8::1/64"]


def test_builtin_templates_are_valid_and_distinct() -> None:
    names = [t.name for t in builtin_templates()]
    assert names == ["idle", "httpd"]
    httpd = builtin_templates()[1]
    assert httpd.readiness.kind == "tcp"
    assert "{name}" in httpd.files["www/index.html"]


def test_template_rejects_traversal_in_files() -> None:
    with pytest.raises(ValidationError, match="invalid file path"):
        TemplateSpec(name="t", command=["/bin/x"], files={"../etc/passwd": "x"})
