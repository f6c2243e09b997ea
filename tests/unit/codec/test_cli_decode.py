"""``fluidedge decode`` on the golden pcap, on hex, and on broken input (no tracebacks);
streaming: file, stdin and a real pipe give the same records, JSON Lines parse line by line,
``--fields`` says what the records say, filters select, a damaged capture ends in an error."""

from __future__ import annotations

import json
import subprocess
import sys
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


def jsonl(text: str) -> list[dict[str, object]]:
    """JSON Lines: every line one JSON object."""
    lines = text.splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    return records


def test_decode_json_records() -> None:
    result = runner.invoke(app, ["decode", str(FIXTURES / "frames.pcap"), "--json"])
    assert result.exit_code == 0, result.output
    records = jsonl(result.stdout)
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
    records = jsonl(result.stdout)
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
    assert jsonl(got.stdout) == jsonl(want.stdout)


def test_non_ethernet_capture_is_refused_with_its_link_type(tmp_path: Path) -> None:
    path = tmp_path / "raw.pcap"
    path.write_bytes(pcap.build([bytes(20)], linktype=101))
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 1
    assert "link type 101" in result.output


def test_truncated_capture_gives_the_records_before_the_damage_then_fails(
    tmp_path: Path,
) -> None:
    data = (FIXTURES / "frames.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-5])
    result = runner.invoke(app, ["decode", str(cut), "--json"])
    assert result.exit_code == 1
    records = jsonl(result.stdout)
    assert [r["frame"] for r in records] == list(range(1, 12))  # the 12th is torn
    assert "pcap record at offset" in result.stderr
    assert "after 11 frame(s)" in result.stderr
    assert "Traceback" not in result.output


def test_layouts_cite_specs() -> None:
    result = runner.invoke(app, ["decode", "--layouts"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("RFC 791", "RFC 8200", "RFC 768", "RFC 9293", "IEEE 802.1Q", "TS 29.281"):
        assert text in result.output


# --- streaming -------------------------------------------------------------------------------


def test_file_stdin_pretty_and_a_real_pipe_give_the_same_records(tmp_path: Path) -> None:
    path = FIXTURES / "frames.pcap"
    from_file = jsonl(runner.invoke(app, ["decode", str(path), "--json"]).stdout)
    from_stdin = runner.invoke(app, ["decode", "-", "--json"], input=path.read_bytes())
    assert from_stdin.exit_code == 0, from_stdin.output
    pretty = runner.invoke(app, ["decode", str(path), "--json", "--pretty"])
    assert json.loads(pretty.stdout) == from_file
    piped = subprocess.run(
        [sys.executable, "-m", "fluidedge", "decode", "-", "--json"],
        input=path.read_bytes(),
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert jsonl(from_stdin.stdout) == from_file
    assert jsonl(piped.stdout.decode()) == from_file
    assert len(from_file) == 12
    assert from_stdin.stderr == ""  # no progress when stderr is not a terminal
    assert piped.stderr == b""
    forced = runner.invoke(app, ["decode", str(path), "--json", "--progress"])
    assert forced.exit_code == 0, forced.output
    assert jsonl(forced.stdout) == from_file  # the progress display never mixes into stdout


def test_fields_are_the_json_records_values() -> None:
    from fluidedge.codec.summary import FIELDS, tsv_value

    path = str(FIXTURES / "frames.pcap")
    records = jsonl(runner.invoke(app, ["decode", path, "--json"]).stdout)
    names = list(FIELDS)
    result = runner.invoke(app, ["decode", path, "--fields", ",".join(names), "--header"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == names
    rows = [line.split("\t") for line in lines[1:]]
    assert rows == [[tsv_value(r[n]) for n in names] for r in records]
    some = runner.invoke(app, ["decode", path, "--fields", "frame,teid,inner_src,error"])
    assert some.stdout.splitlines()[0] == "1\t4660\t10.45.0.7\t"
    assert some.stdout.splitlines()[-1].startswith("12\t\t\tGTP-U message body @ 50: ")


def test_bad_fields_and_filters_are_refused_by_name() -> None:
    path = str(FIXTURES / "frames.pcap")
    cases = {
        ("--fields", "frame,nope"): "unknown field(s) nope",
        ("--teid", "zz"): "--teid 'zz'",
        ("--teid", "0x1ffffffff"): "out of range",
        ("--ue", "10.45.0.300"): "--ue '10.45.0.300'",
        ("--kind", "weird"): "GTP_GPDU",
        ("--port", "70000"): "out of range",
        ("--peer", "host"): "--peer 'host'",
    }
    for argv, text in cases.items():
        result = runner.invoke(app, ["decode", path, *argv])
        assert result.exit_code == 1, argv
        assert text in result.stderr, (argv, result.stderr)
    both = runner.invoke(app, ["decode", path, "--json", "--fields", "frame"])
    assert both.exit_code == 1


def test_filters_select_before_output() -> None:
    path = str(FIXTURES / "frames.pcap")
    everything = jsonl(runner.invoke(app, ["decode", path, "--json"]).stdout)

    def frames(*argv: str) -> list[object]:
        result = runner.invoke(app, ["decode", path, "--json", *argv])
        assert result.exit_code == 0, result.output
        return [r["frame"] for r in jsonl(result.stdout)]

    def expect(pred: object) -> list[object]:
        return [r["frame"] for r in everything if pred(r)]  # type: ignore[operator]

    assert frames("--teid", "0x1234") == expect(lambda r: r["teid"] == 0x1234) == [1]
    assert frames("--teid", "7,0x55") == expect(lambda r: r["teid"] in (7, 0x55))
    assert frames("--ue", "fd00::7") == expect(
        lambda r: "fd00::7" in (r["inner_src"], r["inner_dst"])
    )
    assert frames("--kind", "fragment") == expect(lambda r: r["kind"] == "FRAGMENT")
    assert len(frames("--kind", "fragment")) == 3
    assert frames("--peer", "2001:db8::2") == expect(
        lambda r: "2001:db8::2" in (r["outer_src"], r["outer_dst"])
    )
    assert (
        frames("--port", "443")
        == expect(
            lambda r: (
                443
                in (r["udp_src_port"], r["udp_dst_port"], r["inner_src_port"], r["inner_dst_port"])
            )
        )
        == [2]
    )
    # options combine with AND
    assert frames("--kind", "GTP_GPDU", "--ue", "10.45.0.7", "--teid", "7") == [3]
    table = runner.invoke(app, ["decode", path, "--kind", "MALFORMED"], env={"COLUMNS": "200"})
    assert "12 frame(s), 1 shown" in table.stdout


def test_large_capture_table_is_rendered_in_pages(tmp_path: Path) -> None:
    frame = bytes.fromhex((FIXTURES / "lte_gpdu_udp.hex").read_text().strip())
    path = tmp_path / "many.pcap"
    path.write_bytes(pcap.build([frame] * 250))
    result = runner.invoke(app, ["decode", str(path), "--page-size", "100"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stdout.count("┃ kind") == 3  # pages of 100, 100 and 50 rows, each with its head
    assert "250 frame(s)" in result.stdout


def test_pcapng_with_a_non_ethernet_interface_is_decoded_and_warned(tmp_path: Path) -> None:
    from tests.unit.codec.test_pcapng import _epb, _idb, _shb

    frame = bytes.fromhex((FIXTURES / "lte_gpdu_udp.hex").read_text().strip())
    data = b"".join(
        [_shb(), _idb(linktype=1), _idb(linktype=101), _epb("<", 0, 1, frame),
         _epb("<", 1, 2, frame[14:]), _epb("<", 0, 3, frame)]
    )  # fmt: skip
    path = tmp_path / "two.pcapng"
    path.write_bytes(data)
    result = runner.invoke(app, ["decode", str(path), "--fields", "frame,kind,teid"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["1\tGTP_GPDU\t4660", "3\tGTP_GPDU\t4660"]
    assert "skipped 1 frame(s) of link type 101" in result.stderr
