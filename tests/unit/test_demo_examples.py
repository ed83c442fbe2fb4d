"""`sozialhub demo` without a broker: how each example is sent, the OSCI handover, the checks.

The demo itself runs in tests/integration/test_demo.py; here its plan is checked
against examples/expected.json, the OSCI content package and sidecar it hands
over are run through the offline pipeline, and its success check is fed rows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from connectors.filedrop.osci import OsciInbox
from hub import demo, portals
from hub.config import PROJECT_ROOT
from hub.core import pipeline
from hub.core.transport import osci_handover, registry
from hub.sim import osci as sim_osci

EXPECTED = json.loads((PROJECT_ROOT / "examples" / "expected.json").read_text("utf-8"))


def test_the_demo_sends_every_example_by_its_expected_transport():
    """Every inbound path is used, MTOM only for XTA examples, as expected.json says."""
    planned = {e["file"]: demo.TRANSPORTS.get(e["file"], "file") for e in EXPECTED}
    assert {e["file"]: e["transport"] for e in EXPECTED} == planned
    assert {"xta2", "fitconnect", "osci", "file"} == set(planned.values())
    assert demo.MTOM
    assert all(planned[name] == "xta2" for name in demo.MTOM)
    # Inline XTA too: both forms of an XTA message are shown.
    assert {n for n, t in planned.items() if t == "xta2"} - demo.MTOM


@pytest.fixture(scope="module")
def portal_hub(hub_context, settings):  # type: ignore[no-untyped-def]
    table = portals.load(settings.portals_file, settings.schema_dir)
    return dataclasses.replace(hub_context, portals=table)


def test_the_osci_handover_is_accepted_for_the_sozialplattform(portal_hub, now):
    """The demo's OSCI package (MIME, the payload a cid part) with its sidecar is accepted,
    recognised as the Sozialplattform by the author, and answered on channel none."""
    name = next(n for n, t in demo.TRANSPORTS.items() if t == "osci")
    payload = (demo.EXAMPLES / name).read_bytes()
    package = sim_osci.content_package(payload, filename=name)
    message_id = sim_osci.new_message_id()
    sidecar = sim_osci.metadata(
        author=demo.SOZIALPLATTFORM, reader=demo.HUB_MAILBOX, message_id=message_id
    )
    report = pipeline.check(package, portal_hub, now, transport="osci", osci_metadata=sidecar)
    expected = {
        "verdict": "accepted",
        "transport": "osci",
        "portal": "sozialplattform-nrw",
        "author": demo.SOZIALPLATTFORM,
        "transport_message_id": message_id,
        "receipt": {"channel": "none", "outcome": "accepted"},
    }
    assert expected == {k: report[k] for k in expected}
    assert ("osci", True) == (registry.sniff(package), package.lstrip().startswith(b"MIME"))
    assert osci_handover.OsciMetadata(
        demo.SOZIALPLATTFORM, demo.HUB_MAILBOX, message_id
    ) == osci_handover.parse_metadata(sidecar)


def test_hand_over_writes_a_pair_the_sub_inbox_takes(tmp_path: Path):
    """Package and sidecar land in <inbox>/osci under their names, no temporary file left."""
    inbox = tmp_path / "inbox"
    package = sim_osci.content_package(b"<a/>")
    sidecar = sim_osci.metadata(author="sop:1", reader="hub:2", message_id="bWVzc2FnZQ==")
    written = sim_osci.hand_over(inbox, "04.mime", package, sidecar)
    listing = OsciInbox(inbox, None, 1 << 20).scan()
    assert (inbox / "osci" / "04.mime", inbox / "osci" / "04.mime.json") == written
    assert [(written[0], written[1])] == [(h.package, h.metadata) for h in listing.ready]
    assert sorted(p.name for p in (inbox / "osci").iterdir()) == ["04.mime", "04.mime.json"]
    assert (package, sidecar) == (written[0].read_bytes(), written[1].read_bytes())


def test_a_bad_sidecar_value_is_refused_when_built():
    with pytest.raises(ValueError, match="sidecar"):
        sim_osci.metadata(author="sop 1", reader="hub:2", message_id="x")


def row(file: str, transport: str, mtom: bool = False, **changes: object) -> dict[str, object]:
    """A summary row as the demo makes it for an example received and answered as sent."""
    remote = transport in demo.ANSWERED_REMOTELY
    base: dict[str, object] = {
        "file": file,
        "transport": transport,
        "mtom": mtom,
        "outcome": "delivered",
        "stage": None,
        "received": {
            "transport": transport,
            "source": {"xta2": "xta", "fitconnect": "fitconnect"}.get(transport, "filedrop"),
            "mime": mtom or transport == "osci",
        },
        "receipt": {
            "channel": transport if remote else "none",
            "outcome": "accepted",
            "portal_has_it": True if remote else None,
        },
    }
    return {**base, **changes}


class TestIncomplete:
    PLAN = (
        ("a.xml", "xta2", False),
        ("m.xml", "xta2", True),
        ("o.xml", "osci", False),
        ("f.xml", "file", False),
    )

    def problem(self, file: str = "", **changes: object) -> str | None:
        rows = [row(f, t, m, **(changes if f == file else {})) for f, t, m in self.PLAN]
        planned = [demo.Example(Path(f), t, mtom=m) for f, t, m in self.PLAN]
        return demo.incomplete(rows, planned, 1.0)

    def test_all_there(self):
        assert self.problem() is None

    @pytest.mark.parametrize(
        ("file", "received"),
        [
            ("m.xml", {"transport": "xta2", "source": "xta", "mime": False}),  # MTOM came inline
            ("a.xml", {"transport": "xta2", "source": "xta", "mime": True}),
            ("o.xml", {"transport": "file", "source": "filedrop", "mime": True}),  # a bare file
            ("f.xml", None),  # no received record, and not refused at the inbox
        ],
    )
    def test_not_received_as_sent(self, file, received):
        assert file in (self.problem(file, received=received) or "")

    @pytest.mark.parametrize(
        ("file", "receipt"),
        [
            ("o.xml", None),  # no receipt record for the OSCI submission
            ("a.xml", None),
            ("a.xml", {"channel": "xta2", "outcome": "accepted", "portal_has_it": False}),
        ],
    )
    def test_without_a_receipt(self, file, receipt):
        assert file in (self.problem(file, receipt=receipt) or "")

    def test_refused_at_the_inbox_needs_no_received_record(self):
        assert self.problem("f.xml", received=None, stage="ingest", outcome="dead-lettered") is None


def test_the_summary_names_every_inbound_path():
    rows = [
        row("a", "xta2"),
        row("m", "xta2", True),
        row("o", "osci"),
        row("f", "fitconnect"),
        row("d", "file"),
    ]
    assert demo.transports_line(rows) == (  # type: ignore[arg-type]
        "1 XTA inline, 1 XTA MTOM/XOP, 1 FIT-Connect, "
        "1 OSCI package with metadata sidecar (osci sub-inbox), 1 file drop"
    )
