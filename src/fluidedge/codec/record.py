"""One captured packet, whatever file held it: what the pcap and pcapng readers both yield.

Its own module so that :mod:`fluidedge.codec.pcap` (which dispatches to the pcapng reader) and
:mod:`fluidedge.codec.pcapng` both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

LINKTYPE_ETHERNET = 1
PCAPNG_MAGIC = 0x0A0D0D0A
"""The first four octets of a pcapng file (its Section Header Block type)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One captured packet: timestamp in nanoseconds, the bytes, the on-wire length, and the
    link type of the interface it was captured on."""

    timestamp_ns: int
    data: memoryview | bytes
    original_length: int
    linktype: int = LINKTYPE_ETHERNET
