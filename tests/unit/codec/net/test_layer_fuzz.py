"""Each layer decoder, on any bytes at any offset, returns or raises a CodecError only."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluidedge.codec import pcap
from fluidedge.codec.errors import CodecError
from fluidedge.codec.net import ethernet, inner, ipv4, ipv6, udp

DECODERS: dict[str, Callable[[bytes, int], object]] = {
    "ethernet": ethernet.decode,
    "ipv4": ipv4.decode,
    "ipv6": ipv6.decode,
    "udp": udp.decode,
    "inner": inner.decode,
}


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=200)
@given(data=st.binary(max_size=120), where=st.integers(-4, 130))
def test_layer_decoders_raise_only_codec_errors(name: str, data: bytes, where: int) -> None:
    error: CodecError | None = None
    try:
        DECODERS[name](data, where)
    except CodecError as exc:
        error = exc
    if error is not None:
        assert error.header
        assert isinstance(error.offset, int)


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_pcap_reader_raises_only_codec_errors(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        for _ in pcap.iter_records(data):
            pass
    with contextlib.suppress(CodecError):
        for _ in pcap.iter_records(pcap.build([data[:40]]) + data):
            pass


@settings(max_examples=200)
@given(st.binary(min_size=20, max_size=120))
def test_ipv4_like_inputs(data: bytes) -> None:
    """Bias towards version 4 / 6 first octets, where the walks (options, chain) happen."""
    for first in (0x45, 0x46, 0x4F, 0x60):
        buf = bytes([first]) + data[1:]
        for decode in (ipv4.decode, ipv6.decode, inner.decode):
            with contextlib.suppress(CodecError):
                decode(buf, 0)
