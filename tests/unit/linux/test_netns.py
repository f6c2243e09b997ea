"""``fluidedge.linux.netns``: entering a namespace, and the errors of not entering one."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from fluidedge.errors import InputError
from fluidedge.linux import netns
from fluidedge.linux.netns import NetnsError, call_in_netns, call_in_netns_at


def test_entering_what_is_not_a_network_namespace_names_it(tmp_path: Path) -> None:
    not_a_namespace = tmp_path / "plain-file"
    not_a_namespace.write_bytes(b"")
    with pytest.raises(OSError, match=r"setns\(.*plain-file\): Invalid argument") as failed:
        call_in_netns_at(str(not_a_namespace), lambda: None)
    assert failed.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError, match=r"setns\(.*absent\)"):
        call_in_netns_at(tmp_path / "absent", lambda: None)


def test_an_error_of_the_function_itself_is_raised_as_it_is() -> None:
    def fails() -> None:
        raise PermissionError(errno.EACCES, "the function's own")

    with pytest.raises(PermissionError, match="the function's own"):
        call_in_netns_at("/proc/self/ns/net", fails)
    assert call_in_netns_at("/proc/self/ns/net", lambda: 42) == 42


def test_a_named_namespace_that_does_not_exist_is_a_netns_error() -> None:
    with pytest.raises(NetnsError, match="does not exist"):
        call_in_netns("fe-no-such-namespace", lambda: None)
    with pytest.raises(InputError, match=r"invalid network namespace name '\.\./etc'"):
        call_in_netns("../etc", lambda: None)


def test_logs_name_a_namespace_or_the_hosts() -> None:
    assert netns.describe(None) == "the host's namespace"
    assert netns.describe("fe-lab") == "namespace fe-lab"
