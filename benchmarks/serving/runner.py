"""Steps (one offered rate against one server) and capacity curves (rates stepped up).

A step reports the open-loop client's figures plus what it cost the server: CPU seconds of
the server's processes and of Redis per request answered, and, for nbo, where the time went
according to nbo's own metrics (`nbo serve` adds up every worker's in one `/metrics`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.serving import openloop, promstats
from benchmarks.serving.scenarios import Build
from benchmarks.serving.servers import BenchRedis, Http, Server

CLIENT_LAG_LIMIT_MS = 2.0
"""A client waking later than this (p99) for due requests is too busy to trust."""
CLIENT_CPU_LIMIT = 0.9
"""...as is one using more than this share of a CPU."""
P99_BOUNDS_MS = (5.0, 10.0, 25.0)


@dataclass(frozen=True)
class Plan:
    """How long and how hard: the step timing, the rates and the client's pool."""

    warmup_s: float
    measured_s: float
    drain_s: float
    ladder: tuple[float, ...]
    rates: dict[str, float]
    connections: int = 16
    stop_p99_ms: float = 25.0
    retries: int = 1


@dataclass
class Bench:
    plan: Plan
    redis: BenchRedis
    steps_run: int = 0

    def step(self, server: Server, build: Build, rate: float, marker: bytes = b"",
             connections: int | None = None, breakdown: bool = False,
             schedule: openloop.Schedule | None = None,
             drain_s: float | None = None) -> dict[str, Any]:
        """One schedule (by default the plan's at `rate`) against `server`, summarized."""
        self.steps_run += 1
        schedule = schedule or openloop.Schedule(rate, self.plan.warmup_s, self.plan.measured_s)
        requests = build(schedule.count, self.steps_run)
        waited = server.wait_idle()
        scrape = breakdown and server.name == "nbo"
        before = _scrape(server) if scrape else {}
        server_cpu, redis_cpu = server.cpu_seconds(), self.redis.cpu_seconds()
        client_cpu, began = time.process_time(), time.perf_counter()
        timings = openloop.run(openloop.Target("127.0.0.1", server.port), requests, schedule,
                               connections or self.plan.connections,
                               self.plan.drain_s if drain_s is None else drain_s, marker)
        client_cpu, wall = time.process_time() - client_cpu, time.perf_counter() - began
        server_cpu = server.cpu_seconds() - server_cpu
        redis_cpu = self.redis.cpu_seconds() - redis_cpu
        result = openloop.summarize(timings)
        answered = max(int((timings.done_ns > 0).sum()), 1)
        lag_p99 = result["client_wake_lag_ms"].get("p99", 0.0)
        result |= {
            "server_cpu_us_per_request": round(server_cpu / answered * 1e6, 1),
            "redis_cpu_us_per_request": round(redis_cpu / answered * 1e6, 1),
            "server_cpu_share": round(server_cpu / wall, 2),
            "client_cpu_us_per_request": round(client_cpu / answered * 1e6, 1),
            "client_cpu_share": round(client_cpu / wall, 2),
            "client_limited": bool(lag_p99 > CLIENT_LAG_LIMIT_MS
                                   or client_cpu / wall > CLIENT_CPU_LIMIT),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "waited_for_idle_server_s": waited,
        }
        if scrape:
            result["breakdown"] = promstats.breakdown(before, _scrape(server), answered)
        return result

    def curve(self, servers: Sequence[Server], build: Build) -> dict[str, list[dict[str, Any]]]:
        """Each server at each rate of the ladder, interleaved (so a change in the
        machine's load hits both alike), until its p99 passes the stop bound. nbo's
        breakdown is kept for the steps it held (below the stop bound, time in stages is
        the work, not the wait for the GIL behind other requests).

        A step that misses for a reason other than plain lack of throughput is run again
        up to `plan.retries` times, the misses kept: on a shared machine a neighbour's
        burst or a late client wake-up can spoil one step."""
        points: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
        active = list(servers)
        for rate in self.plan.ladder:
            for server in list(active):
                misses: list[dict[str, Any]] = []
                while True:
                    point = self.step(server, build, rate, breakdown=True)
                    point["stopped_by"] = stop_reason(point, self.plan.stop_p99_ms)
                    if (not point["stopped_by"] or point["stopped_by"] == "throughput"
                            or len(misses) >= self.plan.retries):
                        break
                    misses.append(_brief(point))
                point["retried_after"] = misses
                points[server.name].append(point)
                if point["stopped_by"]:
                    active.remove(server)
            if not active:
                break
        return points


def batch_step(bench: Bench, server: Server, build: Build, batches: int,
               marker: bytes = b"") -> dict[str, Any]:
    """Batches at half the rate one batch at a time would allow (timed on one first), so
    the figures are a batch's cost, not a queue's."""
    probe = bench.step(server, build, 1.0, schedule=openloop.Schedule(1.0, 0.0, 1.0),
                       drain_s=120.0, connections=1)
    seconds = max(probe["latency_ms"].get("max", 1000.0) / 1e3, 0.01)
    rate = 0.5 / seconds
    schedule = openloop.Schedule(rate, 0.0, batches / rate)
    result = bench.step(server, build, rate, marker, connections=2, breakdown=True,
                        schedule=schedule, drain_s=4 * seconds + 1)
    return result | {"first_batch_s": round(seconds, 3)}


def _brief(point: dict[str, Any]) -> dict[str, Any]:
    """What a missed attempt showed, kept next to the attempt that replaced it."""
    return {"p99_ms": point["latency_ms"].get("p99"), "stopped_by": point["stopped_by"],
            "client_wake_lag_p99_ms": point["client_wake_lag_ms"].get("p99"),
            "error_count": point["error_count"], "load_average_1m": point["load_average_1m"]}


def _scrape(server: Server) -> promstats.Snapshot:
    status, body = Http(server.port).request("GET", "/metrics")
    return promstats.parse(body.decode()) if status == 200 else {}


def passes(point: dict[str, Any], bound_ms: float) -> bool:
    """Held the rate: p99 within the bound, no errors, throughput kept up, client fine."""
    return (point["latency_ms"].get("p99", float("inf")) <= bound_ms
            and point["error_count"] == 0
            and point["throughput_rps"] >= 0.95 * point["offered_rps"]
            and not point["client_limited"])


def stop_reason(point: dict[str, Any], stop_p99_ms: float) -> str | None:
    """Why a curve goes no higher after this point, if it does not."""
    if point["client_limited"]:
        return "client"
    if point["latency_ms"].get("p99", float("inf")) > stop_p99_ms:
        return f"p99 > {stop_p99_ms:g} ms"
    if point["error_count"] > 0.01 * max(point["requests"], 1):
        return "errors"
    if point["throughput_rps"] < 0.9 * point["offered_rps"]:
        return "throughput"
    return None


def capacity(points: Sequence[dict[str, Any]], bound_ms: float) -> float | None:
    """The highest offered rate held with p99 <= bound, every lower step held as well
    (conservative on a noisy machine); None when even the first step missed it."""
    held = None
    for point in sorted(points, key=lambda p: float(p["offered_rps"])):
        if not passes(point, bound_ms):
            break
        held = float(point["offered_rps"])
    return held


def eligible_candidates(server: Server, users: Sequence[str], sample: int = 40,
                        seed: int = 5) -> dict[str, float]:
    """Offers scored per decision (the catalog less those the rules removed), from
    `explain=true` answers for a sample of users."""
    client = Http(server.port)
    catalog = client.json("GET", "/v1/offers")
    assert isinstance(catalog, dict)
    size = len(catalog["offers"])
    rng = np.random.default_rng(seed)
    counts = []
    for user in rng.choice(np.asarray(users), size=min(sample, len(users)), replace=False):
        decision = client.json("GET", f"/v1/users/{user}/decision?explain=true")
        assert isinstance(decision, dict)
        removed = (decision.get("explanation") or {}).get("removed", {})
        counts.append(size - len(removed))
    client.close()
    return {"catalog": size, "mean": round(float(np.mean(counts)), 1),
            "min": int(np.min(counts)), "max": int(np.max(counts))}


def decision_ids(server: Server, users: Sequence[str], count: int = 200) -> list[str]:
    """Ids of fresh decisions, for feedback requests to refer to."""
    client = Http(server.port)
    ids = []
    for user in users[:count]:
        decision = client.json("GET", f"/v1/users/{user}/decision")
        assert isinstance(decision, dict)
        ids.append(str(decision["decision_id"]))
    client.close()
    return ids
