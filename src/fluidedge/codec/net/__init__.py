"""The network layers around and inside GTP-U: Ethernet/802.1Q, IPv4, IPv6, UDP, the inner
packet's 5-tuple, checksums and inner-address rewriting (NAT). Sans-I/O: bytes in, frozen
dataclasses out; encoders return bytes; NAT edits a ``bytearray`` in place.
"""
