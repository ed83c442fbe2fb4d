"""``sozialhub demo``: the whole hub on a laptop, end to end.

Starts the embedded broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), applies
``topics.yml``, starts a worker process, drops the example submissions into its
inbox, follows the audit log until every submission is delivered or
dead-lettered, prints a summary and stops everything again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any

import structlog

from hub import topics
from hub.broker import cluster, free_port
from hub.config import PROJECT_ROOT, Settings
from hub.core.outcomes import OutcomeTracker
from hub.core.records import submission_id
from hub.kafka import follow_outcomes
from hub.supervise import WorkerProcess

log = structlog.get_logger(__name__)

EXAMPLES = PROJECT_ROOT / "examples" / "submissions"


def drop(files: list[Path], inbox: Path) -> None:
    """Put files into the inbox the way a writer should: temporary name, then rename."""
    inbox.mkdir(parents=True, exist_ok=True)
    for source in files:
        temporary = inbox / f".{source.name}.part"
        shutil.copyfile(source, temporary)
        temporary.replace(inbox / source.name)


def summary_rows(
    files: dict[str, Path], tracker: OutcomeTracker, outbox: Path
) -> list[dict[str, Any]]:
    rows = []
    for sid, path in files.items():
        outcome = tracker.get(sid)
        deliveries = []
        for did, routed in sorted(outcome.routed.items(), key=lambda item: item[1].office or ""):
            written = sorted(outbox.glob(f"*/*/{did}.*")) if did in outcome.delivered else []
            output = str(written[0].relative_to(outbox.parent)) if written else None
            deliveries.append({"office": routed.office, "vendor": routed.vendor, "output": output})
        rows.append(
            {
                "file": path.name,
                "submission_id": sid,
                "outcome": outcome.outcome,
                "reason": outcome.reason,
                "stage": outcome.rejected.stage if outcome.rejected else None,
                "offices": [d["office"] for d in deliveries],
                "outputs": [d["output"] for d in deliveries if d["output"]],
                "deliveries": deliveries,
            }
        )
    return rows


def print_summary(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    print()
    print(f"{'submission':38} {'outcome':14} {'reason':18} {'office':24} output")
    print("-" * 130)
    for row in rows:
        lines = row["deliveries"] or [{"office": "-", "output": "-"}]
        for index, delivery in enumerate(lines):
            head = (
                (row["file"], row["outcome"], row["reason"] or "-") if index == 0 else ("", "", "")
            )
            print(
                f"{head[0]:38} {head[1]:14} {head[2]:18} {delivery['office']:24} {delivery['output'] or '-'}"
            )


def run(
    settings: Settings,
    examples: Path = EXAMPLES,
    workdir: Path | None = None,
    timeout: float = 240.0,
    *,
    as_json: bool = False,
) -> int:
    started = time.monotonic()
    files = sorted(p for p in examples.iterdir() if p.is_file() and p.suffix == ".xml")
    if not files:
        print(f"no example submissions in {examples}")
        return 2
    by_id = {submission_id(p.read_bytes()): p for p in files}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    root = (workdir or Path("var") / f"demo-{stamp}").resolve()
    embedded = settings.embedded
    with cluster(settings) as active, contextlib.ExitStack() as stack:
        settings = active.in_workspace(root).with_overrides(web_port=free_port())
        if not embedded:
            # Never feed the examples into a real pipeline: own topics, own group, removed afterwards.
            settings = settings.with_overrides(topic_prefix=f"sozialhub-demo-{stamp.lower()}.")
            stack.callback(topics.delete_prefixed, settings)
        specs = topics.load(settings)
        plan = topics.apply(settings, specs)
        log.info("demo.topics_applied", created=len(plan.create), drift=len(plan.drift))
        worker = WorkerProcess(settings, log_file=root / "worker.log").start()
        stack.callback(worker.stop)
        log.info(
            "demo.worker_started", pid=worker.pid, web_port=settings.web_port, workdir=str(root)
        )
        drop(files, settings.inbox_dir)
        expected = set(by_id)
        tracker = follow_outcomes(
            settings, expected, timeout, lambda t: t.all_final(expected) or not worker.alive()
        )
        rows = summary_rows(by_id, tracker, settings.outbox_dir)
        print_summary(rows, as_json=as_json)
        pending = [r["file"] for r in rows if r["outcome"] == "pending"]
        elapsed = time.monotonic() - started
        if pending:
            print(
                f"\n{len(pending)} submission(s) without an outcome after {elapsed:.0f} s: {', '.join(pending)}"
            )
            print(f"worker log: {root / 'worker.log'}")
            return 1
        delivered = sum(r["outcome"] == "delivered" for r in rows)
        print(
            f"\n{len(rows)} submissions: {delivered} delivered, {len(rows) - delivered} dead-lettered "
            f"in {elapsed:.1f} s. Output under {root}."
        )
        if embedded:
            print("The embedded broker kept everything in memory; it is gone when the demo ends.")
    return 0
