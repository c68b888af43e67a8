"""Serving load: nbo's API under an open-loop offered rate, next to a bare FastAPI baseline.

    python -m benchmarks.serving [--quick | --full] [--workers 1 2] [--locust SECONDS]

Sets up (or reuses) a trained world with ~200 candidate offers per decision, starts the
embedded Redis from the world's snapshot, then for each worker count: `nbo serve` and the
baseline app (one Redis GET, same uvicorn stack, same Redis), the scenarios at fixed
rates (single decisions, batches of 1,000, blocks, live events, a mix), and a capacity
curve of single decisions for both, stepped up until p99 passes 25 ms. Writes
benchmarks/results/serving.json; prints a summary table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from benchmarks.common import command, machine, write_result
from benchmarks.serving import report
from benchmarks.serving.locust_run import run_locust
from benchmarks.serving.runner import (
    P99_BOUNDS_MS,
    Bench,
    Plan,
    batch_step,
    capacity,
    decision_ids,
)
from benchmarks.serving.runner import eligible_candidates as candidates
from benchmarks.serving.scenarios import MIX, Scenarios, mixed
from benchmarks.serving.servers import BenchRedis, Server, pin_process, start_baseline, start_nbo
from benchmarks.serving.visibility import event_to_decision
from benchmarks.serving.world import World, WorldSpec, prepare

RATES = {"decision": 1500.0, "light": 50.0, "block": 400.0, "event": 50.0, "mix": 300.0}
"""Offered rates of the scenarios: single decisions at the target's rate and at a light
rate (requests seldom overlap, so nbo's stage timings are its work, not waits for the
GIL), the others at rates nbo can hold on a 2-CPU machine, so their latency means
something (batches are timed instead: see runner.batch_step)."""
QUICK = Plan(warmup_s=0.5, measured_s=2.0, drain_s=1.0,
             ladder=(100, 200, 400, 700, 1000, 1500, 2000, 3000, 4500, 6000, 8000),
             rates=RATES)
FULL = Plan(warmup_s=2.0, measured_s=10.0, drain_s=3.0,
            ladder=(100, 200, 300, 400, 500, 700, 1000, 1250, 1500, 2000, 2500, 3000, 3500,
                    4000, 5000, 6000, 7000, 8000, 10000), rates=RATES)
BATCHES = {"quick": 2, "full": 10}
USERS = {"quick": 1_200, "full": 20_000}
SCENARIOS = ("decision", "light", "batch", "block", "event", "mix")
DEGRADED = b'"degraded":true'


def affinity(workers: int, mode: str) -> dict[str, list[int] | None]:
    """Which CPUs each side gets. `split`: when there are more CPUs than workers, the
    client gets the last one and nbo (or the baseline) and Redis the others. `none` (the
    default): the kernel places them; on a machine shared with other work, pinning keeps
    a process on a CPU a neighbour is busy on, and the client's wake-ups suffer most."""
    cpus = os.cpu_count() or 1
    if mode == "none" or cpus < 2 or workers >= cpus:
        return {"server": None, "redis": None, "client": None}
    rest = list(range(cpus - 1))
    return {"server": rest, "redis": rest, "client": [cpus - 1]}


def _scenario_steps(bench: Bench, nbo: Server, baseline: Server, world: World,
                    wanted: list[str], batches: int) -> dict[str, Any]:
    rates = bench.plan.rates
    scenarios = Scenarios(nbo.host, world.users, world.items)
    builds = {"decision": scenarios.decision, "light": scenarios.decision,
              "batch": scenarios.batch, "block": scenarios.block, "event": scenarios.event}
    results: dict[str, Any] = {}
    for name in wanted:
        began = time.perf_counter()
        if name == "mix":
            parts = {**builds, "feedback": scenarios.feedback(decision_ids(nbo, world.users))}
            build = mixed(parts, MIX)
        else:
            build = builds[name]
        if name == "batch":
            results[name] = batch_step(bench, nbo, build, batches, DEGRADED)
            mean_s = results[name]["service_ms"].get("mean", 0.0) / 1e3
            users = min(len(world.users), scenarios.batch_size)
            results[name] |= {"users_per_batch": users, "users_per_s": round(
                users / mean_s, 1) if mean_s else None}
        else:
            results[name] = bench.step(nbo, build, rates[name], DEGRADED, breakdown=True)
        if name == "block":
            results[name]["note"] = ("a campaign new to the step: the first fetch per user "
                                     "decides, later ones read the remembered block")
        results[name]["wall_s"] = round(time.perf_counter() - began, 1)
        print(report.step_line(f"nbo {name}", results[name]), file=sys.stderr)
    if "decision" in wanted:
        base = Scenarios(baseline.host, world.users, world.items)
        results["baseline_decision"] = bench.step(baseline, base.decision, rates["decision"])
        print(report.step_line("baseline decision", results["baseline_decision"]),
              file=sys.stderr)
    return results


def _ratios(curve: dict[str, list[dict[str, Any]]], scenarios: dict[str, Any]) -> dict[str, Any]:
    caps = {name: {f"p99<={bound:g}ms": capacity(points, bound) for bound in P99_BOUNDS_MS}
            for name, points in curve.items()}
    rps_ratio: dict[str, float | None] = {}
    for bound in caps["nbo"]:
        mine, theirs = caps["nbo"][bound], caps["baseline"][bound]
        rps_ratio[bound] = round(mine / theirs, 2) if mine and theirs else None
    by_rate = {float(p["offered_rps"]): p["latency_ms"]["p99"] for p in curve["baseline"]}
    p99_ratio = {f"{p['offered_rps']:g}": round(p["latency_ms"]["p99"] / by_rate[rate], 2)
                 for p in curve["nbo"] if (rate := float(p["offered_rps"])) in by_rate}
    ratios: dict[str, Any] = {"capacity_rps": caps, "nbo_over_baseline_rps": rps_ratio,
                              "nbo_over_baseline_p99_by_rate": p99_ratio}
    if "decision" in scenarios and "baseline_decision" in scenarios:
        mine, theirs = (scenarios[key]["latency_ms"]["p99"]
                        for key in ("decision", "baseline_decision"))
        ratios["nbo_over_baseline_p99_decision_scenario"] = round(mine / theirs, 2)
    return ratios


def run_workers(bench: Bench, world: World, redis: BenchRedis, workers: int, pin: str,
                wanted: list[str], curve: bool, locust_s: int, batches: int,
                settings: dict[str, str], environment: dict[str, str] | None = None,
                ) -> dict[str, Any]:
    cpus = affinity(workers, pin)
    pin_process(cpus["redis"], redis.pid)
    pin_process(cpus["client"])
    logs = world.logs
    nbo = start_nbo(world.models_dir, world.data_dir, workers, cpus["server"],
                    logs / f"nbo-{workers}w.log", settings, environment)
    baseline = start_baseline(redis.url, workers, cpus["server"], logs / f"base-{workers}w.log")
    result: dict[str, Any] = {"affinity": cpus}
    try:
        nbo.wait_ready()
        baseline.wait_ready()
        result |= {"nbo_ready_s": nbo.started_s, "baseline_ready_s": baseline.started_s,
                   "candidates": candidates(nbo, world.users)}
        warm = Plan(0.5, 1.0, 1.0, (), {})
        for server in (nbo, baseline):  # threads, connections, first-call caches
            Bench(warm, redis).step(server, Scenarios(server.host, world.users,
                                                            world.items).decision, 300)
        scenarios = _scenario_steps(bench, nbo, baseline, world, wanted, batches)
        result["scenarios"] = scenarios
        result["event_to_decision"] = event_to_decision(
            nbo, world.users, sorted({item.category for item in world.items}))
        if curve:
            points = bench.curve([nbo, baseline], Scenarios(
                nbo.host, world.users, world.items).decision)
            for name, rows in points.items():
                for row in rows:
                    print(report.step_line(f"{name} curve", row), file=sys.stderr)
            result["curve"] = points
            result |= _ratios(points, scenarios)
        if locust_s:
            result["locust"] = run_locust(nbo.port, world.root / "users.txt", locust_s,
                                          cpus=cpus["client"])
    finally:
        nbo.stop()
        baseline.stop()
        pin_process(None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1,200 users, short steps (default)")
    size.add_argument("--full", action="store_true", help="20,000 users, 10 s steps, locust")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--users", type=int, help="world size (default by mode)")
    parser.add_argument("--offers", type=int, default=220,
                        help="extra offers in the catalog (220: about 200 candidates)")
    parser.add_argument("--rate", action="append", default=[], metavar="SCENARIO=RPS",
                        help=f"offered rate of a scenario (defaults: {RATES})")
    parser.add_argument("--scenarios", default=None,
                        help=f"comma-separated among {','.join(SCENARIOS)} (default: all, "
                        "for the first worker count only with --quick)")
    parser.add_argument("--no-curve", action="store_true", help="skip the capacity curves")
    parser.add_argument("--pin", choices=("none", "split"), default="none",
                        help="split: client on the last CPU, servers and Redis on the others "
                        "(when there are more CPUs than workers); none: no pinning")
    parser.add_argument("--connections", type=int, default=16, help="client keep-alive pool")
    parser.add_argument("--retries", type=int, default=1,
                        help="runs of a curve step that missed, before the curve stops there")
    parser.add_argument("--locust", type=int, default=None, metavar="SECONDS",
                        help="also run the locustfile headless (default: 20 s with --full)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached world")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of nbo serve (NBO_NAME), e.g. request_threads=1")
    arguments = parser.parse_args()
    unknown = set((arguments.scenarios or "").split(",")) - set(SCENARIOS) - {""}
    if unknown:
        parser.error(f"--scenarios: unknown {', '.join(sorted(unknown))}")
    began, load_start = time.perf_counter(), os.getloadavg()
    full = arguments.full
    plan = FULL if full else QUICK
    rates = dict(plan.rates)
    for setting in arguments.rate:
        name, _, value = setting.partition("=")
        if name not in rates:
            parser.error(f"--rate: no scenario {name!r} with a rate (one of {', '.join(rates)})")
        rates[name] = float(value)
    plan = Plan(plan.warmup_s, plan.measured_s, plan.drain_s, plan.ladder, rates,
                arguments.connections, retries=arguments.retries)
    settings = {}
    for setting in arguments.setting:
        name, equals, value = setting.partition("=")
        if not equals or not name:
            parser.error(f"--setting {setting!r}: expected NAME=VALUE, e.g. request_threads=1")
        settings[name] = value
    spec = WorldSpec(users=arguments.users or USERS["full" if full else "quick"],
                     extra_offers=arguments.offers)
    setup_log: list[str] = []
    world = prepare(spec, arguments.fresh, setup_log)
    print(f"world {world.root} ({'cached' if world.cached else 'built'} in "
          f"{world.setup_s:.1f}s: {', '.join(setup_log)})", file=sys.stderr)
    redis = BenchRedis(world.data_dir)
    redis.start(restore=world.snapshot)
    bench = Bench(plan, redis)
    locust_s = arguments.locust if arguments.locust is not None else (20 if full else 0)
    runs: dict[str, Any] = {}
    try:
        for position, workers in enumerate(arguments.workers):
            wanted = (arguments.scenarios.split(",") if arguments.scenarios
                      else list(SCENARIOS) if full or position == 0 else [])
            runs[str(workers)] = run_workers(
                bench, world, redis, workers, arguments.pin, wanted, not arguments.no_curve,
                locust_s if position == 0 else 0, BATCHES["full" if full else "quick"],
                settings)
    finally:
        redis.stop()
    result = {"benchmark": "serving", "command": command("benchmarks.serving"),
              "machine": machine(), "mode": "full" if full else "quick",
              "load_average": {"start": [round(x, 2) for x in load_start],
                               "end": [round(x, 2) for x in os.getloadavg()]},
              "elapsed_s": round(time.perf_counter() - began, 1), "server_settings": settings,
              "world": world.describe() | {"setup_steps": setup_log},
              "plan": {"warmup_s": plan.warmup_s, "measured_s": plan.measured_s,
                       "drain_s": plan.drain_s, "ladder": list(plan.ladder),
                       "rates": plan.rates, "connections": plan.connections,
                       "batches": BATCHES["full" if full else "quick"],
                       "retries": plan.retries, "stop_p99_ms": plan.stop_p99_ms,
                       "latency": "from the scheduled send time (open loop)"},
              "runs": runs}
    result["targets"] = report.targets(runs)
    write_result("serving", result)
    print(report.markdown(result), file=sys.stderr)


if __name__ == "__main__":
    main()
