"""Human- and JSON-friendly summaries of decoded frames (what ``fluidedge decode`` prints).

Pure functions: a :class:`~fluidedge.codec.stack.Frame` in, plain ``dict`` / strings out, so
the CLI stays a thin adapter and the summaries are testable without a terminal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from types import ModuleType

from fluidedge.codec.fields import Layout
from fluidedge.codec.gtpu import layouts as gtpu_layouts
from fluidedge.codec.net import checksum, ethernet, inner, ipv4, ipv6, udp
from fluidedge.codec.stack import Frame, Kind

PROTOCOL_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP"}
GTPU_MESSAGE_NAMES = {
    1: "echo-request",
    2: "echo-response",
    26: "error-indication",
    31: "supported-ext-headers",
    254: "end-marker",
    255: "G-PDU",
}


def address(raw: bytes | None) -> str | None:
    return None if raw is None else str(ipaddress.ip_address(raw))


def frame_record(index: int, frame: Frame, length: int) -> dict[str, object]:
    """A flat, JSON-serialisable record of one frame."""
    c = frame.classified()
    eth = frame.ethernet
    return {
        "frame": index,
        "length": length,
        "kind": Kind(c.kind).name,
        "src_mac": ethernet.mac_text(eth.source) if eth else None,
        "dst_mac": ethernet.mac_text(eth.destination) if eth else None,
        "vlans": [t.vid for t in eth.vlans] if eth else [],
        "ethertype": eth.ethertype if eth else None,
        "outer_src": address(c.outer_src),
        "outer_dst": address(c.outer_dst),
        "udp_src_port": c.src_port,
        "udp_dst_port": c.dst_port,
        "gtpu_message_type": c.message_type,
        "gtpu_message": None if c.message_type is None else GTPU_MESSAGE_NAMES.get(c.message_type),
        "teid": c.teid,
        "qfi": c.qfi,
        "inner_offset": c.inner_offset,
        "inner_end": c.inner_end,
        "inner_src": address(c.inner_src),
        "inner_dst": address(c.inner_dst),
        "inner_protocol": c.inner_proto,
        "inner_src_port": c.inner_sport,
        "inner_dst_port": c.inner_dport,
        "icmp_type": c.icmp_type,
        "icmp_id": c.icmp_id,
        "inner_fragment": c.inner_fragment,
        "error": None
        if c.error is None
        else {
            "error": c.error.error,
            "header": c.error.header,
            "offset": c.error.offset,
            "reason": c.error.reason,
        },
    }


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
