"""Sans-I/O protocol codecs: bytes in, frozen dataclasses out."""

# The public face: the modules other packages may import from (tests/unit/test_layers.py).
__all__ = [
    "errors",
    "gtpc",
    "gtpu",
    "net",
    "pcap",
    "pcapng",
    "pcapstream",
    "record",
    "stack",
]
