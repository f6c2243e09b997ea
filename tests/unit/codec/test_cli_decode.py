"""``fluidedge decode`` on the golden pcap, on hex, and on broken input (no tracebacks)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.captures import editcap_pcapng
from typer.testing import CliRunner

from fluidedge.cli import app
from fluidedge.codec import pcap

FIXTURES = Path(__file__).parents[2] / "fixtures" / "net"
runner = CliRunner()


def test_decode_pcap_table() -> None:
    result = runner.invoke(app, ["decode", str(FIXTURES / "frames.pcap")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "12 frame(s)" in result.output
    for text in ("GTP_GPDU", "FRAGMENT", "NON_IP", "NON_GTP", "GTP_OTHER", "MALFORMED"):
        assert text in result.output
    assert "qfi=9" in result.output
    assert "[fd00::7]:5000" in result.output  # IPv6 inner endpoint survives (no markup eaten)
    assert "GTP-U message body @ 50" in result.output
    assert "Traceback" not in result.output


def test_decode_json_records() -> None:
    result = runner.invoke(app, ["decode", str(FIXTURES / "frames.pcap"), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert len(records) == 12
    first = records[0]
    assert (first["kind"], first["teid"], first["inner_src"], first["inner_dst_port"]) == (
        "GTP_GPDU",
        0x1234,
        "10.45.0.7",
        53,
    )
    bad = records[-1]
    assert bad["error"]["header"] == "GTP-U message body"
    assert bad["error"]["offset"] == 50


def test_decode_hex_with_errors_per_frame() -> None:
    good = (FIXTURES / "lte_gpdu_udp.hex").read_text().strip()
    result = runner.invoke(app, ["decode", "--hex", good, "--hex", "00 11 22", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert records[0]["kind"] == "GTP_GPDU"
    assert records[1]["kind"] == "MALFORMED"
    assert records[1]["error"] == {
        "error": "TruncatedError",
        "header": "Ethernet",
        "offset": 0,
        "reason": "need 14 bytes, have 3",
    }


def test_bad_inputs_fail_cleanly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(b"not a pcap file at all, definitely")
    cases = [
        ["decode", str(broken)],
        ["decode", str(tmp_path / "missing.pcap")],
        ["decode", "--hex", "zz"],
        ["decode"],
    ]
    for argv in cases:
        result = runner.invoke(app, argv)
        assert result.exit_code == 1, argv
        assert result.exception is None or isinstance(result.exception, SystemExit), argv
        assert "fluidedge decode:" in result.output, argv


def test_decode_pcapng_as_the_pcap(tmp_path: Path) -> None:
    converted = editcap_pcapng((FIXTURES / "frames.pcap").read_bytes(), tmp_path)
    want = runner.invoke(app, ["decode", str(FIXTURES / "frames.pcap"), "--json"])
    got = runner.invoke(app, ["decode", str(converted), "--json"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.output) == json.loads(want.output)


def test_non_ethernet_capture_is_refused_with_its_link_type(tmp_path: Path) -> None:
    path = tmp_path / "raw.pcap"
    path.write_bytes(pcap.build([bytes(20)], linktype=101))
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 1
    assert "link type 101" in result.output


def test_truncated_pcap_keeps_the_frames_before_the_damage(tmp_path: Path) -> None:
    data = (FIXTURES / "frames.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-5])
    result = runner.invoke(app, ["decode", str(cut), "--json"])
    assert result.exit_code == 0
    assert "warning" in result.output
    assert pcap.read_header(data).linktype == 1


def test_layouts_cite_specs() -> None:
    result = runner.invoke(app, ["decode", "--layouts"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("RFC 791", "RFC 8200", "RFC 768", "RFC 9293", "IEEE 802.1Q", "TS 29.281"):
        assert text in result.output
