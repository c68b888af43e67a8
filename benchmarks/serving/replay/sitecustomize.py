"""Run by every Python process started with this directory on its PYTHONPATH (the `site`
module's hook), so by each `nbo serve` worker the budget benchmark starts: with
BENCH_DECIDE_US set, the worker's decisions are replayed at that CPU cost
(benchmarks/serving/replayed.py)."""

import os

_cost = os.environ.get("BENCH_DECIDE_US")
if _cost is not None:
    from benchmarks.serving.replayed import replay_decisions

    replay_decisions(float(_cost))
