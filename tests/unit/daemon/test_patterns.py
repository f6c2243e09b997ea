"""``fluidedge.core.patterns``: what the address patterns match, ``ipaddress`` reads, and
every text ``ipaddress`` writes (compressed or exploded) is matched; the same under the
engine pydantic uses (its Rust regex, through a strict model field)."""

from __future__ import annotations

import ipaddress
import re

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from fluidedge.core.patterns import IP_ADDRESS, IP_PREFIX, IPV4, IPV6, anchored

ADDRESS = re.compile(IP_ADDRESS)
PREFIX = re.compile(IP_PREFIX)


class _Prefix(BaseModel):
    value: str = Field(pattern=IP_PREFIX)


def _rust_accepts(text: str) -> bool:
    try:
        _Prefix(value=text)
    except ValidationError:
        return False
    return True


@given(st.ip_addresses(), st.integers(min_value=0, max_value=128))
def test_every_written_address_and_prefix_is_matched(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, length: int
) -> None:
    texts = [str(address), address.exploded]
    if address.version == 6:
        texts.append(address.exploded.upper())
    for text in texts:
        assert ADDRESS.fullmatch(text), text
        assert PREFIX.fullmatch(text), text
    network = ipaddress.ip_network(f"{address}/{min(length, address.max_prefixlen)}", strict=False)
    assert PREFIX.fullmatch(str(network)), network
    assert _rust_accepts(str(network))


@given(st.from_regex(PREFIX, fullmatch=True))
def test_what_the_prefix_pattern_matches_ipaddress_reads(text: str) -> None:
    ipaddress.ip_network(text, strict=False)
    assert _rust_accepts(text)


@given(st.from_regex(ADDRESS, fullmatch=True))
def test_what_the_address_pattern_matches_is_an_address(text: str) -> None:
    ipaddress.ip_address(text)


def test_refused_shapes() -> None:
    for text in ("", "1.2.3", "01.2.3.4", "1.2.3.4/33", "1.2.3.4/08", "256.0.0.1", ":::",
                 "1::2::3", "fe80::1%eth0", "1.2.3.4/255.0.0.0", "1:2:3:4:5:6:7:8:9", "g::1",
                 "::1/129", " ::1"):  # fmt: skip
        assert not PREFIX.fullmatch(text), text
        assert not _rust_accepts(text), text
    assert re.fullmatch(anchored(IPV4), "10.0.0.1")
    assert not re.fullmatch(anchored(IPV4), "::1")
    assert re.fullmatch(anchored(IPV6), "::ffff:10.0.0.1")
