"""The ``sozialhub`` command line (also ``python -m hub``).

Exit status: 0 success; 1 a check found rejected input, the demo/benchmark
did not finish, a ``dlq`` command found no such dead letter or refused,
``gate decide`` denied the transfer, or ``consent revoke`` found no such record; 2
usage or configuration error; 3 topic drift remains after ``topics apply``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from hub import __version__, config
from hub import logging as hub_logging
from hub.broker import Terminated, cluster
from hub.config import ConfigError, Settings

if TYPE_CHECKING:
    from hub.core.dlq import Listed, SourceCheck, SourceState
    from hub.core.pipeline import HubContext

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 3
DEMO_TIMEOUT = 240.0  # `sozialhub demo`; a scenario has its own default


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sozialhub", description="Kafka integration hub for municipal social administration"
    )
    parser.add_argument("--version", action="version", version=f"sozialhub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="run the whole hub on the example submissions and print a summary"
    )
    demo.add_argument(
        "--examples",
        type=Path,
        default=None,
        help="directory of submissions (default: examples/submissions)",
    )
    demo.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where inbox/outbox go (default: var/demo-<time>)",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for all outcomes (default 240; 600 with --scenario)",
    )
    demo.add_argument("--json", action="store_true", help="one JSON object per submission")
    demo.add_argument(
        "--scenario",
        choices=("ukraine-2022",),
        default=None,
        help="instead of the examples: a Rechtskreiswechsel scenario (docs/rechtskreiswechsel.md)",
    )
    demo.add_argument(
        "--count",
        type=int,
        default=None,
        help="people in the scenario (default 500; only with --scenario)",
    )

    run = commands.add_parser("run", help="run a worker against KAFKA_BOOTSTRAP_SERVERS")
    run.add_argument("--no-inbound", action="store_true", help="do not watch the inbox directory")
    run.add_argument(
        "--no-outbound", action="store_true", help="do not write deliveries to the outbox"
    )
    run.add_argument(
        "--ephemeral-signing-key",
        action="store_true",
        help="sign receipts with a throw-away key (development only; otherwise a key is required)",
    )
    run.add_argument(
        "--development-pseudonym-key",
        action="store_true",
        help="make person pseudonyms with the public development key (development only; "
        "otherwise SOZIALHUB_PSEUDONYM_KEYS_FILE is required)",
    )
    run.add_argument(
        "--development-audit-kek",
        action="store_true",
        help="seal recorded inputs with the public development KEK (development only; otherwise "
        "SOZIALHUB_AUDIT_KEK_FILE; without either no inputs are recorded for audit replay)",
    )

    check = commands.add_parser("check", help="the whole pure pipeline on files, offline")
    check.add_argument("--json", action="store_true", help="one JSON object per line per file")
    check.add_argument(
        "--transport",
        choices=("auto", "file", "xta2", "osci", "fitconnect"),
        default="auto",
        help="how the file arrived: auto (default) recognises XTA, OSCI and FIT-Connect bundles",
    )
    check.add_argument(
        "--osci-meta",
        type=Path,
        metavar="META.json",
        help="the OSCI client's metadata sidecar for one OSCI package "
        "(default: FILE.json beside each package, as in the osci sub-inbox)",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")

    explain = commands.add_parser(
        "route", help="explain the routing decision for one file, step by step, offline"
    )
    explain.add_argument("--json", action="store_true", help="the report as one JSON object")
    explain.add_argument(
        "--transport",
        choices=("auto", "file", "xta2", "osci", "fitconnect"),
        default="auto",
        help="how the file arrived (default: recognise it)",
    )
    explain.add_argument(
        "--osci-meta",
        type=Path,
        metavar="META.json",
        help="the OSCI client's metadata sidecar (default: FILE.json beside the package)",
    )
    explain.add_argument("file", type=Path, metavar="FILE")

    gate = commands.add_parser(
        "gate", help="the transfer gate offline, on files (for data protection officers)"
    )
    gate_commands = gate.add_subparsers(dest="gate_command", required=True, parser_class=_Parser)
    gate_decide = gate_commands.add_parser(
        "decide", help="decide one transfer request; the decision as one JSON object"
    )
    gate_decide.add_argument("--request", type=Path, required=True, metavar="REQUEST.json")
    gate_decide.add_argument("--consents", type=Path, required=True, metavar="EVENTS.jsonl")
    gate_decide.add_argument("--policy", type=Path, required=True, metavar="POLICY.yml")
    gate_decide.add_argument(
        "--at", type=_gate_time, default=None, metavar="ISO-TIME", help="decide at (default: now)"
    )

    _consent_parser(commands)

    asyncapi = commands.add_parser(
        "asyncapi", help="write the AsyncAPI 3 document of the vendor topics (stdout or --output)"
    )
    asyncapi.add_argument("--output", type=Path, default=None, metavar="FILE")

    receipts = commands.add_parser("receipts", help="portal receipts on the configured cluster")
    receipt_commands = receipts.add_subparsers(
        dest="receipts_command", required=True, parser_class=_Parser
    )
    resend = receipt_commands.add_parser(
        "resend",
        help="put a submission's newest XTA or FIT-Connect receipt on submissions.receipts again "
        "(after a portal refused it for good and the cause is fixed), or with --refused every "
        "submission's whose portal has only a refusal; audited; prints JSON",
    )
    resend.add_argument("submission_id", metavar="SUBMISSION_ID", nargs="?", default=None)
    resend.add_argument(
        "--refused",
        action="store_true",
        help="every submission whose last receipt decision in the audit log is 'refused'",
    )
    resend.add_argument(
        "--since",
        type=_dlq_time,
        default=None,
        metavar="TIME",
        help="with --refused: refused from this ISO 8601 time on (UTC)",
    )
    resend.add_argument(
        "--channel",
        choices=("xta2", "fitconnect"),
        default=None,
        help="with --refused: only this channel's receipts",
    )
    resend.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    dead = commands.add_parser(
        "dlq", help="dead letters on the configured cluster: list, show, retry"
    )
    dead_commands = dead.add_subparsers(dest="dlq_command", required=True, parser_class=_Parser)
    dlq_list = dead_commands.add_parser("list", help="one line per dead letter, never payload")
    dlq_list.add_argument("--stage", help="only this stage (ingest, intake, route, map, ...)")
    dlq_list.add_argument("--reason", help="only this reason code (XSD, ROUTE_UNRESOLVED, ...)")
    dlq_list.add_argument("--since", type=_dlq_time, help="only from this ISO 8601 time on (UTC)")
    dlq_list.add_argument("--limit", type=_positive, help="only the N most recent")
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_show = dead_commands.add_parser("show", help="a dead letter, its original and audit trail")
    dlq_show.add_argument("dead_letter_id", metavar="DEAD_LETTER_ID")
    dlq_show.add_argument("--json", action="store_true")
    dlq_retry = dead_commands.add_parser(
        "retry", help="re-produce the original record unchanged to the topic it came from"
    )
    dlq_retry.add_argument("dead_letter_id", metavar="DEAD_LETTER_ID")
    dlq_retry.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    audit = commands.add_parser(
        "audit", help="the tamper-evident audit log: verify, replay, report, erase, rewrap"
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    audit_verify = audit_commands.add_parser(
        "verify", help="check the hash chain and the signed checkpoints; exit 1 on any finding"
    )
    audit_verify.add_argument(
        "--trust",
        type=Path,
        action="append",
        default=[],
        metavar="CERT.pem",
        help="certificate(s) checkpoints may be signed with (default: the hub's signing certificates)",
    )
    audit_verify.add_argument("--partition", type=int, help="only this partition of audit.chain")
    audit_verify.add_argument("--from-offset", type=int, help="from this audit.chain offset on")
    audit_verify.add_argument("--to-offset", type=int, help="up to this offset (exclusive)")
    audit_verify.add_argument("--json", action="store_true", help="the whole report as JSON")
    _audit_erase_parser(audit_commands)
    _audit_rewrap_parser(audit_commands)
    _audit_report_parser(audit_commands)
    _audit_replay_parser(audit_commands)

    topic = commands.add_parser("topics", help="topics as code: plan, apply, strimzi")
    topic_commands = topic.add_subparsers(
        dest="topics_command", required=True, parser_class=_Parser
    )
    plan = topic_commands.add_parser("plan", help="show what apply would change")
    plan.add_argument("--json", action="store_true")
    apply = topic_commands.add_parser("apply", help="create missing topics, report drift")
    apply.add_argument("--json", action="store_true")
    apply.add_argument(
        "--delete-unknown", action="store_true", help="delete undeclared topics under the prefix"
    )
    strimzi = topic_commands.add_parser("strimzi", help="write Strimzi KafkaTopic resources")
    strimzi.add_argument("--cluster", default="sozialhub")
    strimzi.add_argument("--namespace", default="sozialhub")
    strimzi.add_argument("--output", type=Path, default=None)

    change = commands.add_parser(
        "rechtskreiswechsel",
        help="Rechtskreiswechsel events: plan an event's fan-out, submit it to the cluster",
    )
    change_commands = change.add_subparsers(
        dest="rechtskreiswechsel_command", required=True, parser_class=_Parser
    )
    change_plan = change_commands.add_parser(
        "plan",
        help="who would get what for one event, as JSON lines: the transfer gate with the "
        "policy and the consents of --consents (none without); --offline: data-free only",
    )
    change_plan.add_argument("event", type=Path, metavar="EVENT.json")
    change_plan.add_argument(
        "--at", type=_dlq_time, default=None, metavar="TIME", help="decide as of (default: now)"
    )
    change_plan.add_argument(
        "--subscriptions",
        type=Path,
        default=None,
        metavar="FILE",
        help="subscriptions file (default: subscriptions.yml beside the office table)",
    )
    change_plan.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="transfer policy (default: the configured one)",
    )
    change_plan.add_argument(
        "--consents",
        type=Path,
        default=None,
        metavar="FILE",
        help="consent events or ledgers, JSON lines (as on consent.events / consent.ledger)",
    )
    change_plan.add_argument(
        "--offline",
        action="store_true",
        help="the built-in offline gate instead: every category refused, data-free messages only",
    )
    change_submit = change_commands.add_parser(
        "submit",
        help="check one event and produce it to rechtskreiswechsel.events on the configured "
        "cluster, keyed by its pseudonym; prints where it landed",
    )
    change_submit.add_argument("event", type=Path, metavar="EVENT.json")
    change_subscribe = change_commands.add_parser(
        "subscribe",
        help="add a subscription at run time (one entry as in subscriptions.yml, YAML or JSON) to "
        "rechtskreiswechsel.subscriptions; the workers use it for every later event",
    )
    change_subscribe.add_argument("subscription", type=Path, metavar="SUBSCRIPTION.yml")
    change_unsubscribe = change_commands.add_parser(
        "unsubscribe", help="end a run-time subscription (a tombstone); configured ones stay"
    )
    change_unsubscribe.add_argument("subscription_id", metavar="ID")
    change_commands.add_parser(
        "subscriptions", help="every subscription the workers use now, configured and run-time"
    )

    bench = commands.add_parser(
        "bench",
        help="throughput and latency through the running pipeline, or one stage in-process",
    )
    bench.add_argument(
        "--stage",
        choices=("pipeline", "ingest", "mapping", "gate", "fanout", "audit"),
        default="pipeline",
        help="pipeline: through a worker and the broker; "
        "ingest: the intake stage alone against its raw parse/validate/sign costs, no Kafka; "
        "mapping: each vendor mapping alone against a JSON passthrough, no Kafka; "
        "gate: transfer gate decisions and Rechtskreiswechsel fan-out plans against "
        "JSON passthroughs, no Kafka; "
        "fanout: Rechtskreiswechsel events through a worker and the broker; "
        "audit: audit verify on a chained block against a hash-and-decode passthrough, no Kafka",
    )
    bench.add_argument(
        "--n", type=int, default=2000, help="number of submissions (pipeline) or events (fanout)"
    )
    bench.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="seconds per measurement (ingest, mapping, gate, audit)",
    )
    bench.add_argument(
        "--profile", action="store_true", help="also print a cProfile of intake (ingest)"
    )
    bench.add_argument("--json", action="store_true")
    return parser


def _consent_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    from hub.consents import parse_list  # noqa: PLC0415

    consent = commands.add_parser(
        "consent", help="the consent registry on the configured cluster: grant, revoke, show"
    )
    actions = consent.add_subparsers(dest="consent_command", required=True, parser_class=_Parser)
    person = _Parser(add_help=False)
    person.add_argument(
        "--person-id-kind",
        default="idnr",
        metavar="KIND",
        help="idnr (default), rvnr or local:<office id>",
    )
    person.add_argument(
        "--person-id",
        "--person",
        dest="person_id",
        required=True,
        metavar="ID",
        help="the person's identifier, '-' to read it from standard input; "
        "only its pseudonym is used, never printed",
    )
    person.add_argument(
        "--development-key",
        action="store_true",
        help="without SOZIALHUB_PSEUDONYM_KEYS_FILE use the public development key (tests only)",
    )
    declared = _Parser(add_help=False)
    declared.add_argument("--channel", required=True, choices=("portal", "paper", "oral"))
    declared.add_argument(
        "--scan-ref", default=None, help="where the signed form's scan is (paper)"
    )
    declared.add_argument("--note", default=None, help="who took it, when, on which text (oral)")

    grant = actions.add_parser(
        "grant", parents=[person, declared], help="record a consent; prints its event as JSON"
    )
    grant.add_argument("--from", dest="from_office", required=True, metavar="OFFICE")
    grant.add_argument("--to", required=True, type=parse_list, metavar="OFFICE[,OFFICE]")
    grant.add_argument("--purpose", required=True)
    grant.add_argument("--categories", required=True, type=parse_list, metavar="CAT[,CAT]")
    grant.add_argument("--text-version", required=True)
    grant.add_argument(
        "--sensitive", action="store_true", help="explicit consent to health or youth-welfare data"
    )
    grant.add_argument(
        "--collected-at", type=_gate_time, default=None, metavar="ISO-TIME", help="default: now"
    )
    grant.add_argument(
        "--valid-from",
        type=_gate_time,
        default=None,
        metavar="ISO-TIME",
        help="default: collected-at",
    )
    grant.add_argument(
        "--valid-until",
        type=_gate_time,
        default=None,
        metavar="ISO-TIME",
        help="default: until revoked",
    )

    revoke = actions.add_parser(
        "revoke", parents=[person, declared], help="record a revocation; prints its event as JSON"
    )
    revoke.add_argument("--record", required=True, type=_record_id, metavar="RECORD_ID")
    revoke.add_argument(
        "--effective-at", type=_gate_time, default=None, metavar="ISO-TIME", help="default: now"
    )

    actions.add_parser(
        "show", parents=[person], help="the person's records and their status now, as JSON"
    )


def _pseudonym(text: str) -> str:
    from hub.core.pseudonym import PSEUDONYM  # noqa: PLC0415

    if PSEUDONYM.fullmatch(text) is None:
        raise argparse.ArgumentTypeError("a pseudonym is 'psn-<key id>-<32 hex>'")
    return text


def _audit_erase_parser(audit_commands: argparse._SubParsersAction[_Parser]) -> None:
    erase = audit_commands.add_parser(
        "erase",
        help="erase a person's recorded inputs (docs/audit-vault.md): tombstone every key of the "
        "person on audit.keys, audit the erasure; prints what was erased as JSON",
    )
    erase.add_argument(
        "--person", type=_pseudonym, default=None, metavar="PSEUDONYM", help="psn-<key id>-<32 hex>"
    )
    erase.add_argument(
        "--identifier",
        default=None,
        metavar="KIND:VALUE",
        help="the person's identifier (idnr:…, rvnr:…, local:<office or portal>:…; '-' reads it "
        "from standard input): erases under every pseudonym of the key ring; never printed",
    )
    erase.add_argument(
        "--development-key",
        action="store_true",
        help="without SOZIALHUB_PSEUDONYM_KEYS_FILE use the public development key (tests only)",
    )
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _audit_rewrap_parser(audit_commands: argparse._SubParsersAction[_Parser]) -> None:
    rewrap = audit_commands.add_parser(
        "rewrap",
        help="KEK rotation (docs/audit-vault.md): wrap every person key on audit.keys that an "
        "older KEK wraps with the current KEK, so the older one can be dropped; prints JSON",
    )
    rewrap.add_argument(
        "--dry-run", action="store_true", help="only report what would be re-wrapped"
    )
    rewrap.add_argument(
        "--development-kek",
        action="store_true",
        help="without SOZIALHUB_AUDIT_KEK_FILE use the public development KEK (tests only)",
    )


def _audit_replay_parser(audit_commands: argparse._SubParsersAction[_Parser]) -> None:
    replay = audit_commands.add_parser(
        "replay",
        help="re-run the recorded inputs of the submissions dispatched in a time window through "
        "today's pipeline and compare with what was delivered (docs/audit-replay.md); exit 1 on "
        "any difference",
    )
    replay.add_argument(
        "--from",
        dest="from_time",
        type=_dlq_time,
        required=True,
        metavar="TIME",
        help="window start, ISO 8601 (2026-11-05 or 2026-11-05T12:00Z; no offset: UTC)",
    )
    replay.add_argument(
        "--to",
        dest="to_time",
        type=_dlq_time,
        required=True,
        metavar="TIME",
        help="window end (exclusive), ISO 8601",
    )
    replay.add_argument(
        "--development-kek",
        action="store_true",
        help="without SOZIALHUB_AUDIT_KEK_FILE open inputs with the public development KEK "
        "(tests only)",
    )
    replay.add_argument("--json", action="store_true", help="the whole summary as JSON")


def _audit_report_parser(audit_commands: argparse._SubParsersAction[_Parser]) -> None:
    report = audit_commands.add_parser(
        "report",
        help="one person's transparency report from the audit log (docs/transparency-report.md): "
        "every transfer with categories, purpose, legal basis and consents; prints JSON",
    )
    report.add_argument(
        "--person",
        type=_pseudonym,
        action="append",
        default=None,
        metavar="PSEUDONYM",
        help="psn-<key id>-<32 hex>; repeat for the person's pseudonyms under older keys",
    )
    report.add_argument(
        "--identifier",
        default=None,
        metavar="KIND:VALUE",
        help="the person's identifier (idnr:…, rvnr:…, local:<office or portal>:…; '-' reads it "
        "from standard input): reports under every pseudonym of the key ring; never printed",
    )
    report.add_argument(
        "--development-key",
        action="store_true",
        help="without SOZIALHUB_PSEUDONYM_KEYS_FILE use the public development key (tests only)",
    )
    report.add_argument(
        "--html", type=Path, default=None, metavar="FILE", help="also write the page for the person"
    )
    report.add_argument(
        "--retention-days",
        type=_positive,
        default=None,
        metavar="N",
        help="list transfers of the last N days (default: 731, two years)",
    )


def _record_id(text: str) -> str:
    from hub.core.consent import RECORD_ID  # noqa: PLC0415

    if RECORD_ID.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            "a consent record id is 'cns-' and 32 lowercase hex digits"
        )
    return text


def _osci_metadata(package: Path, explicit: Path | None) -> bytes | None:
    """An OSCI package's metadata sidecar: ``--osci-meta``, else ``<package>.json`` if it exists.

    Read bounded (one byte more than a sidecar may have, so a larger one is refused).
    """
    from hub.core.transport.osci_handover import MAX_METADATA_BYTES  # noqa: PLC0415

    sidecar = explicit if explicit is not None else Path(f"{package}.json")
    if not sidecar.is_file():
        return None
    with sidecar.open("rb") as handle:
        return handle.read(MAX_METADATA_BYTES + 1)


def _offline_report(
    run: Callable[..., dict[str, Any]],
    path: Path,
    hub: HubContext,
    settings: Settings,
    transport: str,
    osci_meta: Path | None,
) -> dict[str, Any]:
    """``check`` or ``route_report`` on one file, read bounded, its transport recognised."""
    from hub.core.pipeline import transport_message_id_of_name  # noqa: PLC0415
    from hub.core.transport.registry import sniff  # noqa: PLC0415

    with path.open("rb") as handle:
        data = handle.read(settings.max_submission_bytes + 1)
    how = sniff(data) if transport == "auto" else transport
    return {
        "file": str(path),
        **run(
            data,
            hub,
            dt.datetime.now(dt.UTC),
            transport=how,
            transport_message_id=transport_message_id_of_name(path.name) if how == "file" else None,
            osci_metadata=_osci_metadata(path, osci_meta) if how == "osci" else None,
        ),
    }


def _check(
    settings: Settings,
    files: Sequence[Path],
    *,
    as_json: bool,
    transport: str = "auto",
    osci_meta: Path | None = None,
) -> int:
    from hub import context  # noqa: PLC0415
    from hub.core.pipeline import check  # noqa: PLC0415

    missing = [f for f in files if not f.is_file()]
    if osci_meta is not None and not osci_meta.is_file():
        missing.append(osci_meta)
    if missing:
        for f in missing:
            print(f"sozialhub check: no such file: {f}", file=sys.stderr)
        return EXIT_USAGE
    if osci_meta is not None and len(files) != 1:
        print("sozialhub check: --osci-meta belongs to exactly one FILE", file=sys.stderr)
        return EXIT_USAGE
    hub = context.build(settings)
    status = EXIT_OK
    for path in files:
        report = _offline_report(check, path, hub, settings, transport, osci_meta)
        if report["verdict"] != "accepted":
            status = EXIT_REJECTED
        if as_json:
            print(json.dumps(report, ensure_ascii=False))
        else:
            where = f" at {report['path']}" if report.get("path") else ""
            detail = (
                f"-> {', '.join(r['office'] + ' (' + r['vendor'] + ')' for r in report['routes'])}"
                if report["verdict"] == "accepted"
                else f"{report['reason']}{where}"
            )
            print(f"{path}: {report['verdict']} {detail}")
    return status


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from hub import topics  # noqa: PLC0415

    specs = topics.load(settings)
    if args.topics_command == "strimzi":
        text = topics.strimzi(specs, settings.topic_prefix, args.cluster, args.namespace)
        if args.output:
            args.output.write_text(text, "utf-8")
        else:
            sys.stdout.write(text)
        return EXIT_OK
    with cluster(settings) as active:
        if args.topics_command == "plan":
            result = topics.plan(specs, topics.observe(active, specs), active.topic_prefix)
        else:
            result = topics.apply(active, specs, delete_unknown=args.delete_unknown)
    body = result.as_dict(settings.topic_prefix)
    if args.json:
        print(json.dumps(body))
    else:
        verb = "would create" if args.topics_command == "plan" else "created"
        for name in body["create"]:
            print(f"{verb}: {name}")
        for drift in body["drift"]:
            print(
                f"drift: {drift['topic']} {drift['setting']}: declared {drift['declared']}, actual {drift['actual']}"
            )
        for name in body["unknown"]:
            deleted = args.topics_command == "apply" and args.delete_unknown
            print(f"{'deleted' if deleted else 'undeclared'}: {name}")
        print(f"in sync: {len(body['in_sync'])} topic(s)")
    return EXIT_DRIFT if body["drift"] else EXIT_OK


def _dlq_time(text: str) -> dt.datetime:
    from hub.core.dlq import iso_time  # noqa: PLC0415

    try:
        return iso_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or time: {text!r} (e.g. 2026-11-05 or 2026-11-05T12:00Z)"
        ) from None


def _gate_time(text: str) -> dt.datetime:
    from hub.gate import parse_time  # noqa: PLC0415

    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time with an offset: {text!r} (e.g. 2026-11-05T12:00:00Z)"
        ) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


def _dlq(settings: Settings, args: argparse.Namespace) -> int:  # noqa: PLR0911 - one per outcome
    from hub import dlq  # noqa: PLC0415
    from hub.core import dlq as dead  # noqa: PLC0415

    name = f"sozialhub dlq {args.dlq_command}"
    if settings.embedded:
        print(
            f"{name}: KAFKA_BOOTSTRAP_SERVERS is not set; the embedded broker keeps data in memory "
            "only, so there are no dead letters to inspect",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.dlq_command != "list" and not dead.is_dead_letter_id(args.dead_letter_id):
        print(f"{name}: a dead-letter id is 'dlq-' and 32 lowercase hex digits", file=sys.stderr)
        return EXIT_USAGE
    if args.dlq_command == "retry" and not args.yes and not sys.stdin.isatty():
        print(f"{name}: not a terminal; pass --yes to re-produce without asking", file=sys.stderr)
        return EXIT_USAGE
    try:
        letters, foreign = dlq.dead_letters(settings)
        if foreign:
            print(f"{name}: skipped {foreign} record(s) that are not dead letters", file=sys.stderr)
        listed = dead.collect(letters)
        if args.dlq_command == "list":
            selection = dead.Filter(args.stage, args.reason, args.since)
            for item in dead.select(listed, selection, args.limit):
                print(json.dumps(dead.summary(item)) if args.json else dead.summary_line(item))
            return EXIT_OK
        found = [i for i in listed if i.letter.dead_letter_id == args.dead_letter_id]
        if not found:
            print(f"{name}: no dead letter {args.dead_letter_id}", file=sys.stderr)
            return EXIT_REJECTED
        item = found[0]
        state = dlq.fetch(settings, item.letter.source)
        checked = dead.check_source(item.letter, state)
        if args.dlq_command == "show":
            events = dlq.audit_events(settings, item.letter.submission_id)
            trail = dead.trail(item.letter, events)
            body = dead.report(item, state, checked, trail, str(settings.archive_dir))
            print(json.dumps(body) if args.json else "\n".join(dead.report_lines(body)))
            return EXIT_OK
        return _dlq_retry(settings, item, state, checked, confirmed=args.yes)
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        print(f"{name}: {message}", file=sys.stderr)
        return status


def _dlq_retry(
    settings: Settings, item: Listed, state: SourceState, checked: SourceCheck, *, confirmed: bool
) -> int:
    from hub import dlq  # noqa: PLC0415
    from hub.core import dlq as dead  # noqa: PLC0415

    letter, source = item.letter, item.letter.source
    if checked.refusal is not None or source is None:
        print(f"sozialhub dlq retry: refused: {checked.refusal}", file=sys.stderr)
        return EXIT_REJECTED
    where = f"{source.topic} partition {source.partition} offset {source.offset}"
    print(dead.summary_line(item))
    if not confirmed:
        try:
            answer = input(f"re-produce {where} unchanged? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("sozialhub dlq retry: not confirmed; nothing was sent", file=sys.stderr)
            return EXIT_REJECTED
    produced = dlq.reproduce(settings, source, state)
    print(
        f"re-produced {where} as offset {produced.offset} "
        f"(same key and value, {len(state.value or b'')} bytes, digest {checked.digest})"
    )
    emit = dead.retried(letter, produced, dt.datetime.now(dt.UTC))
    logged = dlq.send_audit(settings, emit, done=f"re-produced {where}")
    print(
        f"audit: {dead.STAGE}/{dead.RETRIED} for {letter.dead_letter_id} "
        f"on {logged.topic} partition {logged.partition} offset {logged.offset}"
    )
    stage = dead.next_stage(source.topic, settings.topic_prefix) or "its consumer"
    print(
        f"{stage} processes it again. Ids are deterministic: a delivery already made counts as a "
        f"duplicate, a repeated rejection repeats {letter.dead_letter_id}."
    )
    return EXIT_OK


def _route(
    settings: Settings,
    path: Path,
    *,
    as_json: bool,
    transport: str,
    osci_meta: Path | None = None,
) -> int:
    from hub import context  # noqa: PLC0415
    from hub.core.pipeline import route_report  # noqa: PLC0415

    for needed in (path, osci_meta):
        if needed is not None and not needed.is_file():
            print(f"sozialhub route: no such file: {needed}", file=sys.stderr)
            return EXIT_USAGE
    hub = context.build(settings)
    report = _offline_report(route_report, path, hub, settings, transport, osci_meta)
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"{path}: {report['submission_id']}")
        for number, step in enumerate(report["steps"], start=1):
            facts = ", ".join(
                f"{k}={v}" for k, v in step.items() if k not in ("step", "outcome", "explanation")
            )
            print(
                f"  {number}. {step['step']}: {step['outcome']}" + (f" ({facts})" if facts else "")
            )
        if report["verdict"] == "routed":
            for r in report["routes"]:
                print(
                    f"  -> LeiKa {r['leika']}: {r['office']} by {r['rule']} rule; "
                    f"vendor {r['vendor']}, {r['format']} over {r['channel']}"
                )
        else:
            where = f" at {report['path']}" if report["path"] else ""
            print(f"  rejected at {report['stage']}: {report['reason']}{where}")
            if report["explanation"]:
                print(f"  why: {report['explanation']}")
    return EXIT_OK if report["verdict"] == "routed" else EXIT_REJECTED


def _read_event(settings: Settings, path: Path, command: str) -> tuple[int, bytes | None]:
    """The file's bytes, or the exit status after a usage or size problem was reported."""
    if not path.is_file():
        print(f"sozialhub rechtskreiswechsel {command}: no such file: {path}", file=sys.stderr)
        return EXIT_USAGE, None
    with path.open("rb") as handle:
        data = handle.read(settings.max_record_bytes + 1)
    if len(data) > settings.max_record_bytes:
        print(
            json.dumps({"file": str(path), "verdict": "rejected", "reason": "SIZE", "path": None})
        )
        return EXIT_REJECTED, None
    return EXIT_OK, data


def _rechtskreiswechsel_plan(settings: Settings, args: argparse.Namespace) -> int:
    from hub import gate as gate_files  # noqa: PLC0415
    from hub import offices, policy, subscriptions  # noqa: PLC0415
    from hub.core import consent  # noqa: PLC0415
    from hub.core.errors import Rejection  # noqa: PLC0415
    from hub.core.fanout import Gate, fan_out, offline_gate, plan_line  # noqa: PLC0415
    from hub.core.rechtskreiswechsel import check_event  # noqa: PLC0415
    from hub.core.rkw_stages import real_gate  # noqa: PLC0415

    path: Path = args.event
    status, data = _read_event(settings, path, "plan")
    if data is None:
        return status
    table = offices.load(settings.offices_file, settings.schema_dir)
    subscribed = subscriptions.load(
        args.subscriptions or subscriptions.default_path(settings), settings.schema_dir, table
    )
    now = args.at or dt.datetime.now(dt.UTC)
    decide: Gate = offline_gate
    if not args.offline:
        # The worker's gate: hub.core.gate.decide with the policy and the person's consent
        # states (here from a file, in the worker from the consent index).
        events = gate_files.read_events(args.consents) if args.consents else []
        try:
            folded = tuple(consent.fold(events).values())
        except Rejection as exc:  # pragma: no cover - read_events validated every event
            raise ConfigError(f"consents {args.consents}: {exc}") from None
        rules = policy.from_settings(settings, args.policy)

        def states(person: str) -> tuple[consent.ConsentState, ...]:
            return tuple(s for s in folded if s.person == person)

        decide = real_gate(states, rules, now)
    try:
        event = check_event(data, table)
    except Rejection as rejection:
        refused = {"reason": rejection.reason.value, "path": rejection.path}
        print(json.dumps({"file": str(path), "verdict": "rejected", **refused}))
        return EXIT_REJECTED
    planned = fan_out(event, subscribed, table, decide, now)
    for message in planned.messages:
        print(json.dumps({"file": str(path), **plan_line(message)}, ensure_ascii=False))
    return EXIT_OK


def _rechtskreiswechsel_submit(settings: Settings, path: Path) -> int:
    from hub import dlq, offices  # noqa: PLC0415
    from hub.core.errors import Rejection  # noqa: PLC0415
    from hub.core.rechtskreiswechsel import check_event, encode_event  # noqa: PLC0415
    from hub.core.rkw_stages import EVENTS  # noqa: PLC0415

    status, data = _read_event(settings, path, "submit")
    if data is None:
        return status
    table = offices.load(settings.offices_file, settings.schema_dir)
    try:
        event = check_event(data, table)
    except Rejection as rejection:
        refused = {"reason": rejection.reason.value, "path": rejection.path}
        print(json.dumps({"file": str(path), "verdict": "rejected", **refused}))
        return EXIT_REJECTED
    # Re-encoded: fields the hub does not know never reach the topic.
    try:
        where = dlq.produce(
            settings, settings.topic(EVENTS), event.person.encode("ascii"), encode_event(event)
        )
    except dlq.DlqError as exc:
        print(f"sozialhub rechtskreiswechsel submit: {exc}", file=sys.stderr)
        return dlq.EXIT_CLUSTER_FAILED
    line = {"file": str(path), "verdict": "submitted", "event_id": event.event_id}
    where_fields = {"topic": where.topic, "partition": where.partition, "offset": where.offset}
    print(json.dumps({**line, **where_fields}))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one return per command
    args = build_parser().parse_args(argv)
    try:
        settings = config.load()
    except ConfigError as exc:
        print(f"sozialhub: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    hub_logging.configure(settings.log_level, settings.log_format)
    log = structlog.get_logger("hub.cli")
    try:
        if args.command == "check":
            return _check(
                settings,
                args.files,
                as_json=args.json,
                transport=args.transport,
                osci_meta=args.osci_meta,
            )
        if args.command == "route":
            return _route(
                settings,
                args.file,
                as_json=args.json,
                transport=args.transport,
                osci_meta=args.osci_meta,
            )
        if args.command == "gate":
            from hub import gate  # noqa: PLC0415

            return gate.run(settings, args.request, args.consents, args.policy, args.at)
        if args.command == "asyncapi":
            from hub import asyncapi as contract  # noqa: PLC0415
            from hub import topics  # noqa: PLC0415

            text = contract.render(settings, topics.load(settings))
            if args.output is None:
                sys.stdout.write(text)
            else:
                args.output.write_text(text, encoding="utf-8")
            return EXIT_OK
        if args.command == "topics":
            return _topics(settings, args)
        if args.command == "dlq":
            return _dlq(settings, args)
        if args.command == "receipts":
            from hub import receipts_cli  # noqa: PLC0415

            return receipts_cli.run_resend(settings, args)
        if args.command == "audit" and args.audit_command == "verify":
            from hub import audit as audit_log  # noqa: PLC0415

            return audit_log.run_verify(settings, args)
        if args.command == "audit" and args.audit_command == "erase":
            from hub import audit_vault_cli  # noqa: PLC0415

            return audit_vault_cli.run_erase(settings, args)
        if args.command == "audit" and args.audit_command == "rewrap":
            from hub import audit_vault_cli  # noqa: PLC0415

            return audit_vault_cli.run_rewrap(settings, args)
        if args.command == "audit" and args.audit_command == "report":
            from hub import audit_report_cli  # noqa: PLC0415

            return audit_report_cli.report_command(settings, args)
        if args.command == "audit" and args.audit_command == "replay":
            from hub import audit_replay_cli  # noqa: PLC0415

            return audit_replay_cli.run(settings, args)
        if args.command == "consent":
            from hub import consents  # noqa: PLC0415

            return consents.run(settings, args)
        if args.command == "rechtskreiswechsel" and args.rechtskreiswechsel_command in (
            "subscribe",
            "unsubscribe",
            "subscriptions",
        ):
            from hub import subscriptions_cli  # noqa: PLC0415

            if args.rechtskreiswechsel_command == "subscribe":
                return subscriptions_cli.subscribe(settings, args.subscription)
            if args.rechtskreiswechsel_command == "unsubscribe":
                return subscriptions_cli.unsubscribe(settings, args.subscription_id)
            return subscriptions_cli.listing(settings)
        if args.command == "rechtskreiswechsel" and args.rechtskreiswechsel_command == "submit":
            return _rechtskreiswechsel_submit(settings, args.event)
        if args.command == "rechtskreiswechsel":
            return _rechtskreiswechsel_plan(settings, args)
        if args.command == "demo" and args.scenario is not None:
            from hub import demo_rkw  # noqa: PLC0415

            if args.count is not None and args.count < 1:
                print("sozialhub demo: --count must be at least 1", file=sys.stderr)
                return EXIT_USAGE

            return demo_rkw.run(
                settings,
                args.workdir,
                demo_rkw.TIMEOUT if args.timeout is None else args.timeout,
                count=demo_rkw.DEFAULT_COUNT if args.count is None else args.count,
                as_json=args.json,
            )
        if args.command == "demo":
            if args.count is not None:
                print("sozialhub demo: --count needs --scenario", file=sys.stderr)
                return EXIT_USAGE
            from hub import demo  # noqa: PLC0415

            return demo.run(
                settings,
                args.examples or demo.EXAMPLES,
                args.workdir,
                DEMO_TIMEOUT if args.timeout is None else args.timeout,
                as_json=args.json,
            )
        if args.command == "run":
            if settings.embedded:
                print(
                    "sozialhub run: KAFKA_BOOTSTRAP_SERVERS is not set (use `sozialhub demo` for the embedded broker)",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            if settings.signing_key_file is None and not args.ephemeral_signing_key:
                print(
                    "sozialhub run: set SOZIALHUB_SIGNING_KEY_FILE and SOZIALHUB_SIGNING_CERT_FILE "
                    "(or pass --ephemeral-signing-key for development)",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            if settings.pseudonym_keys_file is None and not args.development_pseudonym_key:
                print(
                    "sozialhub run: set SOZIALHUB_PSEUDONYM_KEYS_FILE "
                    "(or pass --development-pseudonym-key for development)",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            from hub.stream import worker  # noqa: PLC0415
            from hub.stream.app import WorkerOptions  # noqa: PLC0415

            return worker.run(
                settings,
                WorkerOptions(
                    inbound=not args.no_inbound,
                    outbound=not args.no_outbound,
                    development_audit_kek=args.development_audit_kek,
                ),
            )
        if args.command == "bench" and args.stage == "ingest":
            from hub import bench_ingest  # noqa: PLC0415

            return bench_ingest.run(
                settings, args.seconds, as_json=args.json, with_profile=args.profile
            )
        if args.command == "bench" and args.stage == "mapping":
            from hub import bench_mapping  # noqa: PLC0415

            return bench_mapping.run(settings, args.seconds, as_json=args.json)
        if args.command == "bench" and args.stage == "gate":
            from hub import bench_gate  # noqa: PLC0415

            return bench_gate.run(settings, args.seconds, as_json=args.json)
        if args.command == "bench" and args.stage == "audit":
            from hub import bench_audit  # noqa: PLC0415

            return bench_audit.run(settings, args.seconds, as_json=args.json)
        if args.command == "bench" and args.stage == "fanout":
            from hub import bench_fanout  # noqa: PLC0415

            return bench_fanout.run(settings, args.n, as_json=args.json)
        if args.command == "bench":
            from hub import bench  # noqa: PLC0415

            return bench.run(settings, args.n, as_json=args.json)
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc))  # noqa: TRY400 - the message names settings, not values
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    return EXIT_USAGE
