"""Wake the rules' check the moment someone else changes a table of ours.

The part checks every ``check_interval_s`` (1 s) that the networks' tables still hold
(:meth:`fluidedge.secgroups.driver.FirewallDriver.heal`); between two checks, ports whose
tables someone deleted (``nft flush ruleset``, as ``systemctl restart nftables`` runs it) or
emptied (``nft flush table``) are not filtered as declared. The kernel announces every
nftables change to the listeners of the ``NFNLGRP_NFTABLES`` netlink group (what ``nft
monitor`` prints): one netlink socket per namespace with networks of ours, opened inside it and
read by a thread of ours, hears every change, and :class:`NftWatch` calls ``on_loss`` when a
transaction that touched a table of ours was committed by a process that is not one of ours,
so the tables are back within milliseconds. The periodic check stays: it also sees the bridge
knobs set to 0 (no event) and restarts a watcher that failed (at the next
:meth:`NftWatch.watch`).

Each message of a transaction (a table, chain, rule, set, element, object or flowtable added or
deleted) names its table; the transaction ends with ``NFT_MSG_NEWGEN``, which names the process
that committed it. Ours are the ``nft -f`` processes of
:data:`fluidedge.secgroups.nft.OUR_NFT_PIDS`. A daemon in a pid namespace of its own sees
other pids than the kernel's: every change of its own then wakes a check that finds nothing,
which costs one listing and is never wrong. A subscriber that falls behind (``ENOBUFS``: the
kernel dropped announcements) is woken too.

Decoding is pure (:func:`announcements`, netlink(7), ``linux/netfilter/nf_tables.h``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import struct
import threading
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from pathlib import Path

from fluidedge.linux.netlink import find_attribute, frames
from fluidedge.linux.netns import NetnsError, call_in_netns, describe
from fluidedge.secgroups.nft import OUR_NFT_PIDS, TABLE_PREFIX

log = logging.getLogger("fluidedge.secgroups")

NETNS_DIR = Path("/run/netns")

NETLINK_NETFILTER = 12  # linux/netlink.h
NFNLGRP_NFTABLES = 7  # linux/netfilter/nfnetlink.h: the group nftables announces changes to
NFNL_SUBSYS_NFTABLES = 10
# linux/netfilter/nf_tables.h, enum nf_tables_msg_types: the messages naming a table (in
# attribute 1 for each: NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
# NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE), and the commit's
NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE = 0, 2
NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN = 3, 5
NFT_MSG_NEWRULE, NFT_MSG_DELRULE = 6, 8
NFT_MSG_NEWSET, NFT_MSG_DELSET = 9, 11
NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 12, 14
NFT_MSG_NEWGEN = 15
NFT_MSG_NEWOBJ, NFT_MSG_DELOBJ = 18, 20
NFT_MSG_NEWFLOWTABLE, NFT_MSG_DELFLOWTABLE = 22, 24
TABLE_MESSAGES = frozenset(
    {
        NFT_MSG_NEWTABLE,
        NFT_MSG_DELTABLE,
        NFT_MSG_NEWCHAIN,
        NFT_MSG_DELCHAIN,
        NFT_MSG_NEWRULE,
        NFT_MSG_DELRULE,
        NFT_MSG_NEWSET,
        NFT_MSG_DELSET,
        NFT_MSG_NEWSETELEM,
        NFT_MSG_DELSETELEM,
        NFT_MSG_NEWOBJ,
        NFT_MSG_DELOBJ,
        NFT_MSG_NEWFLOWTABLE,
        NFT_MSG_DELFLOWTABLE,
    }
)
NFTA_TABLE = 1  # the table's name in every message of TABLE_MESSAGES (NUL-terminated)
NFTA_GEN_PROC_PID = 2  # enum nft_gen_attributes: the committing process's pid (u32, big-endian)
# struct nfgenmsg (after the netlink header: fluidedge.linux.netlink): family, version, res_id
NFGENMSG = struct.Struct("=BBH")
NLATTR = struct.Struct("=HH")
BE32 = struct.Struct("!I")


@dataclass(frozen=True)
class Touched:
    """A message of a transaction: it changed something in table ``table``."""

    table: str


@dataclass(frozen=True)
class Committed:
    """The end of a transaction, committed by process ``pid`` (None: not said)."""

    pid: int | None


def announcements(data: bytes) -> list[Touched | Committed]:
    """What one ``recv`` from the group announces, in order (messages of other subsystems or
    types are skipped). Pure; raises ValueError naming the offset of a malformed message."""
    out: list[Touched | Committed] = []
    for frame in frames(data):
        if frame.kind >> 8 != NFNL_SUBSYS_NFTABLES:
            continue
        message = frame.kind & 0xFF
        start = frame.body + NFGENMSG.size
        if message == NFT_MSG_NEWGEN:
            raw = find_attribute(data, start, frame.end, NFTA_GEN_PROC_PID)
            out.append(Committed(BE32.unpack(raw[:4])[0] if raw and len(raw) >= 4 else None))
        elif message in TABLE_MESSAGES:
            raw = find_attribute(data, start, frame.end, NFTA_TABLE)
            if raw is not None:
                out.append(Touched(raw.split(b"\0", 1)[0].decode("utf-8", "replace")))
    return out


def ours(name: str) -> bool:
    """Is ``name`` one of our tables' names? Pure."""
    return name.startswith(TABLE_PREFIX)


class Transactions:
    """Follows the announcements across receives: :meth:`feed` says whether a transaction
    that touched a table of ours was committed by someone else. Pure."""

    def __init__(self, own: Container[int]) -> None:
        self._own = own
        self._touched = False

    def feed(self, events: Iterable[Touched | Committed]) -> bool:
        foreign = False
        for event in events:
            if isinstance(event, Touched):
                self._touched = self._touched or ours(event.table)
                continue
            if self._touched and (event.pid is None or event.pid not in self._own):
                foreign = True
            self._touched = False
        return foreign

    def reset(self) -> None:
        """Announcements were dropped: start afresh."""
        self._touched = False


class _Watcher:
    """One subscribed netlink socket in one namespace and the thread that reads it."""

    def __init__(
        self, netns: str | None, on_loss: Callable[[], object], own: Container[int]
    ) -> None:
        self.netns = netns
        self._on_loss = on_loss
        self._transactions = Transactions(own)

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
                    lost = self._transactions.feed(announcements(data))
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    self._transactions.reset()
                    lost = True  # announcements were dropped: any of them may have been ours
                if lost:
                    try:
                        self._on_loss()
                    except Exception as exc:  # the periodic check tries again and logs it
                        log.debug("secgroups: the check woken by nftables failed: %s", exc)
        except (OSError, ValueError) as exc:
            self._failed = True
            log.warning("secgroups: nftables events in %s: %s", describe(self.netns), exc)
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
    thread) when a process other than those of ``own`` changes a table of ours there."""

    def __init__(self, on_loss: Callable[[], object], own: Container[int] = OUR_NFT_PIDS) -> None:
        self._on_loss = on_loss
        self._own = own
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
                    self._watchers[netns] = _Watcher(netns, self._on_loss, self._own)
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
