"""Forget a network's neighbour entry of an address a new instance now holds.

WHY: addresses come back. An operator deletes an instance and creates another at the same
address, a pool hands a released address to the next on-demand instance, a re-created
instance gets a new veth and so a new MAC. The network's namespace (the bridge's side: the
gateway, where the TOF's apps interface routes into the bridge) still holds a REACHABLE
neighbour entry with the *previous* holder's MAC for a while (15-45 s, longer while traffic
keeps confirming it): packets to the new instance go to a MAC nobody has (the bridge floods
them, the new instance drops them as not its own) until the entry ages out. Deleting the entry
when the address is assigned makes the kernel resolve it afresh (one ARP/ND exchange). One
``RTM_DELNEIGH`` over a netlink socket kept per network (created inside its namespace):
microseconds, no process, on every creation path (warm, cold, on-demand).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import threading

from fluidedge.instances.nl import NetlinkSocket, decode_reply
from fluidedge.linux.netlink import NLM_F_ACK, NLM_F_REQUEST, NetlinkDecodeError, attr, nlmsg
from fluidedge.linux.netns import call_in_netns_at

RTM_DELNEIGH = 29
NDA_DST = 1
_NDMSG = struct.Struct("=BBHiHBB")


def encode_del_neigh(seq: int, ifindex: int, address: str) -> bytes:
    """RTM_DELNEIGH for ``address`` on link ``ifindex`` (rtnetlink(7), struct ndmsg)."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    body = _NDMSG.pack(family, 0, 0, ifindex, 0, 0, 0) + attr(NDA_DST, ip.packed)
    return nlmsg(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, seq, body)


class NeighbourFlusher:
    """Per (netns, bridge): one netlink socket and the bridge's ifindex, opened on first use."""

    def __init__(self) -> None:
        self._links: dict[tuple[str | None, str], tuple[socket.socket, int]] = {}
        self._lock = threading.Lock()
        self._seq = 0

    def _link(self, netns: str | None, bridge: str) -> tuple[socket.socket, int]:
        key = (netns, bridge)
        found = self._links.get(key)
        if found is None:
            path = f"/run/netns/{netns}" if netns else "/proc/self/ns/net"
            lookup = NetlinkSocket.open_in(path)
            try:
                index = lookup.link_index(bridge)
            finally:
                lookup.close()

            def make() -> socket.socket:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                sock.bind((0, 0))
                return sock

            found = (call_in_netns_at(path, make), index)
            self._links[key] = found
        return found

    def flush(self, netns: str | None, bridge: str, address: str) -> bool:
        """Delete the entry; False when there was none. Raises OSError on other failures
        (``ENODEV`` when the bridge is gone; a bridge re-created since its index was cached
        is looked up again)."""
        with self._lock:
            try:
                return self._flush(netns, bridge, address)
            except OSError as exc:
                if exc.errno != errno.ENODEV:
                    raise
                self._forget_link(netns, bridge)  # the cached index may be a deleted bridge's
                return self._flush(netns, bridge, address)

    def _forget_link(self, netns: str | None, bridge: str) -> None:
        found = self._links.pop((netns, bridge), None)
        if found is not None:
            found[0].close()

    def _flush(self, netns: str | None, bridge: str, address: str) -> bool:
        sock, index = self._link(netns, bridge)
        self._seq += 1
        seq = self._seq
        sock.send(encode_del_neigh(seq, index, address))
        while True:
            try:
                reply = decode_reply(sock.recv(65536), seq)
            except NetlinkDecodeError as exc:
                raise OSError(errno.EBADMSG, f"RTM_DELNEIGH {address}: {exc}") from exc
            if reply is None:
                continue
            code, _ = reply
            if code in (errno.ENOENT, errno.ESRCH):
                return False
            if code:
                raise OSError(code, f"RTM_DELNEIGH {address}: {errno.errorcode.get(code)}")
            return True

    def close(self) -> None:
        with self._lock:
            for sock, _ in self._links.values():
                sock.close()
            self._links.clear()
