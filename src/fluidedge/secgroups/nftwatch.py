"""Wake the rules' check the moment a table of ours is deleted from outside.

The part checks every ``check_interval_s`` (1 s) that the networks' tables are still in the
kernel (:meth:`fluidedge.secgroups.driver.FirewallDriver.heal`); between two checks, ports whose
tables someone deleted (``nft flush ruleset``, as ``systemctl restart nftables`` runs it) are
unfiltered. The kernel announces every nftables change to the listeners of the
``NFNLGRP_NFTABLES`` netlink group (what ``nft monitor`` prints): one netlink socket per
namespace with networks of ours, opened inside it and read by a thread of ours, hears a table's
deletion, and :class:`NftWatch` calls ``on_loss``, so the tables are back within milliseconds.
The periodic check stays: it also sees the bridge knobs set to 0 (no event) and restarts a
watcher that failed (at the next :meth:`NftWatch.watch`).

Our own changes delete a table of ours only when its network goes (its binding, and so its
watcher's reason, goes with it); a spurious wake-up costs one check that finds nothing. A
subscriber that falls behind (``ENOBUFS``: the kernel dropped announcements) is woken too.

Decoding is pure (:func:`deleted_tables`, netlink(7), ``linux/netfilter/nf_tables.h``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from fluidedge.linux.netns import NetnsError, call_in_netns
from fluidedge.secgroups.nft import TABLE_PREFIX

log = logging.getLogger("fluidedge.secgroups")

NETNS_DIR = Path("/run/netns")

NETLINK_NETFILTER = 12  # linux/netlink.h
NFNLGRP_NFTABLES = 7  # linux/netfilter/nfnetlink.h: the group nftables announces changes to
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_DELTABLE = 2  # linux/netfilter/nf_tables.h, enum nf_tables_msg_types
NFTA_TABLE_NAME = 1  # enum nft_table_attributes
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
# struct nlmsghdr: length, type, flags, seq, pid; struct nfgenmsg: family, version, res_id;
# struct nlattr: length, type (then the value, padded to 4 bytes).
NLMSG_HDR = struct.Struct("=IHHII")
NFGENMSG = struct.Struct("=BBH")
NLATTR = struct.Struct("=HH")
DELTABLE = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE


def deleted_tables(data: bytes) -> list[str]:
    """The names of the tables whose deletion one ``recv`` from the group announces (other
    messages are skipped). Pure; raises ValueError naming the offset of a malformed message."""
    names = []
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size or offset + length > len(data):
            raise ValueError(f"nftables event: bad message length {length} at offset {offset}")
        if kind == DELTABLE:
            names += _table_name(data[offset + NLMSG_HDR.size + NFGENMSG.size : offset + length])
        offset += (length + 3) & ~3
    return names


def _table_name(attributes: bytes) -> list[str]:
    at = 0
    while at + NLATTR.size <= len(attributes):
        size, kind = NLATTR.unpack_from(attributes, at)
        if size < NLATTR.size or at + size > len(attributes):
            raise ValueError(f"nftables event: bad attribute length {size} at offset {at}")
        if kind & NLA_TYPE_MASK == NFTA_TABLE_NAME:
            value = attributes[at + NLATTR.size : at + size]
            return [value.split(b"\0", 1)[0].decode("utf-8", "replace")]
        at += (size + 3) & ~3
    return []


def ours(name: str) -> bool:
    """Is ``name`` one of our tables' names? Pure."""
    return name.startswith(TABLE_PREFIX)


class _Watcher:
    """One subscribed netlink socket in one namespace and the thread that reads it."""

    def __init__(self, netns: str | None, on_loss: Callable[[], object]) -> None:
        self.netns = netns
        self._on_loss = on_loss

        def subscribe() -> socket.socket:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            try:
                sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
            except OSError:
                sock.close()
                raise
            return sock

        self._sock = call_in_netns(netns, subscribe)  # bound to that namespace for good
        self._wake_r, self._wake_w = socket.socketpair()
        self._failed = False
        self.thread = threading.Thread(
            target=self._read, name=f"nft-events-{netns or 'host'}", daemon=True
        )
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._sock, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    data = self._sock.recv(65536)
                    lost = any(ours(name) for name in deleted_tables(data))
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    lost = True  # announcements were dropped: any of them may have been ours
                if lost:
                    try:
                        self._on_loss()
                    except Exception as exc:  # the periodic check tries again and logs it
                        log.debug("secgroups: the check woken by nftables failed: %s", exc)
        except (OSError, ValueError) as exc:
            self._failed = True
            log.warning("secgroups: nftables events in %s: %s", self.netns or "the host", exc)
        finally:
            for sock in (self._sock, self._wake_r):
                sock.close()

    def alive(self) -> bool:
        return self.thread.is_alive() and not self._failed

    def stop(self, *, join: bool = True) -> None:
        """End the reader (``join``: wait for it; not from :meth:`NftWatch.watch`, whose caller
        may hold the lock a woken check waits for)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._wake_w.close()
        if join:
            self.thread.join(timeout=5)


class NftWatch:
    """A subscription per namespace of :meth:`watch`, calling ``on_loss`` (from a reader
    thread) when a table of ours is deleted there."""

    def __init__(self, on_loss: Callable[[], object]) -> None:
        self._on_loss = on_loss
        self._lock = threading.Lock()
        self._watchers: dict[str | None, _Watcher] = {}

    def watch(self, namespaces: Iterable[str | None]) -> None:
        """Watch exactly ``namespaces`` (a named one that no longer exists is not: a socket
        inside would keep it alive); a watcher that failed is started again."""
        wanted = {ns for ns in namespaces if ns is None or (NETNS_DIR / ns).exists()}
        with self._lock:
            for netns in list(self._watchers):
                watcher = self._watchers[netns]
                if netns not in wanted or not watcher.alive():
                    del self._watchers[netns]
                    watcher.stop(join=False)
            for netns in wanted - set(self._watchers):
                try:
                    self._watchers[netns] = _Watcher(netns, self._on_loss)
                except (OSError, NetnsError) as exc:  # the periodic check still runs
                    log.warning("secgroups: cannot watch nftables in %s: %s", netns, exc)

    def watched(self) -> set[str | None]:
        with self._lock:
            return {ns for ns, w in self._watchers.items() if w.alive()}

    def close(self) -> None:
        with self._lock:
            watchers, self._watchers = list(self._watchers.values()), {}
        for watcher in watchers:
            watcher.stop()
