"""``sozialhub gate decide``: the transfer gate offline, on files, for data protection officers.

Reads a transfer request (JSON, ``schemas/hub/transfer-request.schema.json``),
consent events (JSON lines: ``sozialhub.consent-event/1`` events or
``sozialhub.consent-ledger/1`` ledgers, as on the consent topic) and a policy
file (``config/transfer-policy.yml``, checked against the configured office and
portal tables), and prints the decision as one JSON object: the same function
the worker calls (:func:`hub.core.gate.decide`). Exit 0 allow or
allow-minimised, 1 deny, 2 usage (a file that cannot be read or is invalid:
the message names the file, line and field, never a value).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema

from hub import policy as policy_file
from hub.config import ConfigError, Settings
from hub.core import consent
from hub.core.errors import Rejection
from hub.core.gate import decide, decision_to_json
from hub.core.transfer import TransferRequest

EXIT_ALLOW, EXIT_DENY, EXIT_USAGE = 0, 1, 2


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time with an offset (``Z`` or ``+01:00``); ``ValueError`` otherwise."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a time needs an offset, e.g. 2026-11-02T10:00:00Z")
    return moment


def read_request(path: Path, schema_dir: Path) -> TransferRequest:
    schema = json.loads((schema_dir / "hub" / "transfer-request.schema.json").read_text("utf-8"))
    try:
        body: Any = json.loads(path.read_bytes())
    except (OSError, ValueError):
        raise ConfigError(f"request {path} cannot be read as JSON") from None
    try:
        jsonschema.validate(body, schema)
        at = parse_time(body["at"])
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"request {path} invalid at {location}") from None
    except ValueError:
        raise ConfigError(f"request {path} invalid at at") from None
    return TransferRequest(
        request_id=body["request_id"],
        person=body["person"],
        from_office=body["from_office"],
        to_office=body["to_office"],
        purpose=body["purpose"],
        categories=frozenset(body["categories"]),
        at=at,
        from_rechtskreis=body.get("from_rechtskreis"),
        to_rechtskreis=body.get("to_rechtskreis"),
    )


def read_events(path: Path) -> list[consent.ConsentEvent]:
    """Every event in a JSON-lines file of events and ledgers (blank lines skipped)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        raise ConfigError(f"consents {path} cannot be read") from None
    events: list[consent.ConsentEvent] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.extend(consent.decode_any(line))
        except Rejection as exc:
            raise ConfigError(f"consents {path} line {number}: {exc}") from None
    return events


def run(
    settings: Settings,
    request_file: Path,
    consents_file: Path,
    policy_path: Path,
    at: dt.datetime | None,
) -> int:
    """Print the decision as one JSON object; the exit status says allow, deny or usage."""
    request = read_request(request_file, settings.schema_dir)
    events = read_events(consents_file)
    try:
        states = consent.fold(events)
    except Rejection as exc:  # pragma: no cover - read_events validated every event
        raise ConfigError(f"consents {consents_file}: {exc}") from None
    rules = policy_file.from_settings(settings, policy_path)
    now = at or dt.datetime.now(dt.UTC)
    decision = decide(request, states.values(), rules, now)
    report = decision_to_json(decision)
    print(json.dumps(report, ensure_ascii=False, sort_keys=True))  # noqa: T201 - the command's output
    sys.stdout.flush()
    return EXIT_ALLOW if decision.allowed else EXIT_DENY
