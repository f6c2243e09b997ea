"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) from a re-created
instance: the network learns its new MAC at once.

A failover re-creates an instance at its old addresses with a new MAC (:mod:`.failover`);
neighbours would keep the old MAC until their ARP entries expire (Linux: tens of seconds).
A gratuitous ARP request (sender = target = the address, broadcast) makes every neighbour
that has an entry for the address update it (Linux overrides on a gratuitous ARP). For IPv6
the same job is an unsolicited neighbour advertisement (RFC 4861 §7.2.6) to all-nodes with
the Override flag and the target link-layer address option: a neighbour that has an entry
takes the new MAC (and marks it STALE, so it is confirmed on next use). The frames are built
purely; :func:`announce` sends them from inside the instance's network namespace.
"""

from __future__ import annotations

import ipaddress
import struct
import time

from fluidedge.codec.net.checksum import transport_checksum
from fluidedge.linux.netns import call_in_netns_of
from fluidedge.linux.packet import packet_socket

BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ALL_NODES = ipaddress.IPv6Address("ff02::1").packed
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ICMPV6 = 58
NEIGHBOR_ADVERTISEMENT = 136
OVERRIDE = 0x20000000


def garp_frame(mac: bytes, address: str) -> bytes:
    """An Ethernet frame carrying a gratuitous ARP request for IPv4 ``address`` from ``mac``."""
    if len(mac) != 6:
        raise ValueError(f"not a MAC address: {mac.hex()}")
    ip = ipaddress.IPv4Address(address).packed
    ethernet = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\0" * 6 + ip
    return ethernet + arp


def unsolicited_na_frame(mac: bytes, address: str) -> bytes:
    """An Ethernet frame carrying an unsolicited neighbour advertisement for IPv6 ``address``
    from ``mac``: to all-nodes, Override set, Solicited and Router clear, hop limit 255, with
    the target link-layer address option."""
    if len(mac) != 6:
        raise ValueError(f"not a MAC address: {mac.hex()}")
    ip = ipaddress.IPv6Address(address).packed
    option = struct.pack("!BB", 2, 1) + mac  # target link-layer address, 8 octets
    body = struct.pack("!BBHI", NEIGHBOR_ADVERTISEMENT, 0, 0, OVERRIDE) + ip + option
    csum = transport_checksum(ip, ALL_NODES, ICMPV6, body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    header = struct.pack("!IHBB", 6 << 28, len(body), ICMPV6, 255) + ip + ALL_NODES
    return ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6) + header + body


def frames_for(mac: bytes, addresses: list[str]) -> list[bytes]:
    """One announcement per address (``ip/prefix``): ARP for IPv4, NA for IPv6 (link-local
    addresses too: a neighbour may have them cached)."""
    out = []
    for text in addresses:
        ip = ipaddress.ip_interface(text).ip
        if ip.version == 4:
            out.append(garp_frame(mac, str(ip)))
        else:
            out.append(unsolicited_na_frame(mac, str(ip)))
    return out


def announce(
    pid: int, ifname: str, addresses: list[str], count: int = 2, interval: float = 0.0
) -> int:
    """Send a gratuitous ARP (IPv4) or an unsolicited neighbour advertisement (IPv6) for each
    of the ``addresses`` (``ip/prefix``) of interface ``ifname`` of the process ``pid``'s
    namespace, ``count`` rounds ``interval`` s apart; how many frames went out."""
    if not addresses:
        return 0

    def send() -> int:
        with packet_socket(ifname, 0) as sock:  # sends only: hears nothing
            frames = frames_for(sock.getsockname()[4], addresses)
            sent = 0
            for round_ in range(count):
                if round_ and interval > 0:
                    time.sleep(interval)
                for frame in frames:
                    sock.send(frame)
                    sent += 1
            return sent

    return call_in_netns_of(pid, send)
