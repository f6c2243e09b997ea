"""The DNS responder: the pure answer from the rules' table, the table the rules make, the UDP
and TCP edges forwarding other names to an upstream resolver (a fake one on loopback), and the
platform keeping the table equal to the ACTIVE rules of READY apps."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from pydantic import ValidationError

from fluidedge.core.store import Store
from fluidedge.mec import dns as mecdns
from fluidedge.mec.descriptor import AppDescriptor
from fluidedge.mec.errors import MecUnprocessable
from fluidedge.mec.models import DnsRule, IpAddressType, RuleState, check_dns_rule
from fluidedge.mec.persist import Tables
from fluidedge.mec.platform import DNS_SERVICE, Platform
from fluidedge.mec.policy import ADMIN, TofTarget


def rule(rule_id: str, name: str, address: str, state: str = "ACTIVE", **extra: Any) -> DnsRule:
    kind = "IP_V6" if ":" in address else "IP_V4"
    return DnsRule.model_validate(
        {"dnsRuleId": rule_id, "domainName": name, "ipAddressType": kind,
         "ipAddress": address, "state": state, **extra}
    )  # fmt: skip


TABLE = mecdns.records(
    [
        rule("a", "Cache.Example.", "198.18.0.5", ttl=30),
        rule("b", "cache.example", "198.18.0.6", ttl=10),
        rule("c", "cache.example", "2001:db8::5"),
        rule("d", "off.example", "198.18.0.7", state="INACTIVE"),
        rule("e", "v6only.example", "2001:db8::6"),
    ]
)


def ask(name: str, rdtype: str, table: mecdns.Records = TABLE) -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype)
    wire = mecdns.respond(query.to_wire(), table)
    if wire is None:
        return None
    answer = dns.message.from_wire(wire)
    assert answer.id == query.id
    return answer


def addresses(answer: dns.message.Message | None) -> list[str]:
    assert answer is not None
    return sorted(r.to_text() for rrset in answer.answer for r in rrset)


def test_the_table_merges_rules_of_a_name_and_leaves_inactive_ones_out() -> None:
    want = {
        "cache.example": mecdns.Record(("198.18.0.5", "198.18.0.6"), ("2001:db8::5",), 10),
        "v6only.example": mecdns.Record((), ("2001:db8::6",), mecdns.DEFAULT_TTL),
    }
    assert want == TABLE


def test_answers_a_aaaa_nodata_any_and_forwards_other_names() -> None:
    a = ask("CACHE.example.", "A")
    assert addresses(a) == ["198.18.0.5", "198.18.0.6"]
    assert a is not None
    assert a.flags & dns.flags.AA
    assert a.answer[0].ttl == 10
    assert addresses(ask("cache.example", "AAAA")) == ["2001:db8::5"]
    assert addresses(ask("cache.example", "ANY")) == ["198.18.0.5", "198.18.0.6", "2001:db8::5"]
    nodata = ask("v6only.example", "A")
    assert nodata is not None
    assert nodata.rcode() == dns.rcode.NOERROR
    assert nodata.answer == []
    assert addresses(ask("cache.example", "MX")) == []  # the edge's name: never forwarded
    assert ask("off.example", "A") is None
    assert ask("other.example", "A") is None
    assert mecdns.respond(b"\x00\x01garbage", TABLE) is None


def test_a_rule_naming_no_dns_name_is_refused_by_its_schema() -> None:
    for name in ("a" * 64 + ".example", "a..example", "two words.example", "caf\u00e9.example",
                 "a;b.example", ".", "example.."):  # fmt: skip
        with pytest.raises(ValidationError, match="is not a DNS name"):
            rule("x", name, "198.18.0.5")
    assert check_dns_rule(rule("x", "cache.example.", "198.18.0.5")) is None
    assert check_dns_rule(rule("x", "xn--caf-dma.example", "2001:db8::5")) is None
    # Built in code past the schema, a bad name is still caught here.
    built = DnsRule.model_construct(
        dns_rule_id="x", domain_name="two words", ip_address_type=IpAddressType.IP_V4,
        ip_address="198.18.0.5", state=RuleState.ACTIVE,
    )  # fmt: skip
    assert "not a DNS name" in (check_dns_rule(built) or "")


def test_an_address_must_be_one_and_of_the_rules_type() -> None:
    with pytest.raises(ValidationError, match="is not an IPv4 or IPv6 address"):
        rule("x", "cache.example", "198.18.0.256")
    with pytest.raises(ValidationError, match="is not an IPv4 or IPv6 address"):
        rule("x", "cache.example", "fe80::1%eth0")  # ipaddress takes a zone; the schema not
    mismatch = DnsRule.model_validate(
        {"dnsRuleId": "x", "domainName": "a.example", "ipAddressType": "IP_V6",
         "ipAddress": "198.18.0.5", "state": "ACTIVE"}
    )  # fmt: skip
    assert check_dns_rule(mismatch) == "dnsRule x: ipAddress is IPv4, ipAddressType IPv6"


class Upstream(asyncio.DatagramProtocol):
    """A fake core resolver: every A query gets 192.0.2.1."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        self.seen.append(query.question[0].name.to_text())
        response = dns.message.make_response(query)
        response.answer.append(
            dns.rrset.from_text(query.question[0].name, 5, "IN", "A", "192.0.2.1")
        )
        self.transport.sendto(response.to_wire(), addr)


async def _udp_query(port: int, name: str) -> dns.message.Message:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            done.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(dns.message.make_query(name, "A").to_wire())
        return dns.message.from_wire(await asyncio.wait_for(done, 5))
    finally:
        transport.close()


def test_the_udp_responder_answers_forwards_and_fails_over() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        upstream = Upstream()
        up_transport, _ = await loop.create_datagram_endpoint(
            lambda: upstream, local_addr=("127.0.0.1", 0)
        )
        up_port = up_transport.get_extra_info("sockname")[1]
        # a silent upstream first: the responder moves on to the next one after its timeout
        silent, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        silent_port = silent.get_extra_info("sockname")[1]
        responder = await mecdns.serve(
            ("127.0.0.1", 0), [("127.0.0.1", silent_port), ("127.0.0.1", up_port)], 0.3
        )
        assert responder.transport is not None
        port = responder.transport.get_extra_info("sockname")[1]
        try:
            responder.table = TABLE
            assert addresses(await _udp_query(port, "cache.example")) == [
                "198.18.0.5", "198.18.0.6",
            ]  # fmt: skip
            assert addresses(await _udp_query(port, "core.example")) == ["192.0.2.1"]
            assert upstream.seen == ["core.example."]
            responder.table = {}  # deactivated: the core's answer now
            assert addresses(await _udp_query(port, "cache.example")) == ["192.0.2.1"]
            responder.upstreams = [("127.0.0.1", silent_port)]
            failed = await _udp_query(port, "core.example")
            assert failed.rcode() == dns.rcode.SERVFAIL
            c = responder.counters
            assert (c.answered, c.forwarded, c.failed) == (1, 2, 1)
        finally:
            responder.close()
            up_transport.close()
            silent.close()

    asyncio.run(scenario())


def test_an_upstream_namespace_that_is_gone_is_a_servfail_not_a_crash() -> None:
    async def scenario() -> None:
        upstream = Upstream()
        loop = asyncio.get_running_loop()
        up_transport, _ = await loop.create_datagram_endpoint(
            lambda: upstream, local_addr=("127.0.0.1", 0)
        )
        up_port = up_transport.get_extra_info("sockname")[1]
        responder = await mecdns.serve(
            ("127.0.0.1", 0), [("127.0.0.1", up_port)], 0.3, upstream_netns="fe-no-such-ns"
        )
        assert responder.transport is not None
        port = responder.transport.get_extra_info("sockname")[1]
        try:
            failed = await _udp_query(port, "core.example")
            assert failed.rcode() == dns.rcode.SERVFAIL
            assert upstream.seen == []  # nothing left from the daemon's namespace instead
            assert (responder.counters.forwarded, responder.counters.failed) == (0, 1)
            responder.upstream_netns = None
            assert addresses(await _udp_query(port, "core.example")) == ["192.0.2.1"]
        finally:
            responder.close()
            up_transport.close()

    asyncio.run(scenario())


async def _tcp_upstream(answer: str) -> tuple[asyncio.Server, int, list[str]]:
    """A fake core resolver over TCP: every A query gets ``answer``, plus 40 more A records
    (an answer too large for a plain datagram: the reason a client asks over TCP)."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                query = dns.message.from_wire(await reader.readexactly(size))
                seen.append(query.question[0].name.to_text())
                response = dns.message.make_response(query)
                many = [answer] + [f"192.0.2.{i}" for i in range(100, 140)]
                response.answer.append(
                    dns.rrset.from_text_list(query.question[0].name, 5, "IN", "A", many)
                )
                wire = response.to_wire()
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, dns.exception.DNSException):
            writer.close()  # a resolver closes on what it cannot read

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def _tcp_ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *names: str
) -> list[dns.message.Message]:
    """Send the queries of ``names`` back to back (pipelined), then read their answers."""
    queries = [dns.message.make_query(name, "A") for name in names]
    for query in queries:
        wire = query.to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
    await writer.drain()
    out = []
    for query in queries:
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
        answer = dns.message.from_wire(await reader.readexactly(size))
        assert answer.id == query.id  # in order
        out.append(answer)
    return out


def test_the_tcp_responder_answers_forwards_over_tcp_and_bounds_its_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        upstream, up_port, seen = await _tcp_upstream("192.0.2.1")
        responder = await mecdns.serve(("127.0.0.1", 0), [("127.0.0.1", up_port)], 2.0)
        assert responder.transport is not None
        port = responder.transport.get_extra_info("sockname")[1]  # TCP shares the UDP port
        try:
            responder.table = TABLE
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            mine, core = await _tcp_ask(reader, writer, "cache.example", "core.example")
            assert addresses(mine) == ["198.18.0.5", "198.18.0.6"]
            assert len(addresses(core)) == 41  # the large answer, whole, over TCP
            assert "192.0.2.1" in addresses(core)
            assert seen == ["core.example."]
            c = responder.counters
            assert (c.answered, c.forwarded, c.tcp_queries) == (1, 1, 2)
            # Not a DNS message: the connection is closed, nothing answered.
            writer.write(b"\x00\x03abc")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert responder.counters.dropped == 1
            writer.close()
            # A silent client is closed after TCP_IDLE; beyond TCP_CLIENTS a new one at once.
            monkeypatch.setattr(mecdns, "TCP_IDLE", 0.3)
            monkeypatch.setattr(mecdns, "TCP_CLIENTS", 1)
            quiet_r, quiet_w = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.1)
            extra_r, extra_w = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(extra_r.read(), 5) == b""
            assert responder.counters.tcp_refused == 1
            assert await asyncio.wait_for(quiet_r.read(), 5) == b""  # idle: closed
            for w in (quiet_w, extra_w):
                w.close()
        finally:
            responder.close()
            upstream.close()
            await upstream.wait_closed()

    asyncio.run(scenario())


def test_a_tcp_query_whose_upstreams_fail_gets_servfail() -> None:
    async def scenario() -> None:
        closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        closed.bind(("127.0.0.1", 0))  # bound, not listening: the connection is refused
        responder = await mecdns.serve(("127.0.0.1", 0), [closed.getsockname()], 0.5)
        assert responder.transport is not None
        port = responder.transport.get_extra_info("sockname")[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            [failed] = await _tcp_ask(reader, writer, "core.example")
            assert failed.rcode() == dns.rcode.SERVFAIL
            assert responder.counters.failed == 1
            writer.close()
        finally:
            responder.close()
            closed.close()

    asyncio.run(scenario())


def test_the_platform_keeps_the_table_equal_to_ready_apps_active_rules(tmp_path: Path) -> None:
    tables: list[mecdns.Records] = []
    plat = Platform(
        Tables(Store(tmp_path / "db.sqlite")), lambda *_: None, lambda: None,
        dns_sink=tables.append,
    )  # fmt: skip
    spec = AppDescriptor.model_validate(
        {"name": "cache", "dataAddress": "10.0.2.10",
         "dnsRules": [rule("d1", "cache.example", "198.18.0.5").wire()]}
    )  # fmt: skip
    view, _ = plat.create_app(spec)
    app = view["appInstanceId"]
    assert not tables or tables[-1] == {}  # INSTANTIATED: not answered yet
    plat.confirm_ready(ADMIN, app)
    assert tables[-1] == {"cache.example": mecdns.Record(("198.18.0.5",), (), 60)}
    off = rule("d1", "cache.example", "198.18.0.5", state="INACTIVE")
    plat.put_dns_rule(ADMIN, app, "d1", off)
    assert tables[-1] == {}
    v6 = DnsRule.model_validate({**rule("d1", "cache.example", "198.18.0.5").wire(),
                                 "ipAddressType": "IP_V6"})  # fmt: skip
    with pytest.raises(MecUnprocessable, match="ipAddressType IPv6"):
        plat.put_dns_rule(ADMIN, app, "d1", v6)
    with pytest.raises(MecUnprocessable, match="differs from the path's"):
        plat.put_dns_rule(ADMIN, app, "d1", rule("d9", "cache.example", "198.18.0.5"))
    plat.put_dns_rule(ADMIN, app, "d1", rule("d1", "cache.example", "198.18.0.9"))
    assert tables[-1]["cache.example"].a == ("198.18.0.9",)
    plat.delete_app(app)
    assert tables[-1] == {}


def test_the_resolver_offload_is_a_tof_service_of_the_platform(tmp_path: Path) -> None:
    plat = Platform(
        Tables(Store(tmp_path / "db.sqlite")), lambda *_: None, lambda: None,
        dns_offload=("10.45.0.53", "10.77.0.1"),
    )  # fmt: skip
    assert plat.desired_tof() == {DNS_SERVICE: TofTarget("10.45.0.53", "10.77.0.1")}
    assert dns.rdatatype.A == 1  # the library's constants, as the responder uses them
