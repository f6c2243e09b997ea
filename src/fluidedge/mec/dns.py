"""The platform's DNS responder: the active DNS rules' names, everything else upstream.

MEC 011's DNS rules (``DnsRule``: a domain name, an address, a TTL, ACTIVE or INACTIVE) are the
platform's to serve (seed §4.4.1.2: DNS records to the DNS server). The ACTIVE rules of READY
apps make a table of names (:func:`records`); the platform swaps it into the responder after
every change, before the Mp1 answer, so an activation or a deactivation is in the next answer.

- :func:`respond` is pure (sans-I/O): a query's wire bytes and the table give the answer's
  bytes, or None when the name is not the platform's (the query then goes upstream). A name of
  the table gets its A or AAAA records, authoritative; another type of such a name is an empty
  NOERROR answer (NODATA), never forwarded, so the core never answers for a name the edge owns.
- :class:`DnsResponder` is the I/O edge: a UDP and a TCP server on the daemon's event loop,
  on the same address and port. A query for another name is relayed unchanged to the first
  upstream resolver that answers (each try on its own socket, bounded by a timeout, from the
  daemon's namespace or ``upstream_netns``, e.g. the TOF's, where the lab routes to the PDN's
  resolver), over the transport it came on; when none does, the client gets SERVFAIL.

WHY TCP as well (RFC 7766: a DNS server must serve TCP): an upstream answer too large for a
datagram comes back truncated (TC), and the client asks again over TCP. The UEs' queries to the
core's resolver all come here once the TOF offloads that address, so without TCP such a name
would not resolve at all. A TCP connection carries 2-byte-length-prefixed messages, answered in
order; it is closed after :data:`TCP_IDLE` s of silence, and at most :data:`TCP_CLIENTS` are
open at once (more are closed at once: a client retries).

The wire format is dnspython's (``dns.message``): a maintained, typed library, which parses
what a resolver sends (EDNS, compression, several questions) rather than a subset of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from fluidedge.errors import FluidedgeError
from fluidedge.linux.netns import NetnsError, call_in_netns, describe
from fluidedge.mec.models import DnsRule, IpAddressType, RuleState

log = logging.getLogger("fluidedge.mec")

Address = tuple[str, int]
DEFAULT_TTL = 60
TCP_IDLE = 10.0  # s a TCP client may stay silent before its connection is closed
TCP_CLIENTS = 256  # TCP connections served at once


@dataclass(frozen=True)
class Record:
    """A name's addresses (one list per type) and TTL."""

    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    ttl: int = DEFAULT_TTL


Records = dict[str, Record]  # lower-case name without the final dot -> its record


def key(name: str) -> str:
    return name.lower().rstrip(".")


def records(rules: Iterable[DnsRule]) -> Records:
    """The table the ACTIVE ``rules`` make (several rules of one name add their addresses;
    the name's TTL is the smallest one given)."""
    out: dict[str, tuple[list[str], list[str], int | None]] = {}
    for rule in rules:
        if rule.state is not RuleState.ACTIVE:
            continue
        a, aaaa, ttl = out.setdefault(key(rule.domain_name), ([], [], None))
        address = str(ipaddress.ip_address(rule.ip_address))
        target = a if rule.ip_address_type is IpAddressType.IP_V4 else aaaa
        if address not in target:
            target.append(address)
        if rule.ttl is not None:
            ttl = rule.ttl if ttl is None else min(ttl, rule.ttl)
        out[key(rule.domain_name)] = (a, aaaa, ttl)
    return {
        name: Record(tuple(a), tuple(aaaa), DEFAULT_TTL if ttl is None else ttl)
        for name, (a, aaaa, ttl) in out.items()
    }


def respond(query: bytes, table: Records) -> bytes | None:
    """The answer to ``query`` from ``table``; None: not the platform's name (forward it).

    A query that does not parse, or that is not a standard query of one question, is None
    too: the upstream resolver judges it."""
    try:
        message = dns.message.from_wire(query)
    except dns.exception.DNSException:
        return None
    if message.opcode() != 0 or len(message.question) != 1 or message.flags & dns.flags.QR:
        return None
    question = message.question[0]
    record = table.get(key(question.name.to_text()))
    if record is None or question.rdclass != dns.rdataclass.IN:
        return None
    response = dns.message.make_response(message)
    response.flags |= dns.flags.AA
    addresses = {dns.rdatatype.A: record.a, dns.rdatatype.AAAA: record.aaaa}
    wanted = [question.rdtype] if question.rdtype in addresses else []
    if question.rdtype == dns.rdatatype.ANY:
        wanted = [dns.rdatatype.A, dns.rdatatype.AAAA]
    for rdtype in wanted:
        if addresses[rdtype]:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, record.ttl, dns.rdataclass.IN, rdtype, list(addresses[rdtype])
                )
            )
    wire: bytes = response.to_wire()
    return wire


def servfail(query: bytes) -> bytes | None:
    """SERVFAIL for ``query`` (None if it does not parse)."""
    try:
        message = dns.message.from_wire(query)
    except dns.exception.DNSException:
        return None
    response = dns.message.make_response(message)
    response.set_rcode(dns.rcode.SERVFAIL)
    wire: bytes = response.to_wire()
    return wire


@dataclass
class Counters:
    answered: int = 0  # from the table
    forwarded: int = 0  # relayed upstream and answered
    failed: int = 0  # no upstream answered: SERVFAIL
    dropped: int = 0  # unreadable
    tcp_queries: int = 0  # of the above, those that came over TCP
    tcp_refused: int = 0  # connections closed at once: TCP_CLIENTS were open
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.done = done

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


SPARE_SOCKETS = 16  # made in the upstream namespace at a time (one thread switch for all)


def _sockets(count: int) -> list[socket.socket]:
    made = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    for sock in made:
        sock.setblocking(False)
    return made


class UpstreamSockets:
    """Unconnected UDP sockets made in network namespace ``netns``, a batch at a time: making
    one there means a thread switch into the namespace (~0.4 ms), a batch shares it. Each
    socket serves one try and is closed (a late answer never meets the next query)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.spare: list[socket.socket] = []

    async def take(self) -> socket.socket:
        if not self.spare:
            made = await asyncio.to_thread(
                call_in_netns, self.netns, functools.partial(_sockets, SPARE_SOCKETS)
            )
            self.spare.extend(made)
        return self.spare.pop()

    def close(self) -> None:
        while self.spare:
            self.spare.pop().close()


async def forward(
    query: bytes,
    upstreams: Sequence[Address],
    timeout: float,
    sockets: UpstreamSockets | None = None,
) -> bytes | None:
    """The first upstream answer to ``query`` (tried in order, ``timeout`` s each), each try
    from a socket of ``sockets`` (None: a new one of the daemon's namespace)."""
    loop = asyncio.get_running_loop()
    for upstream in upstreams:
        done: asyncio.Future[bytes] = loop.create_future()
        try:
            if sockets is None:
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_Relay, done), remote_addr=upstream
                )
            else:
                sock = await sockets.take()
                try:
                    sock.connect(upstream)  # the socket keeps its namespace
                    transport, _ = await loop.create_datagram_endpoint(
                        functools.partial(_Relay, done), sock=sock
                    )
                except OSError:
                    sock.close()
                    raise
        except (OSError, FluidedgeError) as exc:
            _upstream_failed(upstream, "udp", exc)
            continue
        try:
            transport.sendto(query)
            answer = await asyncio.wait_for(done, timeout)
        except (TimeoutError, OSError):
            continue
        finally:
            transport.close()
        if answer[:2] == query[:2]:  # the same transaction
            return answer
    return None


def _upstream_failed(upstream: Address, transport: str, exc: Exception) -> None:
    """No socket toward ``upstream`` (its namespace is gone, no route): logged, next one."""
    log.warning(
        "dns upstream %s:%d over %s: %s", *upstream, transport, exc,
        extra={"part": "mec", "event": "dns_upstream_failed"},
    )  # fmt: skip


def _tcp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


async def forward_tcp(
    query: bytes, upstreams: Sequence[Address], timeout: float, netns: str | None = None
) -> bytes | None:
    """The first upstream answer to ``query`` over TCP (tried in order, ``timeout`` s each for
    connecting, asking and reading), from a socket of network namespace ``netns``."""
    for upstream in upstreams:
        try:
            sock = await asyncio.to_thread(call_in_netns, netns, _tcp_socket)
        except (OSError, FluidedgeError) as exc:
            _upstream_failed(upstream, "tcp", exc)
            continue
        try:
            answer = await asyncio.wait_for(_ask_tcp(sock, query, upstream), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            continue
        finally:
            sock.close()
        if answer[:2] == query[:2]:
            return answer
    return None


async def _ask_tcp(sock: socket.socket, query: bytes, upstream: Address) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, upstream)
    await loop.sock_sendall(sock, len(query).to_bytes(2, "big") + query)
    head = await _recv_exactly(sock, 2)
    return await _recv_exactly(sock, int.from_bytes(head, "big"))


async def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise asyncio.IncompleteReadError(data, size)
        data += chunk
    return data


class DnsResponder(asyncio.DatagramProtocol):
    """The UDP server (see the module docstring); :attr:`table` is swapped whole."""

    def __init__(
        self, upstreams: Sequence[Address], timeout: float = 2.0, upstream_netns: str | None = None
    ) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.upstream_netns = upstream_netns
        self._sockets: UpstreamSockets | None = None
        self.table: Records = {}
        self.counters = Counters()
        self.transport: asyncio.DatagramTransport | None = None
        self.tcp_server: asyncio.Server | None = None
        self._tcp_clients: set[asyncio.StreamWriter] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's UDP transport has DatagramTransport's methods without being a subclass
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        answer = respond(data, self.table)
        if answer is not None:
            self.counters.answered += 1
            self._send(answer, addr)
            return
        task = asyncio.get_running_loop().create_task(self._forward(data, addr))
        self.counters.tasks.add(task)
        task.add_done_callback(self.counters.tasks.discard)

    async def _forward(self, query: bytes, addr: Address) -> None:
        answer = await self._answer(query, tcp=False)
        if answer is not None:
            self._send(answer, addr)

    async def serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One TCP client: length-prefixed queries, answered in order, until it closes, is
        silent for :data:`TCP_IDLE` s or sends something that is not a query."""
        if len(self._tcp_clients) >= TCP_CLIENTS:
            self.counters.tcp_refused += 1
            writer.close()
            return
        self._tcp_clients.add(writer)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                query = await asyncio.wait_for(
                    reader.readexactly(int.from_bytes(head, "big")), TCP_IDLE
                )
                self.counters.tcp_queries += 1
                answer = await self._answer(query, tcp=True)
                if answer is None:
                    return  # unreadable: nothing to answer, and the stream is not trusted
                writer.write(len(answer).to_bytes(2, "big") + answer)
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            return
        finally:
            self._tcp_clients.discard(writer)
            writer.close()

    async def _answer(self, query: bytes, tcp: bool) -> bytes | None:
        """The answer to ``query`` (the table's, an upstream's, or SERVFAIL), counted; None
        for what is not a query."""
        answer = respond(query, self.table)
        if answer is not None:
            self.counters.answered += 1
            return answer
        if not self.upstreams:
            answer = None
        elif tcp:
            answer = await forward_tcp(query, self.upstreams, self.timeout, self.upstream_netns)
        else:
            answer = await forward(query, self.upstreams, self.timeout, self._upstream_sockets())
        if answer is not None:
            self.counters.forwarded += 1
            return answer
        failed = servfail(query)
        if failed is None:
            self.counters.dropped += 1
            return None
        self.counters.failed += 1
        return failed

    def _send(self, data: bytes, addr: Address) -> None:
        if self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.sendto(data, addr)

    def _upstream_sockets(self) -> UpstreamSockets | None:
        if self.upstream_netns is None:
            return None
        if self._sockets is None or self._sockets.netns != self.upstream_netns:
            if self._sockets is not None:
                self._sockets.close()
            self._sockets = UpstreamSockets(self.upstream_netns)
        return self._sockets

    def close(self) -> None:
        if self._sockets is not None:
            self._sockets.close()
            self._sockets = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.tcp_server is not None:
            self.tcp_server.close()
            self.tcp_server = None
        for writer in list(self._tcp_clients):
            writer.close()
        for task in list(self.counters.tasks):
            task.cancel()


def absent_listen(address: str, netns: str | None) -> str | None:
    """Why ``address`` cannot be bound in namespace ``netns`` yet (None: it can): the
    namespace does not exist (:func:`~fluidedge.linux.netns.call_in_netns` says so), or the
    address is not one of its addresses (``EADDRNOTAVAIL``)."""

    def probe() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))

    try:
        call_in_netns(netns, probe)
    except NetnsError as exc:
        return str(exc)
    except OSError as exc:
        if exc.errno != errno.EADDRNOTAVAIL:
            return None  # another failure: the start says it, as before
        return f"address {address} is not in {describe(netns)}"
    return None


def _bound(listen: Address) -> tuple[socket.socket, socket.socket]:
    """The UDP and the TCP socket on ``listen`` (port 0: the UDP one's port for both)."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind(listen)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(udp.getsockname())
        tcp.listen(128)
    except OSError:
        udp.close()
        tcp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


async def serve(
    listen: Address,
    upstreams: Sequence[Address],
    timeout: float = 2.0,
    netns: str | None = None,
    upstream_netns: str | None = None,
) -> DnsResponder:
    """A started :class:`DnsResponder` on ``listen``, its socket in network namespace
    ``netns`` (None: the daemon's; e.g. the TOF's, where offloaded queries arrive). The
    upstream queries leave from namespace ``upstream_netns`` (None: the daemon's)."""
    loop = asyncio.get_running_loop()
    responder = DnsResponder(upstreams, timeout, upstream_netns)
    udp, tcp = await asyncio.to_thread(call_in_netns, netns, lambda: _bound(listen))
    try:
        await loop.create_datagram_endpoint(lambda: responder, sock=udp)
        responder.tcp_server = await asyncio.start_server(responder.serve_tcp, sock=tcp)
    except BaseException:
        responder.close()
        udp.close()
        tcp.close()
        raise
    log.info(
        "dns responder on %s:%d udp and tcp (upstream %s)",
        *listen,
        ", ".join(f"{h}:{p}" for h, p in upstreams) or "none",
        extra={"part": "mec", "event": "dns_started"},
    )
    return responder
