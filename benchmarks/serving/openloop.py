"""Open-loop HTTP/1.1 load at a fixed offered rate, timed from each request's scheduled send.

Request i is due at `start + i / rate` whatever happened to earlier ones; a due request
goes out on an idle keep-alive connection or waits in a queue for one. Its latency runs
from the *scheduled* time, so a server stall shows up as the queueing it causes instead of
being hidden by a client that slowed down with it (coordinated omission).

The client is cheap per request: pre-built request bytes, a bare `asyncio.Protocol` per
connection with a minimal response parser, callbacks instead of a task per request, uvloop
when installed. It reports its own timing error (how late it woke up for due requests)
and CPU use, so a client that falls behind is said to, not blamed on the server.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

_END_OF_HEAD = b"\r\n\r\n"
_NO_BODY = frozenset({204, 304})
FAILED = -1
"""Status recorded for a request whose connection broke before its response."""
TIMED_OUT = -2
"""Status recorded for a request without a response when the step's drain time ran out."""


# -- pure parts: the schedule, the response parser, the summary ----------------------------

def schedule_ns(rate: float, seconds: float) -> np.ndarray:
    """Send offsets (ns from the start) of `rate x seconds` requests evenly on a fixed clock."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("rate and seconds must be positive")
    count = int(round(rate * seconds))
    return np.round(np.arange(count, dtype=np.float64) * (1e9 / rate)).astype(np.int64)


@dataclass(frozen=True)
class Schedule:
    """A fixed offered rate: a warm-up, then the measured window, back to back."""

    rate: float
    warmup_s: float
    measured_s: float

    @property
    def offsets_ns(self) -> np.ndarray:
        return schedule_ns(self.rate, self.warmup_s + self.measured_s)

    @property
    def count(self) -> int:
        return int(round(self.rate * (self.warmup_s + self.measured_s)))


@dataclass(frozen=True)
class Parsed:
    """One complete HTTP/1.1 response found in a buffer."""

    status: int
    body_start: int
    end: int  # offset just past the response: where the next one begins


class BadResponse(ValueError):
    """Bytes that are not an HTTP/1.1 response this client understands."""


def parse_response(buffer: bytes | bytearray, start: int = 0) -> Parsed | None:
    """The response starting at `start`, or None while it is incomplete.

    Knows Content-Length bodies, chunked bodies and the statuses without a body; a
    response to HEAD, or one delimited by closing the connection, is not expected here.
    """
    head_end = buffer.find(_END_OF_HEAD, start)
    if head_end < 0:
        return None
    head = bytes(buffer[start:head_end]).lower()
    line_end = head.find(b"\r\n")
    status_line = head if line_end < 0 else head[:line_end]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"http/1.") or not parts[1].isdigit():
        raise BadResponse(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    status = int(parts[1])
    body_start = head_end + len(_END_OF_HEAD)
    if status in _NO_BODY or 100 <= status < 200:
        return Parsed(status, body_start, body_start)
    length = _header(head, b"content-length")
    if length is not None:
        if not length.isdigit():
            raise BadResponse(f"bad content-length {length!r}")
        end = body_start + int(length)
        return Parsed(status, body_start, end) if len(buffer) >= end else None
    encoding = _header(head, b"transfer-encoding")
    if encoding is not None and encoding.endswith(b"chunked"):
        chunked_end = _chunked_end(buffer, body_start)
        return None if chunked_end is None else Parsed(status, body_start, chunked_end)
    raise BadResponse("a response with neither content-length nor chunked encoding")


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of a header in a lower-cased response head, or None."""
    at = head.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    value_start = at + len(name) + 3
    value_end = head.find(b"\r\n", value_start)
    return head[value_start:None if value_end < 0 else value_end].strip()


def _chunked_end(buffer: bytes | bytearray, at: int) -> int | None:
    """Offset past a chunked body starting at `at`, or None while incomplete."""
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as error:
            raise BadResponse(f"bad chunk size {size_text[:20]!r}") from error
        if size == 0:  # the last chunk, then trailers up to an empty line
            trailers_end = buffer.find(_END_OF_HEAD, line_end)
            if buffer[line_end:line_end + 4] == _END_OF_HEAD:
                return line_end + 4
            return None if trailers_end < 0 else trailers_end + 4
        at = line_end + 2 + size + 2
        if len(buffer) < at:
            return None


def nearest_rank(values_ms: np.ndarray, q: float) -> float:
    """The q-th percentile by nearest rank: the smallest value with q% of values at or below."""
    ordered = np.sort(values_ms)
    rank = max(int(np.ceil(q / 100 * len(ordered))), 1)
    return float(ordered[rank - 1])


def latency_summary(values_ns: np.ndarray) -> dict[str, float]:
    """p50/p95/p99/p99.9/max and mean in milliseconds (empty dict for no values)."""
    if len(values_ns) == 0:
        return {}
    values_ms = values_ns.astype(np.float64) / 1e6
    summary = {f"p{q:g}": round(nearest_rank(values_ms, q), 3) for q in (50, 95, 99, 99.9)}
    return summary | {"max": round(float(values_ms.max()), 3),
                      "mean": round(float(values_ms.mean()), 3)}


@dataclass(frozen=True)
class Timings:
    """What the client recorded for one step, in ns on one clock (perf_counter_ns)."""

    schedule: Schedule
    start_ns: int
    offsets_ns: np.ndarray  # scheduled send of each request, from start
    sent_ns: np.ndarray  # when written to a socket (0: never sent)
    done_ns: np.ndarray  # when its response was complete (0: never)
    status: np.ndarray  # HTTP status, FAILED or TIMED_OUT
    wake_lag_ns: np.ndarray  # per wake-up of the clock: how late for its first due request
    marked: np.ndarray  # response body held the marker (e.g. a degraded decision)
    ended_ns: int  # when the client stopped waiting for responses


def summarize(timings: Timings) -> dict[str, Any]:
    """Rates, errors and latency percentiles over the measured window (after the warm-up).

    Latency runs from the scheduled send; a request without an answer counts at the time
    the client gave up on it (a lower bound), so overload raises the percentiles instead
    of vanishing from them. `service_ms` runs from the actual send, for comparison.
    """
    warmup_ns = int(timings.schedule.warmup_s * 1e9)
    span_ns = int(timings.schedule.measured_s * 1e9)
    window_s = timings.schedule.measured_s
    measured = (timings.offsets_ns >= warmup_ns) & (timings.offsets_ns < warmup_ns + span_ns)
    window_start = timings.start_ns + warmup_ns
    scheduled = timings.start_ns + timings.offsets_ns[measured]
    status = timings.status[measured]
    done = timings.done_ns[measured]
    sent = timings.sent_ns[measured]
    answered = done > 0
    finished = np.where(answered, done, timings.ended_ns)
    window_end = window_start + span_ns
    in_window = (timings.done_ns >= window_start) & (timings.done_ns < window_end)
    ok_in_window = in_window & (timings.status > 0) & (timings.status < 400)
    errors: dict[str, int] = {}
    for code in np.unique(status):
        if code >= 400 or code < 0:
            name = {FAILED: "connection", TIMED_OUT: "timeout"}.get(int(code), str(int(code)))
            errors[name] = int((status == code).sum())
    was_sent = sent > 0
    sent_in_window = (timings.sent_ns >= window_start) & (timings.sent_ns < window_end)
    return {
        "offered_rps": round(len(scheduled) / window_s, 2),
        "requests": int(len(scheduled)),
        "completed": int(answered.sum()),
        "sent_rps": round(int(sent_in_window.sum()) / window_s, 2),
        "throughput_rps": round(int(ok_in_window.sum()) / window_s, 2),
        "errors": errors,
        "error_count": int(sum(errors.values())),
        "marked": int(timings.marked[measured].sum()),
        "latency_ms": latency_summary(finished - scheduled),
        "service_ms": latency_summary(done[answered & was_sent] - sent[answered & was_sent]),
        "client_wake_lag_ms": latency_summary(timings.wake_lag_ns),
    }


# -- the client ----------------------------------------------------------------------------

class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight (no pipelining)."""

    def __init__(self, step: _Step) -> None:
        self.step = step
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.current = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.step.idle_connection(self)

    def send(self, index: int) -> None:
        assert self.transport is not None
        self.current = index
        self.step.sent[index] = time.perf_counter_ns()
        self.transport.write(self.step.requests[index])

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        self.buffer += data
        if self.current < 0:  # nothing asked: not a response to count
            self.buffer.clear()
            return
        try:
            parsed = parse_response(self.buffer)
        except BadResponse:
            self.close()  # the request in flight fails with the connection
            return
        if parsed is None:
            return
        index, self.current = self.current, -1
        marker = self.step.marker
        marked = bool(marker) and self.buffer.find(marker, parsed.body_start, parsed.end) >= 0
        del self.buffer[:parsed.end]
        self.step.answered(self, index, parsed.status, now, marked)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.step.lost_connection(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class _Step:
    """The state of one run of a schedule over a pool of connections."""

    requests: Sequence[bytes]
    offsets: np.ndarray
    marker: bytes
    sent: list[int] = field(init=False)
    done: list[int] = field(init=False)
    status: list[int] = field(init=False)
    marks: list[bool] = field(init=False)
    wake_lags: list[int] = field(default_factory=list)
    pending: deque[int] = field(default_factory=deque)
    idle: list[_Connection] = field(default_factory=list)
    connections: list[_Connection] = field(default_factory=list)
    outstanding: int = 0
    scheduling: bool = True
    closed: bool = False
    scheduled: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        count = len(self.offsets)
        self.sent, self.done, self.status = [0] * count, [0] * count, [0] * count
        self.marks = [False] * count

    def dispatch(self, first: int, stop: int, first_due_ns: int) -> None:
        """Send (or queue) requests first..stop-1, now due; note how late this is."""
        self.wake_lags.append(time.perf_counter_ns() - first_due_ns)
        for index in range(first, stop):
            self.outstanding += 1
            if self.idle:
                self.idle.pop().send(index)
            else:
                self.pending.append(index)

    def all_dispatched(self) -> None:
        self.scheduling = False
        self.scheduled.set()
        if self.outstanding == 0:
            self.finished.set()

    def idle_connection(self, connection: _Connection) -> None:
        if self.pending:
            connection.send(self.pending.popleft())
        else:
            self.idle.append(connection)

    def answered(self, connection: _Connection, index: int, status: int, now: int,
                 marked: bool) -> None:
        self._settle(index, status, now)
        self.marks[index] = marked
        self.idle_connection(connection)

    def lost_connection(self, connection: _Connection) -> None:
        if self.closed:
            return
        if connection.current >= 0:
            self._settle(connection.current, FAILED, 0)
            connection.current = -1
        if connection in self.idle:
            self.idle.remove(connection)
        if connection in self.connections:
            self.connections.remove(connection)

    def _settle(self, index: int, status: int, now: int) -> None:
        self.done[index], self.status[index] = now, status
        self.outstanding -= 1
        if not self.scheduling and self.outstanding == 0:
            self.finished.set()


class _Clock(threading.Thread):
    """Hands due requests to the event loop on time.

    The loop's own timers have a resolution of a millisecond (a shorter sleep spins); a
    thread in `time.sleep` wakes within tens of microseconds at no CPU cost, then passes
    every request due by then to the loop in one thread-safe call.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, step: _Step, start_ns: int) -> None:
        super().__init__(name="open-loop clock", daemon=True)
        self.loop, self.step, self.start_ns = loop, step, start_ns
        self._stopped = threading.Event()

    def run(self) -> None:
        offsets = self.step.offsets.tolist()
        start, count, index = self.start_ns, len(offsets), 0
        while index < count and not self._stopped.is_set():
            wait = start + offsets[index] - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
                continue
            stop = bisect.bisect_right(offsets, time.perf_counter_ns() - start, index)
            self.loop.call_soon_threadsafe(self.step.dispatch, index, stop,
                                           start + offsets[index])
            index = stop
        if not self._stopped.is_set():
            self.loop.call_soon_threadsafe(self.step.all_dispatched)

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join()


@dataclass(frozen=True)
class Target:
    host: str
    port: int


async def _open(step: _Step, target: Target, count: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(count):
        _, protocol = await loop.create_connection(lambda: _Connection(step), target.host,
                                                   target.port)
        step.connections.append(protocol)


async def _reconnect(step: _Step, target: Target, wanted: int) -> None:
    """Keep the pool at its size while the schedule runs (a server may close connections)."""
    while step.scheduling:
        await asyncio.sleep(0.05)
        missing = wanted - len(step.connections)
        if missing > 0:
            try:
                await _open(step, target, missing)
            except OSError:
                continue


async def run_schedule(target: Target, requests: Sequence[bytes], schedule: Schedule,
                       connections: int = 16, drain_s: float = 2.0,
                       marker: bytes = b"") -> Timings:
    """Send `requests[i]` at the schedule's i-th time; wait up to `drain_s` after the last
    one for the answers still outstanding. A response containing `marker` is counted."""
    offsets_ns = schedule.offsets_ns
    if len(requests) != len(offsets_ns) or len(requests) == 0:
        raise ValueError("one request per scheduled send, at least one")
    step = _Step(requests, offsets_ns, marker)
    await _open(step, target, connections)
    keeper = asyncio.create_task(_reconnect(step, target, connections))
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection pause would look like server latency
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # the clock thread gets the GIL soon after it wakes
    clock = _Clock(asyncio.get_running_loop(), step, time.perf_counter_ns() + 2_000_000)
    try:
        clock.start()
        await step.scheduled.wait()
        try:
            await asyncio.wait_for(step.finished.wait(), drain_s)
        except TimeoutError:
            pass
        ended = time.perf_counter_ns()
    finally:
        clock.stop()
        sys.setswitchinterval(switch_interval)
        step.scheduling, step.closed = False, True
        keeper.cancel()
        for connection in list(step.connections):
            connection.close()
        if gc_was_enabled:
            gc.enable()
    status = np.asarray(step.status, dtype=np.int64)
    status[status == 0] = TIMED_OUT
    return Timings(schedule, clock.start_ns, offsets_ns, np.asarray(step.sent, dtype=np.int64),
                   np.asarray(step.done, dtype=np.int64), status,
                   np.asarray(step.wake_lags, dtype=np.int64),
                   np.asarray(step.marks, dtype=bool), ended)


def run(target: Target, requests: Sequence[bytes], schedule: Schedule, connections: int = 16,
        drain_s: float = 2.0, marker: bytes = b"") -> Timings:
    """`run_schedule` on a fresh event loop (uvloop when installed)."""
    coroutine = run_schedule(target, requests, schedule, connections, drain_s, marker)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
