"""Encoders report out-of-range values as codec errors (one exception base for the codec)."""

from __future__ import annotations

import pytest

from fluidedge.codec import gtpu
from fluidedge.codec.errors import CodecError, EncodeError


def test_out_of_range_teid_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="cannot encode GTP-U") as info:
        gtpu.encode_gpdu(1 << 32, b"x")
    assert isinstance(info.value, CodecError)
    assert isinstance(info.value, ValueError)


def test_recovery_out_of_range_names_the_field() -> None:
    request = gtpu.decode(gtpu.echo_request(7))
    assert isinstance(request, gtpu.EchoRequest)
    with pytest.raises(CodecError, match="recovery"):
        gtpu.encode(gtpu.EchoResponse(header=request.header, recovery=256))
