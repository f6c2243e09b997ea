"""Run the OVS command-line tools with a private environment, argv only.

The tools find their sockets through ``OVS_RUNDIR``/``OVS_DBDIR``/``OVS_LOGDIR``; ovs-vswitchd
also creates each bridge's OpenFlow management socket (``<bridge>.mgmt``) in its run
directory. Every call therefore carries the environment of *our* switch, never the host's
default directories, and no shell ever sees an argument.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from fluidedge.ovs.errors import OvsFailure


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    input_text: str | None = None,
    timeout: float = 30.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``env`` added to ours; :class:`OvsFailure` on a non-zero exit."""
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env},
        )
    except FileNotFoundError as exc:
        raise OvsFailure(f"{argv[0]}: not installed ({exc.filename})") from exc
    except subprocess.TimeoutExpired as exc:
        raise OvsFailure(f"{' '.join(argv[:3])}: timed out after {timeout}s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise OvsFailure(f"{' '.join(argv[:4])} failed ({result.returncode}): {detail}")
    return result
