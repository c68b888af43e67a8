"""The event loop's executor of plans (nbo.redis_plan): one Redis connection per process,
the requests of every coroutine pipelined on it, replies parsed by hiredis.

Why not redis-py's asyncio client: a decision's read costs about 115 us of CPU through it
against 65 us through the blocking client, and the request path is CPU bound. Writing a
request's commands in one go and matching replies in order (Redis answers a connection's
commands in the order sent) costs about 35 us, and needs no pool: coroutines share the
connection, each awaiting its own replies.

A request that gets no answer within `timeout_s` fails with `redis.TimeoutError` and the
connection is closed (replies to it could still arrive and would be taken for the next
request's), failing the requests that were waiting on it with `redis.ConnectionError`;
the next request connects again. Errors are redis-py's, so callers handle one vocabulary.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
import redis
from redis.connection import parse_url
from redis.exceptions import ExecAbortError, NoScriptError

from nbo.redis_plan import Command, Step

_ERRORS: dict[str, type[redis.ResponseError]] = {"NOSCRIPT": NoScriptError,
                                                   "EXECABORT": ExecAbortError}


def encode(commands: Sequence[Command]) -> bytes:
    """Commands in the Redis protocol (arrays of bulk strings)."""
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for argument in command:
            if isinstance(argument, str):
                argument = argument.encode()
            elif isinstance(argument, int | float):
                argument = repr(argument).encode()
            parts.append(b"$%d\r\n%b\r\n" % (len(argument), argument))
    return b"".join(parts)


def _reply(command: Command, reply: Any) -> Any:
    """HGETALL's array as a dict, as redis-py gives it."""
    if command[0] == "HGETALL":
        return dict(zip(reply[::2], reply[1::2], strict=True))
    return reply


def _first_error(replies: list[Any]) -> redis.ResponseError | None:
    """The first error reply, as redis-py's class for it (NoScriptError...)."""
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            message = str(reply)
            return _ERRORS.get(message.split(" ", 1)[0], redis.ResponseError)(message)
    return None


@dataclass
class _Waiting:
    future: asyncio.Future[list[Any]]
    count: int  # replies expected
    timer: asyncio.TimerHandle
    replies: list[Any] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lost: redis.ConnectionError | None = None
        self._reader = hiredis.Reader(replyError=redis.ResponseError)
        self._waiting: deque[_Waiting] = deque()
        # set by connection_made, or by whoever opened the connection: uvloop may call
        # connection_made only after the connection is handed over
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's: it writes

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while self._waiting:
            waiting = self._waiting[0]
            while len(waiting.replies) < waiting.count:
                try:
                    reply = self._reader.gets()
                except hiredis.ProtocolError as error:
                    self.close(f"Redis sent a reply that is not valid: {error}")
                    return
                if reply is False:
                    return
                waiting.replies.append(reply)
            self._waiting.popleft()
            waiting.timer.cancel()
            if not waiting.future.done():  # its caller may have given up (cancelled)
                waiting.future.set_result(waiting.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or redis.ConnectionError(
            f"the connection to Redis was lost: {exc or 'closed by the server'}")
        while self._waiting:
            waiting = self._waiting.popleft()
            waiting.timer.cancel()
            if not waiting.future.done():
                waiting.future.set_exception(self.lost)

    def close(self, why: str) -> None:
        self.lost = self.lost or redis.ConnectionError(why)
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):  # its event loop is already closed
                self.transport.abort()
        self.connection_lost(None)

    def request(self, payload: bytes, count: int, timeout_s: float) -> asyncio.Future[list[Any]]:
        if self.lost is not None:
            raise self.lost
        assert self.transport is not None
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        timer = self.loop.call_later(timeout_s, self._time_out, future, timeout_s)
        self._waiting.append(_Waiting(future, count, timer))
        self.transport.write(payload)
        return future

    def _time_out(self, future: asyncio.Future[list[Any]], timeout_s: float) -> None:
        if not future.done():
            future.set_exception(redis.TimeoutError(f"Redis did not answer in {timeout_s} s"))
        self.close(f"Redis did not answer a request in {timeout_s} s")


class PipelinedConnection:
    """One connection to the Redis at `url` (redis:// or rediss:// with user, password and
    db, or unix:// with ?db=), opened on first use and again after a failure."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._options = parse_url(url)  # type: ignore[no-untyped-call]
        self._secure = url.startswith("rediss://")
        self._timeout_s = timeout_s
        self._protocol: _Protocol | None = None

    async def execute(self, step: Step) -> list[Any]:
        """The step's replies (a transaction's: its commands' own), or the first error."""
        if not step.commands:
            await asyncio.sleep(step.pause_s)
            return []
        sent = [("MULTI",), *step.commands, ("EXEC",)] if step.transaction else step.commands
        protocol = await self._connected()
        replies = await protocol.request(encode(sent), len(sent), self._timeout_s)
        if step.transaction and _first_error(replies) is None:
            replies = replies[-1]  # EXEC's array: the commands' own replies
        error = _first_error(replies)
        if error is not None:
            raise error
        return [_reply(command, reply) for command, reply in zip(step.commands, replies,
                                                                   strict=True)]

    async def _connected(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        if protocol is not None and protocol.loop is loop and protocol.lost is None:
            return protocol
        if protocol is not None:  # lost, or opened on an event loop that is gone
            protocol.close("replaced by a new connection")
            self._protocol = None
        opened = await self._open(loop)
        if self._protocol is not None:  # another request connected meanwhile: share it
            opened.close("another connection was opened at the same time")
            return self._protocol
        self._protocol = opened
        return opened

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        options = self._options
        host, port = options.get("host", "localhost"), options.get("port", 6379)
        where = options.get("path") or f"{host}:{port}"
        try:
            async with asyncio.timeout(self._timeout_s):
                if "path" in options:
                    transport, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(loop), options["path"])
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: _Protocol(loop), host, port,
                        ssl=ssl.create_default_context() if self._secure else None)
                protocol.transport = transport
        except (OSError, TimeoutError) as error:
            raise redis.ConnectionError(f"cannot connect to Redis at {where}: {error}") \
                from error
        setup: list[Command] = []
        if options.get("password"):
            user = options.get("username")
            setup.append(("AUTH", user, options["password"]) if user
                         else ("AUTH", options["password"]))
        if options.get("db"):
            setup.append(("SELECT", int(options["db"])))
        if setup:
            replies = await protocol.request(encode(setup), len(setup), self._timeout_s)
            refused = _first_error(replies)
            if refused is not None:
                protocol.close("set-up failed")
                raise redis.ConnectionError(f"Redis at {where} refused the connection's "
                                            f"set-up: {refused}")
        return protocol

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close("closed")
            self._protocol = None
