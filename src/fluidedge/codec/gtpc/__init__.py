"""GTPv1-C codec (3GPP TS 29.060), sans-I/O: the header and the PDP context messages.

The TOF reads the Gn/Gp control plane where it crosses its wire (UDP 2123) to learn and forget
bearers at once: Create/Update/Delete PDP Context Request/Response carry the TEIDs, the End
User Address, the GSN addresses, the NSAPI and the Cause. Decode with :func:`decode`, encode
with :func:`encode`; decoders raise only :class:`fluidedge.codec.errors.CodecError`
subclasses. Field and IE tables with their TS 29.060 sections: :mod:`.layouts`.
"""

from fluidedge.codec.gtpc.layouts import (
    GTPC_PORT,
    HEADER,
    IE_TABLE,
    OPTIONAL,
    IESpec,
    IEType,
    MessageType,
)
from fluidedge.codec.gtpc.messages import (
    EndUserAddress,
    GtpcMessage,
    InformationElement,
    accepted,
    decode,
    encode,
    end_user_address,
)

__all__ = [
    "GTPC_PORT",
    "HEADER",
    "IE_TABLE",
    "OPTIONAL",
    "EndUserAddress",
    "GtpcMessage",
    "IESpec",
    "IEType",
    "InformationElement",
    "MessageType",
    "accepted",
    "decode",
    "encode",
    "end_user_address",
]
