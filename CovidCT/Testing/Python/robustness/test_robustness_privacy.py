"""No patient name, ID or birth date leaves CovidCT unless the user explicitly asks.

A synthetic DICOM series carrying PatientName/PatientID/PatientBirthDate goes through
``info`` and ``analyze``; stdout, stderr (debug logs included), every output file's
name and content (PDF streams decompressed, the DICOM report parsed) are searched.
The same runs with ``--include-identifiers`` must show them: that proves the search
can find what it looks for.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import dicom_factory as factory
from bad_inputs.building import analyze_argv, write_scan
from bad_inputs.framework import SUBPROCESS_TIMEOUT_S, Prepared
from bad_inputs.runners import cli_command, run_in_process, subprocess_env

# Every spelling an identifier could take in text, CSV, JSON, PDF or DICOM (long enough
# that compressed image bytes cannot match by chance).
IDENTIFIER_PATTERNS = [
    re.escape(factory.PATIENT_ID),
    r"Doe\^Jane",
    r"Doe,? Jane",
    r"Jane Doe",
    factory.PATIENT_BIRTH_DATE,
    r"1970-01-01",
    r"01[./]01[./]1970",
]
IDENTIFIER_RE = re.compile("|".join(IDENTIFIER_PATTERNS).encode(), re.IGNORECASE)


def _pdf_streams(data: bytes) -> list:
    """Decoded content of every PDF stream (ASCII85 and Flate filters undone)."""
    streams = []
    for match in re.finditer(rb"stream\r?\n", data):
        start = match.end()
        end = data.find(b"endstream", start)
        if end < 0:
            continue
        header = data[max(0, match.start() - 300):match.start()]
        body = data[start:end].strip()
        try:
            if b"ASCII85Decode" in header.rsplit(b"obj", 1)[-1]:
                body = base64.a85decode(body[:-2] if body.endswith(b"~>") else body)
            streams.append(zlib.decompress(body))
        except (ValueError, zlib.error):
            continue
    return streams


def _pdf_string_bytes(stream: bytes) -> bytes:
    """The bytes of every literal string ``(...)`` in a content stream, in order."""
    out = bytearray()
    for match in re.finditer(rb"\((?:\\.|[^\\)])*\)", stream, re.S):
        raw = match.group(0)[1:-1]
        raw = re.sub(rb"\\([0-7]{1,3})", lambda m: bytes([int(m.group(1), 8) & 0xFF]), raw)
        out += re.sub(rb"\\(.)", rb"\1", raw, flags=re.S)
    return bytes(out)


def _to_unicode_maps(streams: list) -> list:
    maps = []
    for stream in streams:
        if b"begincmap" not in stream:
            continue
        mapping = {}
        for code, uni in re.findall(rb"<([0-9A-Fa-f]{2})>\s*<([0-9A-Fa-f]{4})>", stream):
            mapping[int(code, 16)] = chr(int(uni, 16))
        maps.append(mapping)
    return maps


def readable_bytes(path: Path) -> bytes:
    """The file's bytes, its decompressed streams and, for PDFs, the text as displayed.

    The report embeds subset TrueType fonts, so its text is glyph codes; each string is
    decoded with every ToUnicode map of the file (a wrong map only adds noise).
    """
    data = path.read_bytes()
    parts = [data]
    if b"%PDF" in data[:2048] or b"%PDF" in data:
        streams = _pdf_streams(data)
        parts += streams
        maps = _to_unicode_maps(streams)
        for stream in streams:
            codes = _pdf_string_bytes(stream)
            for mapping in maps:
                parts.append("".join(mapping.get(c, "?") for c in codes).encode("utf-8", "replace"))
    return b"\n".join(parts)


def leaks(text_or_folder) -> list:
    """Where an identifier shows up: in a string, or in a folder's file names and contents."""
    if isinstance(text_or_folder, str):
        return [m.group(0).decode() for m in IDENTIFIER_RE.finditer(text_or_folder.encode())]
    found = []
    for path in sorted(Path(text_or_folder).rglob("*")):
        if IDENTIFIER_RE.search(path.name.encode()):
            found.append(f"file name {path.name}")
        if path.is_file():
            for match in IDENTIFIER_RE.finditer(readable_bytes(path)):
                found.append(f"{path.name}: {match.group(0).decode(errors='replace')}")
    return found


@pytest.fixture(scope="module")
def identified_scan(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("privacy") / "scan"
    write_scan(folder, with_identifiers=True)
    return folder


def test_info_hides_identifiers_unless_asked(identified_scan):
    for argv in (["info", identified_scan], ["info", identified_scan, "--json"]):
        result = run_in_process(Prepared(argv))
        assert result.exit_code == 0, result.stderr
        assert leaks(result.stdout + result.stderr) == []
    shown = run_in_process(Prepared(["info", identified_scan, "--json", "--include-identifiers"]))
    study = json.loads(shown.stdout)["study"]
    assert study["patient_id"] == factory.PATIENT_ID and study["patient_birth_date"] == factory.PATIENT_BIRTH_DATE


def test_error_messages_carry_no_identifiers(identified_scan, tmp_path):
    """Errors name files and series, never the patient (here: two series in one folder)."""
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(identified_scan, mixed / "a")
    write_scan(mixed / "b", with_identifiers=True, description="Second")
    result = run_in_process(Prepared(analyze_argv(mixed, tmp_path / "out")))
    assert result.exit_code == 4
    assert leaks(result.stderr) == []


def _report_available() -> bool:
    try:
        from covidct.report import build_report  # noqa: F401
    except ImportError:
        return False
    return True


def _analyze(scan: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    """A real process with debug logging and JSON progress: every line it prints is searched."""
    report = [] if _report_available() else ["--no-report"]
    argv = analyze_argv(scan, out, "--enhance", "off", *report, *extra)
    argv[argv.index("--progress") + 1] = "json"
    prepared = Prepared(argv, fakes=True)
    command = cli_command(prepared)
    # --debug goes before the subcommand: the most verbose logs must be clean too.
    position = command.index("analyze")
    command[position:position] = ["--debug"]
    return subprocess.run(command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
                          env=subprocess_env(prepared))


def test_analyze_outputs_hide_identifiers_unless_asked(identified_scan, tmp_path):
    hidden = _analyze(identified_scan, tmp_path / "plain")
    assert hidden.returncode == 0, hidden.stderr
    assert leaks(hidden.stdout + hidden.stderr) == []
    written = sorted(p.name for p in (tmp_path / "plain").iterdir())
    assert "result.json" in written and "heatmap.nrrd" in written
    assert leaks(tmp_path / "plain") == [], written
    study = json.loads((tmp_path / "plain" / "result.json").read_text())["study"]
    assert not {"patient_name", "patient_id", "patient_birth_date"} & set(study)


def test_analyze_with_include_identifiers_shows_them(identified_scan, tmp_path):
    """The positive control: the search above finds identifiers when they are there."""
    shown = _analyze(identified_scan, tmp_path / "named", "--include-identifiers")
    assert shown.returncode == 0, shown.stderr
    study = json.loads((tmp_path / "named" / "result.json").read_text())["study"]
    assert study["patient_id"] == factory.PATIENT_ID
    if _report_available():
        pdf = readable_bytes(tmp_path / "named" / "report.pdf")
        assert IDENTIFIER_RE.search(pdf), "with --include-identifiers the report names the patient"


@pytest.mark.slow
def test_analyze_with_shipped_models_hides_identifiers(identified_scan, tmp_path):
    """The real models end to end (once the weights are shipped)."""
    from covidct.weights import available_models

    if "classifier" not in available_models():
        pytest.skip("the classifier weights are not in weights/ yet")
    report = [] if _report_available() else ["--no-report"]
    done = subprocess.run([sys.executable, "-m", "covidct.cli", "--debug",
                           *analyze_argv(identified_scan, tmp_path / "real", "--enhance", "off", *report)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert leaks(done.stdout + done.stderr) == [] and leaks(tmp_path / "real") == []
