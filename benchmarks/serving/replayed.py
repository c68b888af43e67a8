"""Decisions replayed at a chosen CPU cost, for measuring how much deciding a latency
target leaves (benchmarks/serving/budget.py).

`replay_decisions(cost_us)` swaps the engine's deciding (`DecisionEngine._decisions`, every
stage between the Redis read and the log) for one that decides the first
`REPLAYED_USERS` users asked for real, then answers every later request with one of those
decisions, under a new decision id and the user's own id, after burning `cost_us` of the
thread's CPU time per request. Everything around the deciding runs as served: HTTP, the
key check and query parsing, the coalescer, the Redis read and the unpacking of the
user's record, the catalog's check, the log's write and the JSON. Requests asking for an
explanation are decided for real (the benchmark's visibility probe reads it).

Not a product feature: `nbo serve` workers load it only through the `sitecustomize` hook in
`benchmarks/serving/replay/`, put on their PYTHONPATH by the budget benchmark.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from decisions.engine import DecisionEngine
from decisions.outcome import Decision, DecisionRequest
from nbo.redis_plan import Plan

REPLAYED_USERS = 20
COST_VARIABLE = "BENCH_DECIDE_US"
"""The environment variable the hook reads: the CPU cost of a replayed decision, in us."""

Decided = tuple[Decision, Any]  # a decision and what the engine logs of its offers


def burn(seconds: float) -> None:
    """Keep this thread busy (holding the interpreter lock, as Python deciding would)
    until it has used `seconds` more of CPU time."""
    end = time.thread_time_ns() + int(seconds * 1e9)
    while time.thread_time_ns() < end:
        pass


def replay_decisions(cost_us: float) -> Callable[[], None]:
    """Swap the engine's deciding for replays costing `cost_us` each; returns the undo."""
    real = DecisionEngine._decisions
    decided: dict[str, Decided] = {}

    def replayed(engine: DecisionEngine, requests: Sequence[DecisionRequest], read: Any,
                 now: datetime) -> Plan[list[Decided]]:
        if len(decided) < REPLAYED_USERS or any(request.explain for request in requests):
            pairs: list[Decided] = yield from real(engine, requests, read, now)
            for request, pair in zip(requests, pairs, strict=True):
                if len(decided) < REPLAYED_USERS and not request.explain:
                    decided.setdefault(request.user_id, pair)
            return pairs
        yield from engine.candidates()  # the catalog check every call makes
        burn(cost_us * len(requests) / 1e6)
        known = list(decided.values())
        picks = [decided.get(request.user_id)
                 or known[zlib.crc32(request.user_id.encode()) % len(known)]
                 for request in requests]
        return [(replace(decision, user_id=request.user_id, decision_id=uuid.uuid4().hex),
                 offers) for request, (decision, offers) in zip(requests, picks, strict=True)]

    DecisionEngine._decisions = replayed  # type: ignore[assignment,method-assign]

    def undo() -> None:
        DecisionEngine._decisions = real  # type: ignore[method-assign]

    return undo
