"""The serving result as lines while it runs, targets checked, and markdown tables."""

from __future__ import annotations

from typing import Any

from benchmarks.serving.runner import passes

TARGET_RATE = 1500.0
TARGET_P99_MS = 5.0
TARGET_CAPACITY = 3000.0
TARGET_CAPACITY_P99_MS = 10.0
TARGET_SHARE = 0.5


def _ms(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):.2f}"


def _rate(value: object) -> str:
    if value is None:
        return "-"
    number = float(str(value))
    return f"{number:,.0f}" if number >= 10 else f"{number:.2f}"


def step_line(label: str, point: dict[str, Any]) -> str:
    latency = point["latency_ms"]
    flags = [f"errors {point['errors']}"] if point["error_count"] else []
    if point["client_limited"]:
        flags.append("CLIENT LIMITED")
    if point.get("stopped_by"):
        flags.append(f"stop: {point['stopped_by']}")
    return (f"{label:<22} offered {_rate(point['offered_rps']):>8}  "
            f"done {_rate(point['throughput_rps']):>8}  p50 {_ms(latency.get('p50')):>7}  "
            f"p99 {_ms(latency.get('p99')):>8}  "
            f"cpu {point['server_cpu_us_per_request']:>7,.0f} us/req  "
            f"lag p99 {_ms(point['client_wake_lag_ms'].get('p99'))}  load "
            f"{point['load_average_1m']}  {'  '.join(flags)}")


def _at_rate(run: dict[str, Any], rate: float) -> dict[str, Any] | None:
    """nbo's single-decision step at `rate`: the scenario if it ran there, else the curve's."""
    scenario = run.get("scenarios", {}).get("decision")
    if scenario and abs(scenario["offered_rps"] - rate) < 1:
        return dict(scenario)
    for point in run.get("curve", {}).get("nbo", []):
        if abs(point["offered_rps"] - rate) < 1:
            return dict(point)
    return None


def targets(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the benchmarks issue, per worker count: the measured value and
    whether it was met."""
    checks: list[dict[str, Any]] = []
    for workers, run in runs.items():
        point = _at_rate(run, TARGET_RATE)
        p99 = point["latency_ms"]["p99"] if point else None
        # a step the client could not keep up with is not the server's (runner.passes);
        # None: not measured in this run
        checks.append({"workers": int(workers), "target": "single decision p99 <= 5 ms at "
                       "1,500 rps offered (~200 candidates)", "measured_p99_ms": p99,
                       "met": None if point is None else passes(point, TARGET_P99_MS)})
        caps = run.get("capacity_rps", {}).get("nbo", {})
        held = caps.get(f"p99<={TARGET_CAPACITY_P99_MS:g}ms")
        curve = "capacity_rps" in run
        checks.append({"workers": int(workers), "target": ">= 3,000 rps with p99 <= 10 ms",
                       "measured_rps": held,
                       "met": (held is not None and held >= TARGET_CAPACITY) if curve else None})
        for bound, share in run.get("nbo_over_baseline_rps", {}).items():
            checks.append({"workers": int(workers), "target": f"nbo rps >= 50% of the "
                           f"baseline's at {bound}", "measured_share": share,
                           "met": share is not None and share >= TARGET_SHARE})
    return checks


def markdown(result: dict[str, Any]) -> str:
    """Tables of the scenarios, the stage breakdown, the capacity curves and targets."""
    load = result["load_average"]
    lines = [f"Mode {result['mode']}, {result['elapsed_s']:.0f} s in all; load average "
             f"{load['start']} at the start, {load['end']} at the end; "
             f"{result['machine']['cpus']} CPUs.", ""]
    for workers, run in result["runs"].items():
        lines += [f"### {workers} worker(s): CPUs {run['affinity']}", ""]
        scenarios = run.get("scenarios", {})
        if scenarios:
            lines += ["| scenario | offered rps | done rps | p50 ms | p95 ms | p99 ms | max ms "
                      "| errors | server CPU us/req | Redis CPU us/req | client lag p99 ms | "
                      "load 1m |", "|" + " --- |" * 12]
            for name, point in scenarios.items():
                latency = point["latency_ms"]
                mark = " (client limited)" if point["client_limited"] else ""
                lines.append(
                    f"| {name}{mark} | {_rate(point['offered_rps'])} | "
                    f"{_rate(point['throughput_rps'])} | {_ms(latency.get('p50'))} | "
                    f"{_ms(latency.get('p95'))} | {_ms(latency.get('p99'))} | "
                    f"{_ms(latency.get('max'))} | {point['error_count']} | "
                    f"{point['server_cpu_us_per_request']:,.0f} | "
                    f"{point['redis_cpu_us_per_request']:,.0f} | "
                    f"{_ms(point['client_wake_lag_ms'].get('p99'))} | "
                    f"{point['load_average_1m']} |")
            lines.append("")
            lines += _breakdown(scenarios)
        held = [point for point in run.get("curve", {}).get("nbo", [])
                if point.get("breakdown") and not point.get("stopped_by")]
        if held:
            lines += _breakdown({f"decision at {held[0]['offered_rps']:,.0f} rps": held[0]})
        if "event_to_decision" in run:
            seen = run["event_to_decision"]
            lines += [f"Live event visible to the next decision (one client, sequential, "
                      f"{seen['samples']} samples, {seen['visible_share']:.0%} visible): "
                      f"event then decision p50 "
                      f"{seen['event_then_decision_us']['p50'] / 1e3:.2f} ms, p99 "
                      f"{seen['event_then_decision_us']['p99'] / 1e3:.2f} ms (the event alone "
                      f"p50 {seen['event_us']['p50'] / 1e3:.2f} ms).", ""]
        if "curve" in run:
            lines += _curve(run)
        if "locust" in run:
            lines += _locust(run["locust"])
    lines += ["| workers | target | measured | met |", "| --- | --- | --- | --- |"]
    for check in result.get("targets", []):
        measured = next(value for key, value in check.items() if key.startswith("measured"))
        lines.append(f"| {check['workers']} | {check['target']} | {measured} | "
                     f"{_verdict(check['met'])} |")
    return "\n".join(lines) + "\n"


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else "yes" if met else "no"


def _breakdown(scenarios: dict[str, Any]) -> list[str]:
    lines = []
    for name, point in scenarios.items():
        split = point.get("breakdown")
        if not split or not split.get("stages"):
            continue
        lines += [f"Where a `{name}` request's time goes (nbo's own histograms, mean per "
                  "call; the client saw p50 "
                  f"{_ms(point['latency_ms'].get('p50'))} ms, the server used "
                  f"{point['server_cpu_us_per_request']:,.0f} us CPU per request):", "",
                  "| part | calls | mean us | us per request |", "| --- | --- | --- | --- |"]
        for kind in ("routes", "stages"):
            for part, figures in split[kind].items():
                label = f"route {part}" if kind == "routes" else f"stage {part}"
                lines.append(f"| {label} | {figures['calls']:,} | {figures['mean_us']:,.0f} | "
                             f"{figures['us_per_request']:,.0f} |")
        outside = split.get("outside_stages_us_per_request")
        if outside is not None:
            lines.append(f"| route less stages (HTTP, validation, JSON, metrics) | | | "
                         f"{outside:,.0f} |")
        lines.append("")
    return lines


def _curve(run: dict[str, Any]) -> list[str]:
    nbo = {p["offered_rps"]: p for p in run["curve"]["nbo"]}
    base = {p["offered_rps"]: p for p in run["curve"]["baseline"]}
    lines = ["| offered rps | nbo done rps | nbo p50 | nbo p99 | nbo CPU us/req | "
             "baseline done rps | baseline p50 | baseline p99 | baseline CPU us/req | "
             "p99 ratio |", "|" + " --- |" * 10]
    for rate in sorted(set(nbo) | set(base)):
        mine, theirs = nbo.get(rate), base.get(rate)
        cells = [_rate(rate)]
        for point in (mine, theirs):
            if point is None:
                cells += ["-"] * 4
                continue
            mark = " (client limited)" if point["client_limited"] else ""
            cells += [_rate(point["throughput_rps"]), _ms(point["latency_ms"].get("p50")),
                      _ms(point["latency_ms"].get("p99")) + mark,
                      f"{point['server_cpu_us_per_request']:,.0f}"]
        ratio = run.get("nbo_over_baseline_p99_by_rate", {}).get(f"{rate:g}")
        cells.append("-" if ratio is None else f"{ratio:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    caps = run.get("capacity_rps", {})
    lines += ["", "| server | max rps, p99 <= 5 ms | <= 10 ms | <= 25 ms |",
              "| --- | --- | --- | --- |"]
    for name, held in caps.items():
        lines.append(f"| {name} | " + " | ".join(_rate(value) for value in held.values())
                     + " |")
    shares = run.get("nbo_over_baseline_rps", {})
    lines += ["", "nbo / baseline rps at the same p99 bound: " + ", ".join(
        f"{bound}: {'-' if share is None else f'{share:.2f}'}"
        for bound, share in shares.items()), ""]
    return lines


def _locust(figures: dict[str, Any]) -> list[str]:
    if "error" in figures:
        return [f"locust: {figures['error']}", ""]
    lines = [f"locust, closed loop ({figures['locust_users']} users, at most "
             f"{figures['rate_per_user']:g} requests/s each, {figures['seconds']} s; "
             "response times as locust rounds them):", "",
             "| request | requests | failures | rps | p50 ms | p95 ms | p99 ms | max ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in figures.items():
        if isinstance(row, dict):
            lines.append(f"| {name} | {row['requests']:,} | {row['failures']} | {row['rps']} | "
                         f"{row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | "
                         f"{row['max_ms']} |")
    return [*lines, ""]
