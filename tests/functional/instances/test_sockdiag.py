"""The sock_diag listening probe against the kernel, in a namespace the test creates, checked
against /proc/<pid>/net/tcp{,6} (the slower source it replaces)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fluidedge.instances.readiness import listening
from fluidedge.instances.sockdiag import ListenProbe
from tests.fixtures.netns import scratch_netns
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root

SERVER = """
import socket, sys
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(sys.argv[2])))
s.listen()
sys.stdout.write("up\\n"); sys.stdout.flush()
sys.stdin.read()
"""


@pytest.fixture
def netns() -> Iterator[str]:
    with scratch_netns("sd", loopback=True) as name:
        yield name


@pytest.mark.parametrize("version", ["4", "6"])
def test_probe_sees_a_listener_in_its_namespace_only(netns: str, version: str) -> None:
    with subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", SERVER, version, "8081"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        assert server.stdin is not None
        assert server.stdout is not None
        try:
            assert server.stdout.readline() == "up\n"
            probe = ListenProbe.open_in(f"/run/netns/{netns}")
            here = ListenProbe.open_in("/proc/self/ns/net")
            try:
                assert probe.listening(8081)
                assert not probe.listening(8082)
                assert listening(server.pid, 8081)  # /proc agrees
                assert not here.listening(8081)  # another namespace's socket is not ours
                server.stdin.close()  # the server exits
                assert server.wait(10) == 0
                assert wait_until(lambda: not probe.listening(8081), 5)
            finally:
                here.close()
                probe.close()
        finally:
            if server.poll() is None:
                server.kill()


def test_probe_of_a_namespace_that_is_gone_is_an_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        ListenProbe.open_in(f"/proc/{2**22 + os.getpid()}/ns/net")
