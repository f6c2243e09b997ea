"""The served OpenAPI document tells the truth: schemathesis, every check, against a real daemon
with every part that runs on one host (TOF with the null backend, instance manager with real
runc, security groups, chains, the ME platform, and CAT pointed at a resctrl mount that does
not exist, so it answers its documented 501 and never touches a real cache layout) running in
a private network namespace (the bridges a generated request creates live and die there).

Bounded for CI (``SCHEMA_EXAMPLES`` examples per operation, fixed seed); ``bench/api_schema.py``
runs the same with a larger budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.functional.daemon.conftest import purge_instances

pytestmark = [pytest.mark.root, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMA_EXAMPLES = 25
PARTS = {
    "tof": {"backend": "none"},
    "instances": {"pool_scale": 0, "memory_mb": 1024, "builtin_templates": False},
    "secgroups": {},
    "chains": {},
    "mec": {},
}


def schemathesis_argv(url: str, *, examples: int, seed: int) -> list[str]:
    """The schemathesis command line (every check, no exclusion) for the daemon at ``url``."""
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "run", f"{url}/openapi.json",
        "--checks", "all",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--max-examples", str(examples),
        "--seed", str(seed),
        "--workers", "1",
    ]  # fmt: skip


@pytest.mark.timeout(1200)
def test_schemathesis_all_checks_pass(
    api_netns: str, daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    parts = {**PARTS, "cat": {"mount": str(tmp_path / "no-resctrl")}}
    daemon = daemon_factory(parts, netns=api_netns)
    try:
        result = subprocess.run(
            ["ip", "netns", "exec", api_netns,
             *schemathesis_argv(daemon.url, examples=SCHEMA_EXAMPLES, seed=1)],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        failures = result.stdout.find("FAILURES")  # each failure with its curl, then the summary
        report = result.stdout[max(failures, 0) :][:12000] + result.stdout[-3000:]
        report += result.stderr[-2000:]
        assert result.returncode == 0, report
        assert "0 failures" in result.stdout or "passed" in result.stdout, report
    finally:
        daemon.stop()
        purge_instances(daemon)
