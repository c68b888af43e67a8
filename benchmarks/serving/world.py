"""The world a serving benchmark runs against, set up once and cached under .nbo/bench/.

Setup does what an operator would: `nbo generate` (a window ending today, so offers are
valid now), `nbo train`, `nbo models promote` of the new version, `nbo publish`, then
`PUT /v1/offers/{id}` of extra offers through a running API until a decision has about
`--offers` candidates. The embedded Redis's append-only file is then compacted and kept:
every run starts from that copy, so runs see the same state and earlier runs' decisions
and events do not pile up.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl

from benchmarks.serving.servers import BenchRedis, Http, nbo_environment, start_nbo
from features.contract.schema import OfferKind
from features.store.layout import layout
from models.offer_response import FEATURES_MARK

CACHE = Path(".nbo/bench/serving")
MAX_AGE = timedelta(days=7)
"""A cached world older than this is built again: its users' recency drifts with time."""
MODEL_COLUMNS = hashlib.sha256(FEATURES_MARK.encode()).hexdigest()[:16]
"""A cached world whose offer model has other columns is built again: it would be refused."""
RECORD_LAYOUT = hashlib.sha256(orjson.dumps(layout())).hexdigest()[:16]
"""A cached world published with another record layout is built again: its records would
be read through the older layout's slower path."""


@dataclass(frozen=True)
class WorldSpec:
    users: int
    days: int = 60
    seed: int = 1
    extra_offers: int = 200

    @property
    def name(self) -> str:
        return f"u{self.users}-d{self.days}-s{self.seed}-o{self.extra_offers}"


@dataclass(frozen=True)
class Item:
    item_id: str
    category: str
    brand: str
    price: float


@dataclass(frozen=True)
class World:
    spec: WorldSpec
    root: Path
    users: list[str]
    items: list[Item]
    catalog_offers: int
    model_version: str
    created: str
    built_in_s: float
    setup_s: float
    cached: bool

    @property
    def world_dir(self) -> Path:
        return self.root / "world"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def snapshot(self) -> Path:
        return self.root / "redis-snapshot.aof"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def describe(self) -> dict[str, object]:
        return {"users": self.spec.users, "days": self.spec.days, "seed": self.spec.seed,
                "catalog_offers": self.catalog_offers, "extra_offers": self.spec.extra_offers,
                "model_version": self.model_version, "created": self.created,
                "cache": str(self.root), "cached": self.cached, "built_in_s": self.built_in_s,
                "setup_s": self.setup_s}


def extra_offers(count: int, categories: list[str], seed: int = 3) -> list[dict[str, object]]:
    """Offers any ordinary user may get: no journey, lifecycle or segment rule, no budget
    or per-user cap (so repeated decisions keep the same candidates), of every kind and a
    range of values; a few restricted to categories (eligible with an interest in one)."""
    rng = random.Random(seed)
    kinds = [kind.value for kind in OfferKind]
    offers = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        value = 0.0 if kind == OfferKind.CONTENT else round(rng.uniform(1.0, 30.0), 2)
        share = {"voucher": 1.0, "cashback": 0.8, "free_shipping": 0.6, "top_up": 0.9,
                 "membership": 0.4}.get(kind, 0.0)
        restricted = rng.random() < 0.15
        offers.append({
            "offer_id": f"bench-{kind}-{index:03d}", "kind": kind, "value": value,
            "cost": round(value * share, 2),
            "categories": rng.sample(categories, rng.randint(1, 3)) if restricted else [],
            "min_order_value": float(rng.choice((0, 0, 10, 20, 40))),
        })
    return offers


def _nbo(arguments: list[str], data_dir: Path, log: Path) -> str:
    """Run an `nbo` command on the world's data directory; its stdout."""
    with open(log, "ab") as errors:
        done = subprocess.run([sys.executable, "-m", "nbo.cli", *arguments], check=False,
                              stdout=subprocess.PIPE, stderr=errors,
                              env=nbo_environment(data_dir))
    if done.returncode != 0:
        raise RuntimeError(f"nbo {' '.join(arguments)} failed ({done.returncode}); see {log}")
    return done.stdout.decode()


def _build(spec: WorldSpec, root: Path, redis: BenchRedis,
           report: list[str]) -> tuple[str, int]:
    """Generate, train, promote, publish and add offers: the served model version and the
    catalog's size."""
    if root.exists():
        shutil.rmtree(root)
    (root / "logs").mkdir(parents=True)
    log = root / "logs" / "setup.log"
    data_dir, world_dir, models_dir = root / "data", root / "world", root / "models"
    redis.start()
    start = (datetime.now(UTC).date() - timedelta(days=spec.days)).isoformat()
    stamp = time.perf_counter()

    def step(name: str) -> None:
        nonlocal stamp
        report.append(f"{name} {time.perf_counter() - stamp:.1f}s")
        stamp = time.perf_counter()

    _nbo(["generate", "--out", str(world_dir), "--users", str(spec.users), "--days",
          str(spec.days), "--seed", str(spec.seed), "--start", start], data_dir, log)
    step("generate")
    _nbo(["train", str(world_dir), "--models", str(models_dir), "--seed", str(spec.seed)],
         data_dir, log)
    step("train")
    listed = _nbo(["models", "list", "--models", str(models_dir)], data_dir, log)
    version = listed.split()[-1].lstrip("*").strip()
    _nbo(["models", "promote", version, "--models", str(models_dir)], data_dir, log)
    _nbo(["publish", str(world_dir)], data_dir, log)
    step("promote+publish")
    server = start_nbo(models_dir, data_dir, 1, None, root / "logs" / "setup-serve.log")
    try:
        server.wait_ready()
        client = Http(server.port)
        categories = sorted(pl.read_parquet(world_dir / "items.parquet")["category"].unique()
                            .drop_nulls().to_list())
        for offer in extra_offers(spec.extra_offers, categories, spec.seed):
            client.json("PUT", f"/v1/offers/{offer['offer_id']}", offer)
        catalog = client.json("GET", "/v1/offers")
        client.close()
    finally:
        server.stop()
    step("offers via PUT /v1/offers")
    assert isinstance(catalog, dict)
    return version, len(catalog["offers"])


def prepare(spec: WorldSpec, fresh: bool = False, log: list[str] | None = None) -> World:
    """The cached world for `spec`, built first when missing, stale or `fresh` asked."""
    root = (CACHE / spec.name).resolve()
    marker = root / "ready.json"
    report = log if log is not None else []
    began = time.perf_counter()
    cached = marker.exists() and not fresh
    if cached:
        meta = orjson.loads(marker.read_bytes())
        created = datetime.fromisoformat(meta["created"])
        cached = (datetime.now(UTC) - created < MAX_AGE
                  and meta.get("model_columns") == MODEL_COLUMNS
                  and meta.get("record_layout") == RECORD_LAYOUT
                  and (root / "redis-snapshot.aof").exists())
    if not cached:
        redis = BenchRedis(root / "data")
        version, catalog_offers = _build(spec, root, redis, report)
        redis.snapshot(root / "redis-snapshot.aof")
        meta = {"spec": asdict(spec), "created": datetime.now(UTC).isoformat(),
                "model_version": version, "model_columns": MODEL_COLUMNS,
                "record_layout": RECORD_LAYOUT,
                "catalog_offers": catalog_offers,
                "setup_s": round(time.perf_counter() - began, 1)}
        marker.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    users = pl.read_parquet(root / "world" / "users.parquet", columns=["user_id"])
    items = pl.read_parquet(root / "world" / "items.parquet",
                            columns=["item_id", "category", "brand", "price"]).drop_nulls()
    user_ids = users["user_id"].to_list()
    (root / "users.txt").write_text("\n".join(user_ids) + "\n")  # for the locustfile
    return World(spec, root, user_ids,
                 [Item(str(r["item_id"]), str(r["category"]), str(r["brand"]),
                       float(r["price"])) for r in items.iter_rows(named=True)],
                 int(meta["catalog_offers"]), str(meta["model_version"]), str(meta["created"]),
                 float(meta["setup_s"]), round(time.perf_counter() - began, 1), cached)
