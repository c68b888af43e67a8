"""Where a server's time went during a step: its Prometheus histograms diffed over the step.

nbo exports `nbo_request_seconds` (time inside the app per request, by route) and
`nbo_decision_stage_seconds` (the engine's stages: read, decide and log computing,
redis_wait waiting for Redis replies); the difference of
their `_sum` and `_count` before and after a step gives the mean time of each.
"""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

Snapshot = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""(sample name, sorted labels) -> value."""

REQUEST = "nbo_request_seconds"
STAGE = "nbo_decision_stage_seconds"


def parse(text: str) -> Snapshot:
    """Every sample of a Prometheus text exposition."""
    snapshot: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snapshot[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return snapshot


def _diff_by(before: Snapshot, after: Snapshot, metric: str,
             key: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """(count, seconds) added during the step, summed by the labels in `key`."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for suffix, slot in (("_count", 0), ("_sum", 1)):
        for (name, labels), value in after.items():
            if name != metric + suffix:
                continue
            named = dict(labels)
            group = " ".join(named.get(label, "") for label in key)
            totals[group][slot] += value - before.get((name, labels), 0.0)
    return {group: (count, seconds) for group, (count, seconds) in totals.items() if count > 0}


def breakdown(before: Snapshot, after: Snapshot, requests: int) -> dict[str, object]:
    """Mean microseconds per call of each stage and route, and per HTTP request sent."""
    def described(count: float, seconds: float) -> dict[str, float]:
        return {"calls": int(count), "mean_us": round(seconds / count * 1e6, 1),
                "us_per_request": round(seconds / max(requests, 1) * 1e6, 1)}

    stages = _diff_by(before, after, STAGE, ("stage",))
    routes = {name: value for name, value in _diff_by(before, after, REQUEST,
                                                      ("method", "route")).items()
              if not name.endswith("/metrics")}
    result: dict[str, object] = {
        "stages": {name: described(*value) for name, value in sorted(stages.items())},
        "routes": {name: described(*value) for name, value in sorted(routes.items())}}
    if len(routes) == 1:  # what the route spends outside the engine's stages
        in_route = sum(seconds for _, seconds in routes.values())
        in_stages = sum(seconds for _, seconds in stages.values())
        result["outside_stages_us_per_request"] = round(
            (in_route - in_stages) / max(requests, 1) * 1e6, 1)
    return result
