"""Gratuitous ARP from a re-created instance: the network learns its new MAC at once.

A failover re-creates an instance at its old addresses with a new MAC (:mod:`.failover`);
neighbours would keep the old MAC until their ARP entries expire (Linux: tens of seconds).
A gratuitous ARP request (sender = target = the address, broadcast) makes every neighbour
that has an entry for the address update it (Linux overrides on a gratuitous ARP). The frame
is built purely; :func:`announce` sends it from inside the instance's network namespace.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from fluidedge.linux.netns import call_in_netns_of

BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806


def garp_frame(mac: bytes, address: str) -> bytes:
    """An Ethernet frame carrying a gratuitous ARP request for IPv4 ``address`` from ``mac``."""
    if len(mac) != 6:
        raise ValueError(f"not a MAC address: {mac.hex()}")
    ip = ipaddress.IPv4Address(address).packed
    ethernet = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\0" * 6 + ip
    return ethernet + arp


def announce(pid: int, ifname: str, addresses: list[str], count: int = 2) -> int:
    """Send gratuitous ARPs for the IPv4 ``addresses`` (``ip/prefix``) of interface ``ifname``
    of the process ``pid``'s namespace; how many frames went out."""
    ips = [str(ipaddress.ip_interface(a).ip) for a in addresses]
    ips = [ip for ip in ips if ipaddress.ip_address(ip).version == 4]
    if not ips:
        return 0

    def send() -> int:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
            sock.bind((ifname, 0))
            mac = sock.getsockname()[4]
            sent = 0
            for _ in range(count):
                for ip in ips:
                    sock.send(garp_frame(mac, ip))
                    sent += 1
            return sent

    return call_in_netns_of(pid, send)
