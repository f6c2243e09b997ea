"""GTP-U codec (3GPP TS 29.281), sans-I/O: header, extension headers, messages.

Decode with :func:`decode` (or :func:`decode_header` / :func:`peek` on hot paths), encode with
:func:`encode` or the builders (:func:`encode_gpdu`, :func:`echo_request`...). Decoders raise
only :class:`fluidedge.codec.errors.CodecError` subclasses; encoders raise ``ValueError`` for
field values that do not fit. See ``docs/codec-gtpu.md``.
"""

from fluidedge.codec.gtpu.constants import GTPU_PORT, ExtensionType, IEType, MessageType
from fluidedge.codec.gtpu.extensions import (
    PDU_TYPE_DL,
    PDU_TYPE_UL,
    ExtensionHeader,
    LongPdcpPduNumber,
    PdcpPduNumber,
    PduSessionContainer,
    RanContainer,
    ServiceClassIndicator,
    UdpPortExtension,
    UnknownExtension,
)
from fluidedge.codec.gtpu.header import GtpuHeader, decode_header, encode_header, peek
from fluidedge.codec.gtpu.messages import (
    EchoRequest,
    EchoResponse,
    EndMarker,
    ErrorIndication,
    GenericMessage,
    GPdu,
    GtpuMessage,
    InformationElement,
    SupportedExtensionHeadersNotification,
    decode,
    echo_request,
    echo_response,
    encode,
    encode_gpdu,
    end_marker,
    error_indication,
)

__all__ = [
    "GTPU_PORT",
    "PDU_TYPE_DL",
    "PDU_TYPE_UL",
    "EchoRequest",
    "EchoResponse",
    "EndMarker",
    "ErrorIndication",
    "ExtensionHeader",
    "ExtensionType",
    "GPdu",
    "GenericMessage",
    "GtpuHeader",
    "GtpuMessage",
    "IEType",
    "InformationElement",
    "LongPdcpPduNumber",
    "MessageType",
    "PdcpPduNumber",
    "PduSessionContainer",
    "RanContainer",
    "ServiceClassIndicator",
    "SupportedExtensionHeadersNotification",
    "UdpPortExtension",
    "UnknownExtension",
    "decode",
    "decode_header",
    "echo_request",
    "echo_response",
    "encode",
    "encode_gpdu",
    "encode_header",
    "end_marker",
    "error_indication",
    "peek",
]
