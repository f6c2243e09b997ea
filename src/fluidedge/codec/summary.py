"""Human- and JSON-friendly summaries of decoded frames (what ``fluidedge decode`` prints).

Pure functions: a frame's octets and its :func:`~fluidedge.codec.stack.classify` result in,
plain ``dict`` / strings out, so the CLI stays a thin adapter and the summaries are testable
without a terminal. One table of field getters (:data:`FIELDS`) serves the JSON records and
the ``--fields`` columns, so both always say the same; only the fields asked for are computed
(the Ethernet header is decoded only for the MAC/VLAN/EtherType fields).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from socket import AF_INET, AF_INET6, inet_ntop
from types import ModuleType

from fluidedge.codec.errors import CodecError
from fluidedge.codec.fields import Layout
from fluidedge.codec.gtpu import layouts as gtpu_layouts
from fluidedge.codec.net import checksum, ethernet, inner, ipv4, ipv6, udp
from fluidedge.codec.net.ethernet import EthernetHeader
from fluidedge.codec.stack import Buffer, Classified, Kind, as_octets

PROTOCOL_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP"}
GTPU_MESSAGE_NAMES = {
    1: "echo-request",
    2: "echo-response",
    26: "error-indication",
    31: "supported-ext-headers",
    254: "end-marker",
    255: "G-PDU",
}


_TEXTS: dict[bytes, str] = {}
_TEXTS_MAX = 1 << 16


def _text(raw: bytes | None) -> str | None:
    """An address as text: ``inet_ntop``, 4x faster than ``ipaddress``, and remembered (a
    capture names the same few thousand addresses over and over; the memo is bounded)."""
    if raw is None:
        return None
    text = _TEXTS.get(raw)
    if text is None:
        if len(_TEXTS) >= _TEXTS_MAX:
            _TEXTS.clear()
        text = _TEXTS[raw] = inet_ntop(AF_INET if len(raw) == 4 else AF_INET6, raw)
    return text


class FrameContext:
    """One frame on its way to a record: its number, capture time, octets and classification;
    the Ethernet header is decoded only if a field asks for it."""

    __slots__ = ("_eth", "c", "data", "index", "timestamp_ns")

    def __init__(self, index: int, timestamp_ns: int | None, data: Buffer, c: Classified) -> None:
        self.index = index
        self.timestamp_ns = timestamp_ns
        self.data = data
        self.c = c
        self._eth: EthernetHeader | bool | None = False

    @property
    def eth(self) -> EthernetHeader | None:
        if self._eth is False:
            try:
                self._eth = ethernet.decode(as_octets(self.data))
            except CodecError:
                self._eth = None
        return self._eth  # type: ignore[return-value]


def _error(x: FrameContext) -> dict[str, object] | None:
    e = x.c.error
    if e is None:
        return None
    return {"error": e.error, "header": e.header, "offset": e.offset, "reason": e.reason}


def _mac(raw: bytes | None) -> str | None:
    return None if raw is None else ethernet.mac_text(raw)


def _message_name(mtype: int | None) -> str | None:
    return None if mtype is None else GTPU_MESSAGE_NAMES.get(mtype)


KIND_NAMES = {int(k): k.name for k in Kind}

FIELDS: dict[str, Callable[[FrameContext], object]] = {
    "frame": lambda x: x.index,
    "timestamp_ns": lambda x: x.timestamp_ns,
    "length": lambda x: len(x.data),
    "kind": lambda x: KIND_NAMES[x.c.kind],
    "src_mac": lambda x: _mac(x.eth.source) if x.eth else None,
    "dst_mac": lambda x: _mac(x.eth.destination) if x.eth else None,
    "vlans": lambda x: [t.vid for t in x.eth.vlans] if x.eth else [],
    "ethertype": lambda x: x.eth.ethertype if x.eth else None,
    "outer_src": lambda x: _text(x.c.outer_src),
    "outer_dst": lambda x: _text(x.c.outer_dst),
    "udp_src_port": lambda x: x.c.src_port,
    "udp_dst_port": lambda x: x.c.dst_port,
    "gtpu_message_type": lambda x: x.c.message_type,
    "gtpu_message": lambda x: _message_name(x.c.message_type),
    "teid": lambda x: x.c.teid,
    "qfi": lambda x: x.c.qfi,
    "unknown_ext": lambda x: x.c.unknown_ext,
    "inner_offset": lambda x: x.c.inner_offset,
    "inner_end": lambda x: x.c.inner_end,
    "inner_src": lambda x: _text(x.c.inner_src),
    "inner_dst": lambda x: _text(x.c.inner_dst),
    "inner_protocol": lambda x: x.c.inner_proto,
    "inner_src_port": lambda x: x.c.inner_sport,
    "inner_dst_port": lambda x: x.c.inner_dport,
    "icmp_type": lambda x: x.c.icmp_type,
    "icmp_id": lambda x: x.c.icmp_id,
    "inner_fragment": lambda x: x.c.inner_fragment,
    "error": _error,
}
"""Every field of a record, in record order: ``--json`` writes them all, ``--fields`` some.
Addresses are text, numbers decimal, ``None`` where a layer was not reached."""


_MACS: dict[bytes, str] = {}


def _mac_memo(raw: bytes) -> str:
    text = _MACS.get(raw)
    if text is None:
        if len(_MACS) >= _TEXTS_MAX:
            _MACS.clear()
        text = _MACS[raw] = ethernet.mac_text(raw)
    return text


def record(x: FrameContext) -> dict[str, object]:
    """A flat, JSON-serialisable record of one frame: every field of :data:`FIELDS`, in its
    order and with its values (tested), built in one go (``--json`` calls this per frame)."""
    c = x.c
    data = x.data
    n = len(data)
    if n >= 14 and (data[12] << 8 | data[13]) not in ethernet.VLAN_TPIDS:  # untagged
        src_mac: str | None = _mac_memo(bytes(data[6:12]))
        dst_mac: str | None = _mac_memo(bytes(data[0:6]))
        vlans: list[int] = []
        ethertype: int | None = data[12] << 8 | data[13]
    else:
        eth = x.eth
        src_mac = _mac(eth.source) if eth else None
        dst_mac = _mac(eth.destination) if eth else None
        vlans = [t.vid for t in eth.vlans] if eth else []
        ethertype = eth.ethertype if eth else None
    mtype = c.message_type
    e = c.error
    return {
        "frame": x.index,
        "timestamp_ns": x.timestamp_ns,
        "length": n,
        "kind": KIND_NAMES[c.kind],
        "src_mac": src_mac,
        "dst_mac": dst_mac,
        "vlans": vlans,
        "ethertype": ethertype,
        "outer_src": _text(c.outer_src),
        "outer_dst": _text(c.outer_dst),
        "udp_src_port": c.src_port,
        "udp_dst_port": c.dst_port,
        "gtpu_message_type": mtype,
        "gtpu_message": None if mtype is None else GTPU_MESSAGE_NAMES.get(mtype),
        "teid": c.teid,
        "qfi": c.qfi,
        "unknown_ext": c.unknown_ext,
        "inner_offset": c.inner_offset,
        "inner_end": c.inner_end,
        "inner_src": _text(c.inner_src),
        "inner_dst": _text(c.inner_dst),
        "inner_protocol": c.inner_proto,
        "inner_src_port": c.inner_sport,
        "inner_dst_port": c.inner_dport,
        "icmp_type": c.icmp_type,
        "icmp_id": c.icmp_id,
        "inner_fragment": c.inner_fragment,
        "error": None
        if e is None
        else {"error": e.error, "header": e.header, "offset": e.offset, "reason": e.reason},
    }


Cell = Callable[[int, "int | None", Buffer, Classified], str]
"""A ``--fields`` column: ``(frame number, capture time, octets, classification) -> text``."""


def _num(value: int | None) -> str:
    return "" if value is None else str(value)


def _addr(raw: bytes | None) -> str:
    return "" if raw is None else _text(raw)  # type: ignore[return-value]


_FAST_CELLS: dict[str, Cell] = {
    "frame": lambda i, t, d, c: str(i),
    "timestamp_ns": lambda i, t, d, c: _num(t),
    "length": lambda i, t, d, c: str(len(d)),
    "kind": lambda i, t, d, c: KIND_NAMES[c.kind],
    "outer_src": lambda i, t, d, c: _addr(c.outer_src),
    "outer_dst": lambda i, t, d, c: _addr(c.outer_dst),
    "udp_src_port": lambda i, t, d, c: _num(c.src_port),
    "udp_dst_port": lambda i, t, d, c: _num(c.dst_port),
    "gtpu_message_type": lambda i, t, d, c: _num(c.message_type),
    "teid": lambda i, t, d, c: _num(c.teid),
    "qfi": lambda i, t, d, c: _num(c.qfi),
    "inner_src": lambda i, t, d, c: _addr(c.inner_src),
    "inner_dst": lambda i, t, d, c: _addr(c.inner_dst),
    "inner_protocol": lambda i, t, d, c: _num(c.inner_proto),
    "inner_src_port": lambda i, t, d, c: _num(c.inner_sport),
    "inner_dst_port": lambda i, t, d, c: _num(c.inner_dport),
}


def cell(name: str) -> Cell:
    """The ``--fields`` column ``name``: ``tsv_value`` of the record field, computed without
    building the record for the common fields (tested equal for every field)."""
    fast = _FAST_CELLS.get(name)
    if fast is not None:
        return fast
    get = FIELDS[name]

    def slow(i: int, t: int | None, d: Buffer, c: Classified) -> str:
        return tsv_value(get(FrameContext(i, t, d, c)))

    return slow


def tsv_value(value: object) -> str:
    """A record value as one ``--fields`` cell: empty for None, 1/0 for booleans, lists joined
    by commas, an error as ``header @ offset: reason``; tabs and newlines become spaces."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        value = f"{value['header']} @ {value['offset']}: {value['reason']}"
    text = str(value)
    if "\t" in text or "\n" in text:
        text = text.replace("\t", " ").replace("\n", " ")
    return text


def _endpoint(addr: object, port: object) -> str:
    if addr is None:
        return ""
    text = str(addr)
    if port is None:
        return text
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def table_row(record: dict[str, object]) -> tuple[str, ...]:
    """The columns of the summary table: #, kind, VLAN, outer, GTP-U, inner, error."""
    outer = ""
    if record["outer_src"] is not None:
        outer = (
            f"{_endpoint(record['outer_src'], record['udp_src_port'])} → "
            f"{_endpoint(record['outer_dst'], record['udp_dst_port'])}"
        )
    gtp = ""
    if record["gtpu_message_type"] is not None:
        name = record["gtpu_message"] or f"type {record['gtpu_message_type']}"
        gtp = f"{name} teid=0x{record['teid']:08x}"
        if record["qfi"] is not None:
            gtp += f" qfi={record['qfi']}"
    inner = ""
    if record["inner_src"] is not None:
        proto = record["inner_protocol"]
        pname = PROTOCOL_NAMES.get(proto, str(proto)) if isinstance(proto, int) else "?"
        inner = (
            f"{pname} {_endpoint(record['inner_src'], record['inner_src_port'])} → "
            f"{_endpoint(record['inner_dst'], record['inner_dst_port'])}"
        )
        if record["icmp_type"] is not None:
            inner += f" type={record['icmp_type']}"
            if record["icmp_id"] is not None:
                inner += f" id={record['icmp_id']}"
        if record["inner_fragment"]:
            inner += " (fragment)"
    elif record["kind"] == "GTP_GPDU":
        inner = "(not an IP packet)"
    error = record["error"]
    err = ""
    if isinstance(error, dict):
        err = f"{error['header']} @ {error['offset']}: {error['reason']}"
    vlans = record["vlans"]
    vlan = ",".join(str(v) for v in vlans) if isinstance(vlans, list) else ""
    return (str(record["frame"]), str(record["kind"]), vlan, outer, gtp, inner, err)


TABLE_COLUMNS = ("#", "kind", "vlan", "outer (UDP)", "GTP-U", "inner", "error")


def all_layouts() -> Iterator[Layout]:
    """Every header layout of the codec, outer to inner, for ``--layouts``."""
    modules: tuple[ModuleType, ...] = (ethernet, ipv4, ipv6, udp, gtpu_layouts, inner, checksum)
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Layout):
                yield value
