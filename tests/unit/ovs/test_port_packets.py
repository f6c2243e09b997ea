"""``Ofctl.port_packets`` reads ``ovs-ofctl dump-ports`` as OVS prints it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.ofctl import Ofctl

DUMP = """OFPST_PORT reply (OF1.4) (xid=0x2): 3 ports
  port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=7, bytes=578, drop=0, errs=0, coll=0
           duration=12.5s
  port  3: rx pkts=41, bytes=4018, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=20, bytes=1960, drop=0, errs=0, coll=0
           duration=12.4s
  port 12: rx pkts=20, bytes=1960, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=0, bytes=0, drop=0, errs=0, coll=0
           duration=12.3s
"""


def test_port_packets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ofctl = Ofctl(OvsDaemons(tmp_path), "br0")
    monkeypatch.setattr(ofctl, "_run", lambda *args, **kw: DUMP)
    assert ofctl.port_packets() == {3: (41, 20), 12: (20, 0)}
