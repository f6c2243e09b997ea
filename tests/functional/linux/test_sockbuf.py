"""``fluidedge.linux.sockbuf`` on a host whose ``net.core.rmem_max``/``wmem_max`` are Debian's
stock 212,992 bytes (these development machines raise them to 4 MiB, which hid the cap): the
data plane's sockets still get the buffers they ask for. Each test lowers the two sysctls for
its own length and puts back what it found."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.linux import sockbuf
from fluidedge.linux.netns import call_in_netns
from fluidedge.tof.dataplane_common import open_packet_socket
from fluidedge.tof.intercept.sink import FrameReader
from tests.fixtures.netns import scratch_netns

pytestmark = pytest.mark.root

STOCK = sockbuf.STOCK_CAP


@pytest.fixture
def stock_caps() -> Iterator[None]:
    with sockbuf.stock_caps():
        yield


@pytest.mark.usefixtures("stock_caps")
def test_a_plain_option_is_capped_and_ours_is_not() -> None:
    """The cap itself (what a plain SO_RCVBUF gets on a stock host), then ours past it; the
    kernel holds twice the size set (socket(7))."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        assert sockbuf.sizes(plain)[0] == 2 * STOCK
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours:
        sockbuf.size_buffers(ours, receive=4 << 20, send=2 << 20)
        assert sockbuf.sizes(ours) == (8 << 20, 4 << 20)


@pytest.mark.usefixtures("stock_caps")
def test_the_data_planes_sockets_get_their_buffers_on_a_stock_host() -> None:
    """The userspace TOF's S1 sockets (4 MiB each way) and the intercept reader (4 MiB in),
    made as the daemon makes them, in a namespace of the test's own."""
    with scratch_netns("sockbuf") as ns:

        def made() -> list[tuple[int, int]]:
            s1 = open_packet_socket("lo")
            reader = FrameReader.open_socket("lo")
            try:
                return [sockbuf.sizes(s1), sockbuf.sizes(reader)]
            finally:
                s1.close()
                reader.close()

        s1, reader = call_in_netns(ns, made)
    assert s1 == (8 << 20, 8 << 20)
    assert reader[0] == 8 << 20


def test_a_burst_the_capped_socket_drops_is_held_whole() -> None:
    """``bench/tof_socket_buffers.py`` at a small size (it sets the stock sysctls itself): a
    burst of 600 G-PDU-sized frames, unread, into two S1 sockets; the old way's holds about 185
    and drops the rest, ours holds all of them."""
    root = Path(__file__).parents[3]
    result = subprocess.run(
        [sys.executable, str(root / "bench" / "tof_socket_buffers.py"),
         "--frames", "600", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {
        line.split(" (")[0]: [int(n) for n in line.split()[-2:]]
        for line in result.stdout.splitlines()
        if line.startswith(("before", "after"))
    }
    assert rows["after"] == [600, 0], result.stdout
    held, dropped = rows["before"]
    assert held + dropped == 600, result.stdout
    assert dropped > 0, result.stdout
