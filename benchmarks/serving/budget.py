"""How much deciding the single-decision latency target leaves on this machine.

    python -m benchmarks.serving.budget [--costs 0 100 150 200 250 300 400] [--rounds 1]

Runs the serving benchmark's single-decision step (its world, client and plan: 1,500
requests/s offered to 2 workers by default) against `nbo serve` deciding for real, then
against workers whose deciding is replaced by replays costing each of `--costs`
microseconds of CPU per request (benchmarks/serving/replayed.py): everything else on the
request path runs as served (HTTP, keys, the coalescer, the Redis read and unpacking, the
catalog check, the log, JSON). The budget is the highest cost at which the step held the
target (p99 within the bound, every request answered, the client not limited), every
lower cost having held it too. Writes benchmarks/results/decision_budget.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import command, machine, write_result
from benchmarks.serving import report
from benchmarks.serving.__main__ import BATCHES, QUICK, USERS, run_workers
from benchmarks.serving.replayed import COST_VARIABLE
from benchmarks.serving.runner import Bench, Plan, passes
from benchmarks.serving.servers import BenchRedis
from benchmarks.serving.world import WorldSpec, prepare

HOOK = Path(__file__).parent / "replay"
"""The directory whose sitecustomize replays a worker's decisions (put on its PYTHONPATH)."""
ROOT = Path(__file__).parents[2]


def replay_environment(cost_us: float) -> dict[str, str]:
    """What `nbo serve` needs in its environment to replay its decisions at `cost_us`."""
    paths = [str(HOOK), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), COST_VARIABLE: f"{cost_us:g}"}


def budget_us(steps: Sequence[dict[str, Any]]) -> float | None:
    """The highest replay cost held, every lower one held too (all rounds); None when
    even the cheapest missed."""
    held = None
    for cost in sorted({step["decide_us"] for step in steps}):
        if not all(step["held"] for step in steps if step["decide_us"] == cost):
            break
        held = cost
    return held


def _step(run: dict[str, Any], decide_us: float | None, bound_ms: float) -> dict[str, Any]:
    point, base = (run["scenarios"][name] for name in ("decision", "baseline_decision"))
    return {"decide_us": decide_us, "held": passes(point, bound_ms),
            "offered_rps": point["offered_rps"], "done_rps": point["throughput_rps"],
            "p50_ms": point["latency_ms"].get("p50"), "p99_ms": point["latency_ms"].get("p99"),
            "errors": point["error_count"], "client_limited": point["client_limited"],
            "server_cpu_us_per_request": point["server_cpu_us_per_request"],
            "redis_cpu_us_per_request": point["redis_cpu_us_per_request"],
            "client_cpu_us_per_request": point["client_cpu_us_per_request"],
            "breakdown": point.get("breakdown"),
            "baseline": {"p99_ms": base["latency_ms"].get("p99"),
                         "server_cpu_us_per_request": base["server_cpu_us_per_request"]},
            "load_average_1m": point["load_average_1m"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--costs", type=float, nargs="+",
                        default=[0, 100, 150, 200, 250, 300, 400],
                        help="CPU microseconds a replayed decision costs")
    parser.add_argument("--rate", type=float, default=QUICK.rates["decision"],
                        help="single decisions offered per second")
    parser.add_argument("--bound-ms", type=float, default=5.0, help="the p99 bound")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=QUICK.measured_s,
                        help="measured seconds of each step")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times each cost (and the real decisions) is run, interleaved")
    arguments = parser.parse_args()
    if any(cost < 0 for cost in arguments.costs):
        parser.error("--costs: a cost is a number of microseconds, 0 or more")
    began, load_start = time.perf_counter(), os.getloadavg()
    plan = Plan(QUICK.warmup_s, arguments.seconds, QUICK.drain_s, (),
                dict(QUICK.rates, decision=arguments.rate))
    world = prepare(WorldSpec(users=USERS["quick"], extra_offers=220))
    redis = BenchRedis(world.data_dir)
    redis.start(restore=world.snapshot)
    bench = Bench(plan, redis)
    steps: list[dict[str, Any]] = []
    try:
        for _ in range(arguments.rounds):
            for cost in [None, *arguments.costs]:
                run = run_workers(bench, world, redis, arguments.workers, "none", ["decision"],
                                  False, 0, BATCHES["quick"], {},
                                  None if cost is None else replay_environment(cost))
                steps.append(_step(run, cost, arguments.bound_ms))
                label = "real decisions" if cost is None else f"replays at {cost:g} us"
                print(report.step_line(label, run["scenarios"]["decision"]), file=sys.stderr)
    finally:
        redis.stop()
    replays = [step for step in steps if step["decide_us"] is not None]
    result = {"benchmark": "decision_budget", "command": command("benchmarks.serving.budget"),
              "machine": machine(),
              "load_average": {"start": [round(x, 2) for x in load_start],
                               "end": [round(x, 2) for x in os.getloadavg()]},
              "elapsed_s": round(time.perf_counter() - began, 1),
              "world": world.describe(), "rate": arguments.rate, "workers": arguments.workers,
              "bound_ms": arguments.bound_ms, "measured_s": arguments.seconds, "steps": steps,
              "budget_us": budget_us(replays),
              "real_held": all(step["held"] for step in steps if step["decide_us"] is None)}
    write_result("decision_budget", result)
    print(_summary(result), file=sys.stderr)


def _summary(result: dict[str, Any]) -> str:
    lines = [f"| deciding | p50 ms | p99 ms | done rps | server CPU us/req | client limited "
             f"| held p99 <= {result['bound_ms']:g} ms |", "|" + " --- |" * 7]
    for step in result["steps"]:
        cost = step["decide_us"]
        lines.append(f"| {'real' if cost is None else f'replay, {cost:g} us'} | "
                     f"{step['p50_ms']} | {step['p99_ms']} | {step['done_rps']:,.0f} | "
                     f"{step['server_cpu_us_per_request']:,.0f} | {step['client_limited']} | "
                     f"{'yes' if step['held'] else 'no'} |")
    budget = result["budget_us"]
    lines.append(f"\nAt {result['rate']:,.0f} decisions/s on {result['workers']} workers, "
                 + ("no replay cost held the target" if budget is None
                    else f"deciding may cost at most {budget:g} us of CPU per request"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
