"""Run external tools safely.

Every command is an argv list (never a shell string), so user data can never be interpreted by a
shell. Failures become :class:`CommandError` with the tool's stderr attached.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from fluidedge.errors import SystemFailure


class CommandError(SystemFailure):
    """An external command exited non-zero or could not be started."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(self.argv)!s} failed ({returncode}): {stderr.strip()}")


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and return its completed process; raise :class:`CommandError` on failure."""
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, f"not installed: {exc.filename}") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, -1, f"timed out after {timeout}s") from exc
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stderr or result.stdout)
    return result


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` so it runs inside network namespace ``netns`` (or as is if ``None``)."""
    if netns is None:
        return list(argv)
    return ["ip", "netns", "exec", netns, *argv]
