"""The serving benchmark's pure parts: the open-loop schedule, latency from the scheduled
send, the HTTP response parser, request building, metrics diffs and capacity reading."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import numpy as np
import pytest

from benchmarks.common import command, machine
from benchmarks.serving import promstats
from benchmarks.serving.budget import budget_us
from benchmarks.serving.openloop import (
    FAILED,
    TIMED_OUT,
    BadResponse,
    Schedule,
    Timings,
    latency_summary,
    nearest_rank,
    parse_response,
    schedule_ns,
    summarize,
)
from benchmarks.serving.report import targets
from benchmarks.serving.runner import capacity, passes, stop_reason
from benchmarks.serving.scenarios import Build, http_request, mixed

MS = 1_000_000


def test_the_schedule_is_a_fixed_clock() -> None:
    offsets = schedule_ns(1500, 2.0)
    assert len(offsets) == 3000 and offsets[0] == 0
    gaps = np.diff(offsets)
    assert gaps.min() >= 666_666 and gaps.max() <= 666_667
    assert Schedule(1500, 0.5, 1.5).count == len(Schedule(1500, 0.5, 1.5).offsets_ns) == 3000
    with pytest.raises(ValueError):
        schedule_ns(0, 1.0)


def test_nearest_rank_percentiles() -> None:
    values = np.arange(1, 101, dtype=np.float64)
    assert nearest_rank(values, 50) == 50 and nearest_rank(values, 99) == 99
    assert nearest_rank(values, 100) == 100 and nearest_rank(np.array([7.0]), 99.9) == 7.0
    assert latency_summary(np.array([], dtype=np.int64)) == {}
    assert latency_summary(np.array([2 * MS, 4 * MS]))["max"] == 4.0


def _timings(rate: float, warmup_s: float, measured_s: float, sent: np.ndarray,
             done: np.ndarray, status: np.ndarray, ended_ms: float) -> Timings:
    schedule = Schedule(rate, warmup_s, measured_s)
    return Timings(schedule, 0, schedule.offsets_ns, sent, done, status,
                   np.array([10_000, 20_000]), np.zeros(len(sent), dtype=bool),
                   int(ended_ms * MS))


def test_a_stall_counts_from_the_scheduled_time_not_the_late_send() -> None:
    # 1,000 rps for 1 s; every answer 1 ms after its send; the server stalls from 500 to
    # 600 ms, so the requests due meanwhile leave only at 600 ms (coordinated omission).
    offsets = schedule_ns(1000, 1.0)
    sent = np.maximum(offsets, np.where((offsets >= 500 * MS) & (offsets < 600 * MS),
                                        600 * MS, 0))
    done = sent + MS
    status = np.full(len(offsets), 200)
    summary = summarize(_timings(1000, 0.0, 1.0, sent, done, status, 1000))
    assert summary["requests"] == 1000 and summary["error_count"] == 0
    assert summary["service_ms"]["p99"] == pytest.approx(1.0)
    assert summary["latency_ms"]["p99"] >= 90  # 10% of requests waited up to 100 ms
    assert summary["latency_ms"]["p50"] == pytest.approx(1.0)
    assert summary["offered_rps"] == 1000 and summary["throughput_rps"] == pytest.approx(
        999, abs=2)


def test_the_warmup_is_left_out_and_unanswered_requests_count_as_errors() -> None:
    offsets = schedule_ns(100, 2.0)  # 1 s warm-up, then 1 s measured
    sent = offsets.copy()
    done = offsets + 2 * MS
    done[:100] += 500 * MS  # a slow warm-up, not measured
    status = np.full(len(offsets), 200)
    done[-10:], status[-10:] = 0, TIMED_OUT  # never answered: counted at the give-up time
    done[150], status[150] = 0, FAILED
    status[120] = 503
    summary = summarize(_timings(100, 1.0, 1.0, sent, done, status, 2500))
    assert summary["requests"] == 100 and summary["completed"] == 89
    assert summary["errors"] == {"timeout": 10, "connection": 1, "503": 1}
    # the broken one, due at 1.5 s, counts until the client gave up at 2.5 s
    assert summary["latency_ms"]["max"] == pytest.approx(1000.0)
    assert summary["latency_ms"]["p50"] == pytest.approx(2.0)


def test_parse_a_content_length_response_in_pieces() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello"
    assert parse_response(response[:10]) is None
    assert parse_response(response[:-1]) is None
    parsed = parse_response(response + b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    assert parsed is not None and (parsed.status, parsed.end) == (200, len(response))
    assert response[parsed.body_start:parsed.end] == b"hello"
    following = parse_response(response + b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
                               parsed.end)
    assert following is not None and following.status == 404


def test_parse_chunked_and_bodiless_responses() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n")
    parsed = parse_response(chunked)
    assert parsed is not None and parsed.end == len(chunked)
    assert parse_response(chunked[:-2]) is None
    assert parse_response(chunked[:-9]) is None
    not_modified = parse_response(b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n")
    assert not_modified is not None and not_modified.body_start == not_modified.end
    with pytest.raises(BadResponse):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(BadResponse):
        parse_response(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")


def test_requests_are_keep_alive_http_with_their_length() -> None:
    request = http_request("POST", "/v1/events", "127.0.0.1:8000", b'{"events": []}')
    head, body = request.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:8000")
    assert b"Content-Length: 14" in head and body == b'{"events": []}'
    assert http_request("GET", "/x", "h").endswith(b"Host: h\r\n\r\n")


def test_the_mix_follows_its_weights_and_is_repeatable() -> None:
    def constant(text: bytes) -> Build:
        return lambda count, step: [text] * count

    build = mixed({"a": constant(b"a"), "b": constant(b"b")}, {"a": 0.8, "b": 0.2})
    requests = build(5000, 1)
    assert requests == build(5000, 1)
    assert requests.count(b"a") / 5000 == pytest.approx(0.8, abs=0.03)


def test_stage_breakdown_is_the_difference_of_two_scrapes() -> None:
    def text(count: int, seconds: float) -> str:
        return ("# TYPE nbo_decision_stage_seconds histogram\n"
                f'nbo_decision_stage_seconds_count{{stage="read"}} {count}\n'
                f'nbo_decision_stage_seconds_sum{{stage="read"}} {seconds}\n'
                "# TYPE nbo_request_seconds histogram\n"
                'nbo_request_seconds_count{method="GET",route="/v1/users/{user_id}/decision",'
                f'status="200"}} {count}\n'
                'nbo_request_seconds_sum{method="GET",route="/v1/users/{user_id}/decision",'
                f'status="200"}} {seconds * 3}\n')

    split: dict[str, Any] = promstats.breakdown(promstats.parse(text(10, 0.001)),
                                                promstats.parse(text(110, 0.021)), 100)
    assert split["stages"]["read"] == {"calls": 100, "mean_us": 200.0, "us_per_request": 200.0}
    assert split["routes"]["GET /v1/users/{user_id}/decision"]["mean_us"] == 600.0


def _point(rate: float, p99: float, errors: int = 0, done: float | None = None,
           client: bool = False) -> dict[str, Any]:
    return {"offered_rps": rate, "latency_ms": {"p99": p99}, "error_count": errors,
            "requests": int(rate), "throughput_rps": rate if done is None else done,
            "client_limited": client}


def test_capacity_is_the_highest_rate_held_with_every_lower_one() -> None:
    points = [_point(500, 2.0), _point(1000, 4.0), _point(1500, 7.0), _point(2000, 4.5),
              _point(3000, 30.0)]
    assert capacity(points, 5.0) == 1000  # 2,000 held again, but 1,500 did not
    assert capacity(points, 25.0) == 2000
    assert capacity([_point(500, 6.0)], 5.0) is None
    assert not passes(_point(500, 1.0, errors=1), 5.0)
    assert not passes(_point(500, 1.0, done=400), 5.0)
    assert stop_reason(_point(500, 1.0, client=True), 25.0) == "client"
    assert stop_reason(_point(500, 26.0), 25.0) == "p99 > 25 ms"
    assert stop_reason(_point(500, 1.0), 25.0) is None


def test_a_target_is_met_only_by_a_step_the_client_kept_up_with() -> None:
    """A client-limited step is not the server's; a target no step measured is not missed."""
    def run(point: dict[str, Any]) -> dict[str, Any]:
        return {"scenarios": {"decision": point}}

    first = targets({"2": run(_point(1500, 4.0, client=True))})[0]
    assert first["measured_p99_ms"] == 4.0 and first["met"] is False
    assert targets({"2": run(_point(1500, 4.0))})[0]["met"] is True
    unmeasured = targets({"1": {"scenarios": {}}})
    assert [check["met"] for check in unmeasured] == [None, None]


def test_the_machine_and_command_are_recorded_as_they_are(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["x", "--setting", "api_keys=a b"])
    assert shlex.split(command("benchmarks.serving"))[-2:] == ["--setting", "api_keys=a b"]
    found = machine()
    assert found["cpus_usable"] and found["processor"] != "unknown"


def test_the_decision_budget_is_the_highest_cost_held_below_every_miss() -> None:
    def step(cost: float, held: bool) -> dict[str, Any]:
        return {"decide_us": cost, "held": held}

    assert budget_us([step(0, True), step(100, True), step(200, False), step(300, True)]) == 100
    assert budget_us([step(100, True), step(0, True), step(100, False)]) == 0  # every round
    assert budget_us([step(0, False), step(100, True)]) is None
