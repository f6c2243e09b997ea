"""Errors of the codec package. Every decode failure says which header and which offset.

::

    CodecError (FluidedgeError, InputError)
    ├── TruncatedError        the buffer ends before the header/field does
    ├── MalformedError        a field holds a value the spec forbids (bad version, bad length...)
    ├── UnsupportedError      well-formed but not something we decode (e.g. unknown
    │                         comprehension-required extension header)
    └── EncodeError           an encoder was given a value that does not fit its field
                              (also a ValueError: it is the caller's bug)

Decoders and encoders raise only these (never ``struct.error``, ``IndexError``...), whatever
the input; fuzz tests hold them to it.
"""

from __future__ import annotations

from fluidedge.errors import InputError


class CodecError(InputError):
    """A decode/encode failure at ``header`` and byte ``offset`` of the input buffer."""

    def __init__(self, header: str, offset: int, reason: str) -> None:
        self.header = header
        self.offset = offset
        self.reason = reason
        super().__init__(f"{header} at offset {offset}: {reason}")


class TruncatedError(CodecError):
    """The buffer is shorter than the header or its declared length."""


class MalformedError(CodecError):
    """A field's value violates the specification."""


class UnsupportedError(CodecError):
    """Well-formed input that this codec deliberately does not handle."""


class EncodeError(CodecError, ValueError):
    """A value given to an encoder does not fit its field (a caller's bug, reported clearly).

    Also a :class:`ValueError`, since it is one: the caller passed an out-of-range value.
    """

    def __init__(self, header: str, reason: str) -> None:
        self.header = header
        self.offset = -1
        self.reason = reason
        Exception.__init__(self, f"cannot encode {header}: {reason}")
