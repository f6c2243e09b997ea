"""The TOF's programs taken off from outside come back inside a running daemon, both backends.

``tc qdisc del dev <eNB side> clsact`` under a running daemon: within ``program_check_interval``
(1 s by default) the part's check puts the program back, ``/stats`` counts it, the log says so
at error level, and the UEs reach the PDN through the TOF as before.
"""

from __future__ import annotations

import pytest

from tests.e2e.tof.conftest import TofEnvFactory
from tests.fixtures.wait import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_a_program_taken_off_comes_back_within_the_check_interval(
    tof_env: TofEnvFactory,
) -> None:
    env = tof_env()
    lab = env.lab
    pdn = str(lab.pdn_address)
    assert env.ping("ue1", pdn)
    assert env.stats()["io"].get("programs_reattached", 0) == 0
    code, out = env.run("host", "tc", "qdisc", "del", "dev", lab.enb_side_if, "clsact")
    assert code == 0, out

    assert wait_until(lambda: env.stats()["io"].get("programs_reattached", 0) >= 1, 15)
    assert env.ping("ue1", pdn)
    assert f"on {lab.enb_side_if} ingress taken off from outside; re-attached" in env.daemon.log()
