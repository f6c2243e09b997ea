"""``fluidedge demo --mec``: the demo's service is the example producer app, deployed through
the ME platform's API with a traffic rule and a DNS rule (a UE's lookup through the core's
resolver is answered at the edge); the example consumer discovers it over Mp1 and calls it
over the platform network; everything, the platform network on the host included, is torn
down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_demo import _assert_nothing_left
from tests.fixtures.wait import scaled

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_demo_mec() -> None:
    prefix = f"fmd{os.getpid() % 100000}"
    result = subprocess.run(
        [sys.executable, "-m", "fluidedge", "demo", "--prefix", prefix, "--mec",
         "--duration", "8"],
        capture_output=True, text=True, timeout=scaled(300), check=False,
    )  # fmt: skip
    out = result.stdout + result.stderr
    flat = " ".join(out.split())  # the console wraps long lines
    assert result.returncode == 0, out

    platform = re.search(r"on the platform network (\S+) \(bridge (\S+), ([\d./]+)\)", flat)
    assert platform is not None, out
    network, bridge, subnet = platform.groups()
    assert bridge == f"{prefix}-mp"
    # Both apps were deployed from the example templates through POST /v1/apps ...
    made = dict(
        re.findall(
            r"App demo-(producer|consumer) \(\1, template mec-\1\) deployed in [\d.]+ s: "
            r"appInstanceId ([0-9a-f-]+), instance",
            flat,
        )
    )
    assert set(made) == {"producer", "consumer"}, out
    producer = made["producer"]
    assert "traffic rule demo-web: 198.18.50.1 -> it" in flat
    assert "DNS rule demo-name: greeting.mec.example -> 198.18.50.1" in flat
    # ... and confirmed ready by themselves, over Mp1, from their instances.
    assert "App demo-producer: registered 'greeting' over Mp1, then confirmed ready" in flat
    assert (
        "App demo-consumer: discovered 'greeting' over Mp1, called the producer, then "
        "confirmed ready" in flat
    ), out

    # A UE asking the core's resolver for the producer's name got the edge's answer.
    assert re.search(
        r"UE ue\d+ asked the core's resolver [\d.]+ for greeting\.mec\.example: "
        r"NOERROR 198\.18\.50\.1 \(answered at the edge",
        flat,
    ), out

    # The UEs' HTTP to the service address was offloaded to the producer (its page names it),
    # and every edge answer came from it.
    answered = re.search(
        r"answered by the edge: (\d+) \(by the producer app's instance '\S+': (\d+)\); "
        r"by the PDN: (\d+)",
        flat,
    )
    assert answered is not None, out
    edge, expected, core = (int(n) for n in answered.groups())
    assert expected > 0
    assert edge == expected, "an edge answer from elsewhere"
    assert core > 0
    assert f"│ producer {producer}" in out  # a UE's last edge reply in the live table

    # The consumer discovered the producer's service and kept calling it.
    consumer = re.search(
        r"Consumer app: discovered 'greeting' over Mp1 and called the producer over the "
        r"platform network: (\d+) call\(s\) answered, (\d+) failed; its page: '([^']*)'",
        flat,
    )
    assert consumer is not None, out
    assert int(consumer.group(1)) >= 2  # the first call, then at least one every 2 s
    assert consumer.group(3) == f"consumer got: producer {producer}"
    assert "Mp1 services / calls" in out  # the live table's platform view
    assert re.search(rf"greeting ACTIVE at {re.escape(subnet.rsplit('.', 1)[0])}\.\d+:8080", flat)

    # Everything is gone: the apps (their instances), the daemon, the lab, and on the host the
    # platform network's bridge and security-group tables.
    assert "App demo-producer deleted" in flat
    assert "App demo-consumer deleted" in flat
    checked = re.search(r"Containers checked after teardown: (.*)", out)
    assert checked is not None, out
    assert len(checked.group(1).split()) >= 2, "the apps' containers were checked"
    _assert_nothing_left(prefix, out)
    assert f"none of the host's bridge {bridge}" in flat
    link = subprocess.run(["ip", "link", "show", "dev", bridge], capture_output=True, check=False)
    assert link.returncode != 0, f"bridge {bridge} left"
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    assert network.replace("-", "_") not in tables, tables
    token = re.search(r"log in with the API token in (/\S+)/token", flat)
    assert token is not None, out
    assert not Path(token.group(1)).exists(), "the daemon's work directory was left"
