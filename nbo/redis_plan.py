"""Redis work written once, run by a blocking client or on the event loop.

A plan is a generator that yields the `Step`s it needs executed (a batch of commands, sent
in one round trip, optionally as a MULTI/EXEC transaction) and is sent back their replies.
It holds the logic (which commands, what their replies mean, retries) and never touches
a connection; `drive` runs it through an executor that does the I/O: on the event loop,
`nbo.async_redis.PipelinedConnection`, so request handlers keep the loop free while Redis
answers; elsewhere `run`, with redis-py's blocking client.

A failed step is thrown into the plan as the `redis.RedisError` it raised, at the `yield`
that asked for it, so a plan catches Redis failures where it would have caught them around
a blocking call. Replies are as the server sent them, except HGETALL, which both executors
return as a dict (bytes to bytes); redis-py's blocking client also turns some replies
into booleans or floats (SET, EXPIRE, HSETNX, HINCRBYFLOAT), so plans read those with
`bool()` or `float()`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import redis
from redis.exceptions import NoScriptError

T = TypeVar("T")
Argument = str | bytes | int | float
Command = tuple[Argument, ...]


@dataclass(frozen=True)
class Step:
    """Commands to run in one round trip (a transaction if asked); with no commands, a
    pause of `pause_s` seconds (a retry's back-off) that leaves the event loop free."""

    commands: Sequence[Command] = ()
    transaction: bool = False
    pause_s: float = 0.0

    @classmethod
    def one(cls, *command: Argument) -> Step:
        return cls((command,))


Plan = Generator[Step, list[Any], T]


@dataclass(frozen=True)
class LuaScript:
    """A script run by its SHA1, sent in full only when the server does not know it."""

    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()

    def call(self, keys: Sequence[str], args: Sequence[Argument]) -> Plan[Any]:
        return (yield from self.call_many([(keys, args)]))[0]

    def call_many(self, calls: Sequence[tuple[Sequence[str], Sequence[Argument]]]
                  ) -> Plan[list[Any]]:
        """The script run once per (keys, args), all in one round trip (each call on its
        own keys, so each may go to its own Cluster slot)."""
        try:
            return (yield Step([("EVALSHA", self.sha, len(keys), *keys, *args)
                                for keys, args in calls]))
        except NoScriptError:
            return (yield Step([("EVAL", self.source, len(keys), *keys, *args)
                                for keys, args in calls]))


def execute(client: redis.Redis, step: Step) -> list[Any]:
    """One step with a blocking client: its replies, or the first error raised."""
    if not step.commands:
        time.sleep(step.pause_s)
        return []
    pipe = client.pipeline(transaction=step.transaction)
    for command in step.commands:
        pipe.execute_command(*command)  # type: ignore[no-untyped-call]
    return pipe.execute()


class Executor(Protocol):
    """Runs one step: its replies, or the `redis.RedisError` it failed with."""

    async def execute(self, step: Step) -> list[Any]: ...


Outcome = list[Any] | redis.RedisError | None  # a step's replies or error; None: not started


def resume(plan: Plan[Any], outcome: Outcome) -> Step:
    """The plan's next step, given how its last one went: its replies, or the error it
    failed with (thrown into the plan at its `yield`); None starts the plan. When the plan
    returns, StopIteration carries its value."""
    if outcome is None:
        return next(plan)
    if isinstance(outcome, redis.RedisError):
        return plan.throw(outcome)
    return plan.send(outcome)


async def drive(executor: Executor, plan: Plan[T]) -> T:
    """Run a plan to its end, each step through `executor`; the plan's return value."""
    outcome: Outcome = None
    while True:
        try:
            step = resume(plan, outcome)
        except StopIteration as finished:
            result: T = finished.value
            return result
        try:
            outcome = await executor.execute(step)
        except redis.RedisError as error:
            outcome = error


def timed(plan: Plan[T], report: Callable[[float, float], None]) -> Plan[T]:
    """`plan` as it is, reporting when it ends the seconds it spent computing and the
    seconds it waited for its steps (on the event loop, other requests' turns included)."""
    computing = waiting = 0.0
    outcome: Outcome = None
    while True:
        began = time.perf_counter()
        try:
            step = resume(plan, outcome)
        except StopIteration as finished:
            report(computing + time.perf_counter() - began, waiting)
            result: T = finished.value
            return result
        paused = time.perf_counter()
        computing += paused - began
        try:
            outcome = yield step
        except redis.RedisError as error:
            outcome = error
        waiting += time.perf_counter() - paused


class _Blocking:
    """A blocking `execute` (one step's replies) as an executor: its `execute` never
    suspends."""

    def __init__(self, execute: Callable[[Step], list[Any]]) -> None:
        self._execute = execute

    async def execute(self, step: Step) -> list[Any]:
        return self._execute(step)


def run(client: redis.Redis, plan: Plan[T]) -> T:
    """Run a plan to its end with a blocking client, no event loop."""
    return run_blocking(plan, partial(execute, client))


def run_blocking(plan: Plan[T], execute: Callable[[Step], list[Any]]) -> T:
    """Run a plan to its end on this thread, each step through `execute`, which returns
    its replies (or raises its error) when they are there: nothing in `drive` suspends, so
    its coroutine finishes at the first `send`."""
    driving = drive(_Blocking(execute), plan)
    try:
        driving.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    driving.close()
    raise RuntimeError("a plan run with a blocking executor was suspended")
