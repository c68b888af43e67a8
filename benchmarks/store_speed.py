"""Feature store speed and size: batch pass, publish, one user's read, live apply, memory.

    python -m benchmarks.store_speed --users 100000 --days 90 --replicate 10

The batch pass runs over a generated world; the publish writes its packed records
`--replicate` times under distinct ids (10 x 100k users = 1M users) into a fresh embedded
Redis, so memory and publish rate are measured at the million-user scale without
simulating a million users. Writes benchmarks/results/store.json.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import redis

from benchmarks.common import command, machine, percentiles_us, write_result
from features.event import Event
from features.pipeline import compute_features, load_inputs
from features.store import keys
from features.store.layout import RECORD
from features.store.pack import pack
from features.store.redis_store import USERS_PER_BUCKET, RedisFeatureStore, new_version_id
from nbo.redis_server import EmbeddedRedis
from training.synthetic.world import generate_world

GIB = 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--world", type=Path, help="use this world (default: generate one)")
    parser.add_argument("--replicate", type=int, default=10)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=5_000)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="nbo-store-bench-"))
    world = args.world or scratch / "world"
    if args.world is None:
        generate_world(world, args.users, args.days, args.seed)
    result: dict[str, Any] = {"benchmark": "store", "command": command(
        "benchmarks.store_speed"), "machine": machine()}
    server = EmbeddedRedis(scratch / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        store = RedisFeatureStore(client)
        batch, events = _batch(world, result)
        user_ids = _publish(store, client, batch, args.replicate, result)
        _reads(store, client, user_ids, args.reads, result)
        _live(store, events, batch.anchor, args.events, result)
    finally:
        server.stop()
        shutil.rmtree(scratch)
    write_result("store", result)


def _batch(world: Path, result: dict[str, Any]) -> tuple[Any, pl.DataFrame]:
    began = time.perf_counter()
    events, users, items = load_inputs(world)
    loaded = time.perf_counter()
    batch = compute_features(events, users, items)
    computed = time.perf_counter()
    result["batch"] = {"users": batch.users.height, "events": events.height,
                       "load_seconds": round(loaded - began, 2),
                       "features_seconds": round(computed - loaded, 2),
                       "events_per_second": round(events.height / (computed - began)),
                       "peak_rss_mib": round(
                           resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    return batch, events


def _publish(store: RedisFeatureStore, client: redis.Redis, batch: Any, copies: int,
             result: dict[str, Any]) -> list[str]:
    began = time.perf_counter()
    base_ids, records, meta = pack(batch, "", 1)
    packed = time.perf_counter() - began
    user_ids = [f"{user_id}~{copy}" if copy else user_id
                for copy in range(copies) for user_id in base_ids]
    meta = replace(meta, version=new_version_id(), users=len(user_ids),
                   buckets=math.ceil(len(user_ids) / USERS_PER_BUCKET))
    before = int(client.info("memory")["used_memory"])
    report = store.publish_packed(user_ids, np.tile(records, copies), meta)
    used = int(client.info("memory")["used_memory"]) - before
    encoding = client.object("encoding", keys.profiles(meta.version, 0))
    result["publish"] = {
        "users": len(user_ids), "copies_of_the_world": copies,
        "pack_seconds_per_copy": round(packed, 2), "write_seconds": round(report.seconds, 2),
        "users_per_second": round(len(user_ids) / (report.seconds + packed * copies)),
        "users_per_second_write_only": round(len(user_ids) / report.seconds),
        "record_bytes": RECORD.itemsize,
        "redis_bytes_per_user": round(used / len(user_ids), 1),
        "redis_gib_per_million_users": round(used / len(user_ids) * 1e6 / GIB, 3),
        "profile_hash_encoding": encoding.decode() if isinstance(encoding, bytes) else str(
            encoding),
    }
    return user_ids


def _reads(store: RedisFeatureStore, client: redis.Redis, user_ids: list[str], reads: int,
           result: dict[str, Any]) -> None:
    rng = random.Random(7)
    sample = [rng.choice(user_ids) for _ in range(reads)]
    store.read(sample[0])
    full, trip = [], []
    meta = store.current()
    assert meta is not None
    for user_id in sample:
        started = time.perf_counter_ns()
        store.read(user_id)
        full.append(time.perf_counter_ns() - started)
        bucket = keys.bucket_of(user_id, meta.buckets)
        started = time.perf_counter_ns()
        pipe = client.pipeline(transaction=True)
        pipe.get(keys.CURRENT)
        pipe.hget(keys.profiles(meta.version, bucket), user_id)
        pipe.hgetall(keys.live(meta.version, bucket, user_id))
        pipe.execute()
        trip.append(time.perf_counter_ns() - started)
    result["read"] = {"reads": reads, "read_us": percentiles_us(full),
                      "redis_round_trip_us": percentiles_us(trip)}


def _live(store: RedisFeatureStore, events: pl.DataFrame, anchor: Any, count: int,
          result: dict[str, Any]) -> None:
    """The last `count` events again, a day later under new ids, as live events."""
    tail = events.sort("ts").tail(count)
    live = [replace(Event.from_row(row), ts=row["ts"] + timedelta(days=1),
                    event_id=f"live-{n}") for n, row in enumerate(tail.iter_rows(named=True))]
    samples = []
    began = time.perf_counter()
    for event in live:
        started = time.perf_counter_ns()
        store.apply(event)
        samples.append(time.perf_counter_ns() - started)
    seconds = time.perf_counter() - began
    result["live_apply"] = {"events": len(live), "events_per_second": round(len(live) / seconds),
                            "apply_us": percentiles_us(samples), "anchor": anchor.isoformat()}


if __name__ == "__main__":
    main()
