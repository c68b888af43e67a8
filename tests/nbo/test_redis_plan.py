"""Plans run the same through both drivers, on a real Redis: the blocking one
(nbo/redis_plan.py) and the event loop's (nbo/async_redis.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import uvloop

from nbo.async_redis import PipelinedConnection
from nbo.redis_plan import LuaScript, Plan, Step, drive, run, timed
from nbo.redis_server import EmbeddedRedis

T = TypeVar("T")
LOOPS = {"asyncio": asyncio.run, "uvloop": uvloop.run}  # nbo serve runs on uvloop
_loop = asyncio.run


@pytest.fixture(autouse=True, params=sorted(LOOPS))
def event_loop_kind(request: pytest.FixtureRequest) -> None:
    """Every test once on asyncio's own event loop and once on uvloop's."""
    global _loop
    _loop = LOOPS[request.param]


def _on_loop(url: str, work: Callable[[PipelinedConnection], Coroutine[Any, Any, T]],
             timeout_s: float = 1.0) -> T:
    connection = PipelinedConnection(url, timeout_s)

    async def main() -> T:
        try:
            return await work(connection)
        finally:
            connection.close()

    result: T = _loop(main())
    return result


def _both(redis_url: str, plan: Callable[[], Plan[T]]) -> tuple[T, T]:
    """What the plan returns run with the blocking client, then on the event loop."""
    client = redis.Redis.from_url(redis_url)
    try:
        blocking = run(client, plan())
    finally:
        client.close()
    return blocking, _on_loop(redis_url, lambda connection: drive(connection, plan()))


def _hash_and_counter() -> Plan[list[Any]]:
    yield Step([("DEL", "plan:h", "plan:n")])
    replies = yield Step([("HSET", "plan:h", "a", 1, "b", "two"), ("HINCRBY", "plan:h", "a", 5),
                          ("INCRBY", "plan:n", 3), ("HGETALL", "plan:h"),
                          ("HGET", "plan:h", "b"), ("GET", "plan:missing"),
                          ("HGETALL", "plan:missing")], transaction=True)
    return [*replies, (yield Step.one("GET", "plan:n"))[0]]


def test_both_drivers_give_the_same_replies(redis_client: redis.Redis, redis_url: str) -> None:
    blocking, on_loop = _both(redis_url, _hash_and_counter)
    assert blocking == on_loop == [2, 6, 3, {b"a": b"6", b"b": b"two"}, b"two", None, {}, b"3"]


def _wrong_type() -> Plan[bool]:
    yield Step.one("SET", "plan:s", "text")
    try:
        yield Step([("GET", "plan:s"), ("HGET", "plan:s", "field")], transaction=True)
    except redis.ResponseError as error:
        return "WRONGTYPE" in str(error)
    return False


def test_an_error_reply_is_thrown_into_the_plan(redis_client: redis.Redis,
                                                redis_url: str) -> None:
    assert _both(redis_url, _wrong_type) == (True, True)


def test_a_script_the_server_does_not_know_is_sent_in_full(redis_client: redis.Redis,
                                                           redis_url: str) -> None:
    script = LuaScript("return {KEYS[1], ARGV[1]}")

    def forgotten_then_called() -> Plan[Any]:
        yield Step.one("SCRIPT", "FLUSH")
        return (yield from script.call(["plan:k"], ["arg"]))

    assert _both(redis_url, forgotten_then_called) == ([b"plan:k", b"arg"],) * 2


def test_coroutines_sharing_the_connection_each_get_their_own_replies(
        redis_client: redis.Redis, redis_url: str) -> None:
    async def many(connection: PipelinedConnection) -> list[list[Any]]:
        return await asyncio.gather(*(connection.execute(Step(
            [("INCRBY", f"plan:n:{i}", i), ("GET", f"plan:n:{i}")])) for i in range(300)))

    assert _on_loop(redis_url, many) == [[i, str(i).encode()] for i in range(300)]


def test_the_database_in_the_url_is_selected(redis_url: str) -> None:
    on_db = f"{redis_url}{'&' if '?' in redis_url else '?'}db=3"
    client = redis.Redis.from_url(on_db)
    client.set("plan:db", "three")
    try:
        replies = _on_loop(on_db, lambda connection: connection.execute(
            Step.one("GET", "plan:db")))
    finally:
        client.delete("plan:db")
        client.close()
    assert replies == [b"three"]


def test_a_server_that_does_not_answer_times_out_then_the_next_request_connects_again(
        redis_client: redis.Redis, redis_url: str) -> None:
    async def paused(connection: PipelinedConnection) -> list[Any]:
        await connection.execute(Step.one("SET", "plan:t", "x"))
        redis_client.execute_command("CLIENT", "PAUSE", 300)  # type: ignore[no-untyped-call]
        began = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await connection.execute(Step.one("GET", "plan:t"))
        assert time.monotonic() - began < 0.25
        await asyncio.sleep(0.35)
        return await connection.execute(Step.one("GET", "plan:t"))

    assert _on_loop(redis_url, paused, timeout_s=0.1) == [b"x"]


def test_a_stopped_server_is_a_connection_error_until_it_is_back(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()

    async def outage(connection: PipelinedConnection) -> list[Any]:
        await connection.execute(Step.one("SET", "plan:o", "kept"))
        server.stop()
        for _ in range(2):  # the lost connection, then the refused new one
            with pytest.raises(redis.ConnectionError):
                await connection.execute(Step.one("GET", "plan:o"))
        server.start()
        return await connection.execute(Step.one("GET", "plan:o"))

    try:
        assert _on_loop(server.url, outage) == [b"kept"]
    finally:
        server.stop()


def test_a_timed_plan_reports_its_computing_apart_from_its_waits(
        redis_client: redis.Redis, redis_url: str) -> None:
    reported: list[tuple[float, float]] = []

    def paused_then_failing() -> Plan[str]:
        yield Step(pause_s=0.05)
        try:
            yield Step.one("HGET", "plan:nothing", "a", "b")  # wrong number of arguments
        except redis.ResponseError:
            return "caught"
        return "not thrown"

    def plan() -> Plan[str]:
        return timed(paused_then_failing(), lambda *seconds: reported.append(seconds))

    assert _both(redis_url, plan) == ("caught", "caught")
    assert len(reported) == 2
    for computing, waiting in reported:
        assert waiting >= 0.05 > computing
