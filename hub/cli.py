"""The ``sozialhub`` command line (also ``python -m hub``).

Exit status: 0 success; 1 a check found rejected input, or the demo/benchmark
did not finish; 2 usage or configuration error; 3 topic drift remains after
``topics apply``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from hub import __version__, config
from hub import logging as hub_logging
from hub.broker import Terminated, cluster
from hub.config import ConfigError, Settings

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 3


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
        "--timeout", type=float, default=240.0, help="seconds to wait for all outcomes"
    )
    demo.add_argument("--json", action="store_true", help="one JSON object per submission")

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

    check = commands.add_parser("check", help="the whole pure pipeline on files, offline")
    check.add_argument("--json", action="store_true", help="one JSON object per line per file")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")

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

    bench = commands.add_parser("bench", help="throughput and latency through the running pipeline")
    bench.add_argument("--n", type=int, default=2000, help="number of submissions")
    bench.add_argument("--json", action="store_true")
    return parser


def _check(settings: Settings, files: Sequence[Path], *, as_json: bool) -> int:
    from hub import context  # noqa: PLC0415
    from hub.core.pipeline import check  # noqa: PLC0415

    missing = [f for f in files if not f.is_file()]
    if missing:
        for f in missing:
            print(f"sozialhub check: no such file: {f}", file=sys.stderr)
        return EXIT_USAGE
    hub = context.build(settings)
    status = EXIT_OK
    for path in files:
        with path.open("rb") as handle:
            data = handle.read(settings.max_submission_bytes + 1)
        report = {"file": str(path), **check(data, hub, dt.datetime.now(dt.UTC))}
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
            return _check(settings, args.files, as_json=args.json)
        if args.command == "topics":
            return _topics(settings, args)
        if args.command == "demo":
            from hub import demo  # noqa: PLC0415

            return demo.run(
                settings,
                args.examples or demo.EXAMPLES,
                args.workdir,
                args.timeout,
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
            from hub.stream import worker  # noqa: PLC0415
            from hub.stream.app import WorkerOptions  # noqa: PLC0415

            return worker.run(
                settings, WorkerOptions(inbound=not args.no_inbound, outbound=not args.no_outbound)
            )
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
