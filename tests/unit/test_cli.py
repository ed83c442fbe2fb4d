"""The ``sozialhub`` command line: the ``check`` contract, exit statuses, ``topics strimzi``.

Driven by examples/expected.json, which the integration demo test reuses: one
entry per example submission with its verdict, reason code and the offices it is
routed to (in route order; the first is the report's ``office``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from pathlib import Path

import pytest

from hub import __version__, cli, offices, topics
from hub.config import PROJECT_ROOT
from hub.core.errors import Reason
from hub.core.xsozial import NAMESPACE
from tests import clitools

EXAMPLES = PROJECT_ROOT / "examples" / "submissions"
EXPECTED = json.loads((PROJECT_ROOT / "examples" / "expected.json").read_text("utf-8"))
EXAMPLE_FILES = sorted(p for p in EXAMPLES.iterdir() if p.is_file())
ACCEPTED_FILES = [EXAMPLES / e["file"] for e in EXPECTED if e["verdict"] == "accepted"]
REJECTED_FILES = [EXAMPLES / e["file"] for e in EXPECTED if e["verdict"] == "rejected"]
REPORT_KEYS = {
    "file",
    "verdict",
    "reason",
    "transport",
    "payload",
    "author",
    "reader",
    "leika",
    "ars",
    "office",
    "vendor",
}
REASON_CODES = frozenset(r.value for r in Reason)  # documented, stable (docs/reason-codes.md)
# Elements whose text is personal data in the example submissions.
PERSONAL_ELEMENTS = re.compile(rb"<(vorname|familienname|geburtsdatum|strasse)>([^<]+)</")


def personal_values() -> list[str]:
    """Every name, birth date and street in the example submissions, plus fixed canaries."""
    found = {"Mustermann", "1985-04-12", "root:x:0:0"}  # root:x:0:0: /etc/passwd behind the XXE
    for path in EXAMPLE_FILES:
        matches = PERSONAL_ELEMENTS.finditer(path.read_bytes())
        found.update(m.group(2).decode("utf-8") for m in matches)
    return sorted(found)


# The machine's SOZIALHUB_*/KAFKA_* variables must not leak into config.load(); main()
# configures structlog and the root logger for the current stderr, which is undone after.
_clean_environment = clitools.clear_environment
_logging_restored = clitools.logging_restored


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    _clean_environment(monkeypatch)
    with _logging_restored():
        yield


def run(argv: list[str]) -> int:
    """The exit status the console script would have: main()'s result or argparse's SystemExit."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


@dataclasses.dataclass(frozen=True)
class Run:
    status: int
    out: str
    err: str

    @property
    def reports(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines()]


def captured_run(argv: list[str]) -> Run:
    """run() with stdout and stderr captured, for module-scoped fixtures (capsys is per test)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        _logging_restored(),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        _clean_environment(patch)
        status = run(argv)
    return Run(status, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def json_run() -> Run:
    """`check --json` on every example, once for the module."""
    return captured_run(["check", "--json", *map(str, EXAMPLE_FILES)])


@pytest.fixture(scope="module")
def text_run() -> Run:
    """`check` without --json on every example, once for the module."""
    return captured_run(["check", *map(str, EXAMPLE_FILES)])


@pytest.fixture(scope="module")
def report_of(json_run) -> dict[str, dict]:
    """The --json report of each example by file name."""
    return {Path(r["file"]).name: r for r in json_run.reports}


def check_json(capsys, files: list[Path]) -> tuple[int, list[dict]]:
    status = run(["check", "--json", *map(str, files)])
    out = capsys.readouterr().out
    return status, [json.loads(line) for line in out.splitlines()]


EXPECTED_BY_FILE = {e["file"]: e for e in EXPECTED}


class TestExpectationsFile:
    def test_covers_every_example_exactly_once(self):
        """examples/expected.json names each file under examples/submissions exactly once."""
        expected = sorted(p.name for p in EXAMPLE_FILES)
        actual = sorted(e["file"] for e in EXPECTED)
        assert expected == actual

    @pytest.mark.parametrize("entry", EXPECTED, ids=lambda e: e["file"])
    def test_entry_is_consistent(self, entry):
        """Accepted: offices, no reason. Rejected: a reason code, no offices. A demo transport.

        Every office has the channel of its vendor in the office table.
        """
        accepted = entry["verdict"] == "accepted"
        table = offices.load(PROJECT_ROOT / "config" / "offices.yml", PROJECT_ROOT / "schemas")
        expected = (
            {"file", "verdict", "reason", "offices", "transport", "channels"},
            True,
            True,
            True,
            accepted,
            {o: table.vendors[table.office(o).vendor].channel for o in entry["offices"]},
        )
        actual = (
            set(entry),
            entry["verdict"] in ("accepted", "rejected"),
            entry["transport"] in ("xta2", "fitconnect", "osci", "file"),
            entry["reason"] is None if accepted else entry["reason"] in REASON_CODES,
            bool(entry["offices"]),
            entry["channels"],
        )
        assert expected == actual


class TestCheckJson:
    def test_one_json_object_per_line_per_file(self, json_run):
        """`check --json` prints one JSON object per line per file, in argument order."""
        expected = [str(p) for p in EXAMPLE_FILES]
        actual = [r["file"] for r in json_run.reports if isinstance(r, dict)]
        assert expected == actual

    def test_every_report_has_the_contract_keys(self, json_run):
        """Each report has file, verdict, reason, transport, payload, author, reader, leika, ..."""
        expected = [set()] * len(EXAMPLE_FILES)
        actual = [REPORT_KEYS - set(r) for r in json_run.reports]
        assert expected == actual

    @pytest.mark.parametrize("name", sorted(EXPECTED_BY_FILE))
    def test_verdict_reason_and_offices(self, report_of, name):
        """Each example gets the verdict, reason code and offices examples/expected.json states."""
        report, entry = report_of[name], EXPECTED_BY_FILE[name]
        expected = (
            entry["verdict"],
            entry["reason"],
            entry["offices"],
            entry["offices"][0] if entry["offices"] else None,
        )
        actual = (
            report["verdict"],
            report["reason"],
            [r["office"] for r in report["routes"]],
            report["office"],
        )
        assert expected == actual

    @pytest.mark.parametrize("name", sorted(EXPECTED_BY_FILE))
    def test_field_types(self, report_of, name):
        """Reason null or a stable code; transport filedrop; leika a list; vendor iff accepted."""
        report = report_of[name]
        accepted = report["verdict"] == "accepted"
        expected = (True, "file", True, accepted)
        actual = (
            report["reason"] is None if accepted else report["reason"] in REASON_CODES,
            report["transport"],
            isinstance(report["leika"], list),
            report["vendor"] is not None,
        )
        assert expected == actual

    @pytest.mark.parametrize("name", sorted(EXPECTED_BY_FILE))
    def test_payload_is_the_root_namespace(self, report_of, name):
        """payload is the root namespace (XSozial-basis or Wohngeld), or null if unparsable."""
        namespaces = {"07-": None, "09-": "urn:sozialhub:payload:wohngeld-antrag:1"}
        expected = namespaces.get(name[:3], NAMESPACE)
        assert expected == report_of[name]["payload"]

    def test_reader_rule(self, report_of):
        """The Herten AsylbLG example is routed by its reader, not by the applicant's area."""
        report = report_of["05-asylblg-herten-reader.xml"]
        expected = [("soa-herten", "openprosoz", "reader")]
        actual = [(r["office"], r["vendor"], r["rule"]) for r in report["routes"]]
        assert expected == actual

    def test_two_offices_for_one_household(self, report_of):
        """Wohngeld plus BuT in Marl go to the Wohngeldstelle and the BuT office, each with its vendor."""
        report = report_of["02-wohngeld-but-marl.xml"]
        expected = [("wgs-marl", "lammkom"), ("but-marl", "oksozius")]
        actual = [(r["office"], r["vendor"]) for r in report["routes"]]
        assert expected == actual

    def test_report_does_not_depend_on_the_other_files(self, capsys, report_of):
        """A file checked alone gets the same report as in the batch: ids are content-addressed."""
        path = EXAMPLES / "02-wohngeld-but-marl.xml"
        _, (alone,) = check_json(capsys, [path])
        expected = report_of[path.name]
        assert expected == alone


class TestExitStatus:
    def test_all_accepted_is_zero(self, capsys):
        """Exit 0 when every file is accepted."""
        status, reports = check_json(capsys, ACCEPTED_FILES)
        expected = (0, len(ACCEPTED_FILES))
        assert expected == (status, len(reports))

    def test_any_rejected_is_one(self, json_run, text_run):
        """Exit 1 when any file is rejected, others accepted or not, with or without --json."""
        expected = (1, 1)
        assert expected == (json_run.status, text_run.status)

    @pytest.mark.parametrize("path", REJECTED_FILES, ids=lambda p: p.name)
    def test_each_rejected_file_is_one(self, capsys, path):
        """Exit 1 for a rejected example after an accepted one."""
        status, reports = check_json(capsys, [ACCEPTED_FILES[0], path])
        expected = (1, ["accepted", "rejected"])
        assert expected == (status, [r["verdict"] for r in reports])

    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param([], id="no-subcommand"),
            pytest.param(["check"], id="check-without-files"),
            pytest.param(["check", "--json"], id="check-json-without-files"),
            pytest.param(["check", "--bogus", "x.xml"], id="unknown-option"),
            pytest.param(["--bogus"], id="unknown-global-option"),
            pytest.param(["frobnicate"], id="unknown-subcommand"),
            pytest.param(["topics"], id="topics-without-subcommand"),
            pytest.param(["topics", "frobnicate"], id="unknown-topics-subcommand"),
        ],
    )
    def test_usage_errors_are_two(self, capsys, argv):
        """Usage errors exit 2 with a message on stderr and nothing on stdout."""
        status = run(argv)
        captured = capsys.readouterr()
        expected = (2, "", True)
        assert expected == (status, captured.out, "error" in captured.err)

    def test_nonexistent_file_is_two(self, capsys, tmp_path):
        """A file that does not exist is a usage error (2), named on stderr; nothing is checked."""
        missing = tmp_path / "nope.xml"
        status = run(["check", "--json", str(ACCEPTED_FILES[0]), str(missing)])
        captured = capsys.readouterr()
        expected = (2, "", True)
        assert expected == (status, captured.out, str(missing) in captured.err)

    def test_directory_is_two(self, capsys, tmp_path):
        """A directory is not a file to check: usage error."""
        status = run(["check", str(tmp_path)])
        expected = (2, "")
        assert expected == (status, capsys.readouterr().out)


class TestTextMode:
    def test_one_line_per_file(self, text_run):
        """Without --json, check prints one line per file: its path, a colon and the verdict."""
        expected = [f"{p}: {e['verdict']}" for p, e in zip(EXAMPLE_FILES, EXPECTED, strict=True)]
        actual = [" ".join(line.split(" ", 2)[:2]) for line in text_run.out.splitlines()]
        assert expected == actual

    def test_lines_name_offices_or_reason(self, text_run):
        """An accepted line names its offices; a rejected line names its reason code."""
        lines = text_run.out.splitlines()
        expected = [True] * len(EXAMPLE_FILES)
        actual = []
        for path, line in zip(EXAMPLE_FILES, lines, strict=True):
            entry = EXPECTED_BY_FILE[path.name]
            wanted = entry["offices"] if entry["verdict"] == "accepted" else [entry["reason"]]
            actual.append(all(w in line for w in wanted))
        assert expected == actual


class TestNoPersonalData:
    @pytest.mark.parametrize("mode", ["json_run", "text_run"])
    def test_output_never_contains_personal_data(self, request, mode):
        """Names, birth dates and streets from the inputs never reach stdout or stderr."""
        result = request.getfixturevalue(mode)
        output = result.out + result.err
        expected: list[str] = []
        actual = [value for value in personal_values() if value in output]
        assert expected == actual

    def test_the_scan_finds_the_examples_personal_data(self):
        """Guard for the test above: the extraction really finds the example applicants."""
        expected = {"Erika", "Mustermann", "1985-04-12", "Kurfürstenwall", "Kovalenko"}
        assert expected <= set(personal_values())


class TestOtherCommands:
    def test_version(self, capsys):
        """--version prints the package version and exits 0."""
        status = run(["--version"])
        expected = (0, f"sozialhub {__version__}")
        assert expected == (status, capsys.readouterr().out.strip())

    def test_topics_strimzi_prints_the_rendered_resources(self, capsys, settings):
        """`topics strimzi` prints exactly hub.topics.strimzi() for the default settings."""
        status = run(["topics", "strimzi"])
        expected = (0, topics.strimzi(topics.load(settings), settings.topic_prefix))
        assert expected == (status, capsys.readouterr().out)

    def test_topics_strimzi_output_file(self, capsys, settings, tmp_path):
        """`topics strimzi --output` writes the same text to the file and nothing to stdout."""
        target = tmp_path / "topics.yaml"
        status = run(
            ["topics", "strimzi", "--cluster", "c1", "--namespace", "ns1", "--output", str(target)]
        )
        rendered = topics.strimzi(topics.load(settings), settings.topic_prefix, "c1", "ns1")
        expected = (0, "", rendered)
        assert expected == (status, capsys.readouterr().out, target.read_text("utf-8"))

    def test_configuration_error_is_two(self, capsys, monkeypatch):
        """An invalid setting is a usage error (2); the message names the setting, not the value."""
        monkeypatch.setenv("SOZIALHUB_LOG_FORMAT", "xml-canary-77")
        status = run(["check", str(ACCEPTED_FILES[0])])
        err = capsys.readouterr().err
        expected = (2, True, False)
        assert expected == (status, "log_format" in err, "canary" in err)
