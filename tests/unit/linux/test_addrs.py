"""``fluidedge.linux.addrs``: ``ip -j addr show`` parsed once, for every part that reads it."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.linux import addrs

# What iproute2 6.1 (Debian 12) prints for a bridge with two addresses and a veth without any.
LISTING = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"},
        {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host"},
    ]},
    {"ifindex": 5, "ifname": "br-mec", "flags": ["BROADCAST", "MULTICAST", "UP"], "addr_info": [
        {"family": "inet", "local": "198.18.0.1", "prefixlen": 24, "broadcast": "198.18.0.255"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
    ]},
    {"ifindex": 6, "ifname": "apps0", "flags": ["BROADCAST", "MULTICAST"], "addr_info": []},
])  # fmt: skip


def test_devices_their_flags_and_addresses() -> None:
    found = addrs.parse(LISTING)
    assert sorted(found) == ["apps0", "br-mec", "lo"]
    br = found["br-mec"]
    assert br.up
    assert not found["apps0"].up
    assert br.has(ipaddress.ip_interface("198.18.0.1/24"))
    assert not br.has(ipaddress.ip_interface("198.18.0.1/32"))  # another prefix: not it
    assert not br.has(ipaddress.ip_interface("198.18.0.2/24"))
    assert [str(a) for a in br.of_version(4)] == ["198.18.0.1/24"]
    assert [str(a) for a in br.of_version(6)] == ["fe80::1/64"]
    assert found["apps0"].addresses == ()


def test_entries_without_a_usable_address_are_left_out() -> None:
    text = json.dumps([
        {"ifname": "a", "addr_info": [
            {"family": "inet"},  # no local
            {"family": "inet", "local": "10.0.0.1"},  # no prefix length
            {"family": "inet", "local": "10.0.0.1", "prefixlen": True},  # not a number
            {"family": "inet", "local": "not an address", "prefixlen": 24},
            "junk",
            {"family": "inet", "local": "10.0.0.2", "prefixlen": 8},
        ], "flags": ["UP", 3]},
        {"flags": ["UP"]},  # no name: nothing to say about it
        {"ifname": "b", "addr_info": "junk", "flags": "junk"},
    ])  # fmt: skip
    found = addrs.parse(text)
    assert sorted(found) == ["a", "b"]
    assert [str(a) for a in found["a"].addresses] == ["10.0.0.2/8"]
    assert found["a"].up
    assert found["b"].addresses == ()
    assert not found["b"].up


def test_no_output_is_no_device() -> None:
    assert addrs.parse("") == {} == addrs.parse("[]")


@pytest.mark.parametrize(
    ("text", "says"),
    [("{", "not JSON"), ('{"ifname": "a"}', "a dict, not a list"), ("[1]", "entry 0 is not")],
)
def test_a_listing_that_is_not_one_is_a_value_error_saying_why(text: str, says: str) -> None:
    with pytest.raises(addrs.AddressListingError, match=says):
        addrs.parse(text)
    assert issubclass(addrs.AddressListingError, ValueError)  # what callers already catch


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_json_parses_or_says_why(value: object) -> None:
    try:
        found = addrs.parse(json.dumps(value))
    except addrs.AddressListingError:
        return
    assert all(isinstance(d, addrs.Device) for d in found.values())


def test_the_command() -> None:
    assert addrs.argv() == ["ip", "-j", "addr", "show"]
    assert addrs.argv("ns1", "br0", version=4) == [
        "ip", "-n", "ns1", "-j", "-4", "addr", "show", "dev", "br0",
    ]  # fmt: skip
