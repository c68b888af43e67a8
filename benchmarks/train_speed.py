"""How long `nbo train` takes, stage by stage, and what it measures.

    python -m benchmarks.train_speed --users 20000 --days 90
    python -m benchmarks.train_speed --users 1000000 --days 50 --activity 0.11  # 20M events
    python -m benchmarks.train_speed --world W   # an existing data set

Writes benchmarks/results/train.json: the machine, the command, the data size, seconds
per stage, peak memory and the version's metrics.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import redis

from benchmarks.common import command, machine, write_result
from models.registry import ModelRegistry
from nbo.redis_server import EmbeddedRedis
from training.sample import MAX_TRAINING_USERS
from training.synthetic.world import generate_world
from training.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--activity", type=float, default=1.0,
                        help="how often users browse, relative to the default world")
    parser.add_argument("--world", type=Path, help="use this data set (default: generate)")
    parser.add_argument("--max-users", type=int, default=MAX_TRAINING_USERS,
                        help="train on a sample of this many users (0: every user)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="nbo-train-bench-"))
    world = args.world or scratch / "world"
    if args.world is None:
        generate_world(world, args.users, args.days, args.seed, activity=args.activity)
    server = EmbeddedRedis(scratch / "redis")
    server.start()
    try:
        began = time.perf_counter()
        version = train(world, ModelRegistry(scratch / "models", redis.Redis.from_url(
            server.url)), max_users=args.max_users)
        seconds = time.perf_counter() - began
    finally:
        server.stop()
        shutil.rmtree(scratch)
    write_result("train", {
        "benchmark": "train", "command": command("benchmarks.train_speed"),
        "machine": machine(), "data": version.meta["data"],
        "seconds": round(seconds, 1), "stages_s": version.meta["timings_s"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "metrics": version.metrics["metrics"],
    })


if __name__ == "__main__":
    main()
