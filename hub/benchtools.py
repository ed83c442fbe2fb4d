"""The timing loop the ``sozialhub bench`` stages share: interleaved slices, rotated order."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass
class Tally:
    """How often an operation ran, and for how long in all."""

    count: int = 0
    seconds: float = 0.0


def run_for(operation: Callable[[], object], seconds: float, tally: Tally) -> None:
    """Run ``operation`` until ``seconds`` have passed (at least once); add to ``tally``."""
    started = time.perf_counter()
    deadline = started + seconds
    count = 0
    while True:
        operation()
        count += 1
        finished = time.perf_counter()
        if finished >= deadline:
            break
    tally.count += count
    tally.seconds += finished - started


def interleaved(
    operations: Mapping[str, Callable[[], object]],
    seconds: float,
    *,
    slice_seconds: float,
    warmup_seconds: float,
) -> dict[str, Tally]:
    """About ``seconds`` for each operation, in slices, the order rotated after each round.

    Each operation is first warmed up for ``warmup_seconds`` (at most ``seconds``),
    untallied. Slicing the time and rotating the order spreads a change in machine
    load over all operations alike.
    """
    for operation in operations.values():
        run_for(operation, min(warmup_seconds, seconds), Tally())
    tallies = {name: Tally() for name in operations}
    order = list(operations)
    step = min(slice_seconds, seconds)
    while any(t.seconds < seconds for t in tallies.values()):
        for name in order:
            left = seconds - tallies[name].seconds
            if left > 0:
                run_for(operations[name], min(step, left), tallies[name])
        order = order[1:] + order[:1]
    return tallies
