"""`nbo generate`: a synthetic CRM world, written chunk by chunk, with its ground truth.

Users are simulated in fixed-size chunks, each with its own random stream derived from
the seed, so the output is identical for a seed and memory stays bounded by a chunk.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from features.contract.files import FORMATS, write_table
from features.contract.schema import Channel, EventType
from training.synthetic.browsing import simulate_browsing
from training.synthetic.catalog import Catalog, build_catalog
from training.synthetic.clock import Clock
from training.synthetic.events import CHANNELS
from training.synthetic.messaging import simulate_messages
from training.synthetic.offers import OfferSet, build_offers
from training.synthetic.population import MESSAGE_CHANNELS, TIMEZONES, build_population
from training.synthetic.state import ChunkState
from training.synthetic.truth import truth_tables

CHUNK_USERS = 5_000
DUPLICATE_SHARE = 0.003  # events delivered twice, as at-least-once pipelines do
MISSING_BRAND_SHARE = 0.03  # view events whose brand the tracker lost
CATALOG_STREAM = 1 << 30


@dataclass(frozen=True)
class WorldSummary:
    directory: Path
    users: int
    days: int
    events: int
    chunks: int


def _users_frame(state: ChunkState, clock: Clock) -> pl.DataFrame:
    users = state.users
    signup_hour = (users.activity_peak + 1) % 24
    signup = clock.local_midnight(users.tz_index, users.signup_day) + signup_hour * 3600
    consent = {f"consent_{name}": users.consent[:, i] for i, name in enumerate(MESSAGE_CHANNELS)}
    return pl.DataFrame({
        "user_id": users.ids,
        "signup_ts": pl.Series(signup * 1_000_000).cast(pl.Datetime("us", "UTC")),
        "country": users.country,
        "timezone": np.array(TIMEZONES)[users.tz_index],
        **consent,
        "consent_web": np.ones(len(users), dtype=bool),
    })


def _lifecycle_events(state: ChunkState, clock: Clock) -> None:
    users = state.users
    joined = np.flatnonzero(users.signup_day >= 0)
    at = (clock.local_midnight(users.tz_index[joined], users.signup_day[joined])
          + ((users.activity_peak[joined] + 1) % 24) * 3600)
    state.events.add(EventType.SIGNUP, user=joined, ts=at,
                     channel=CHANNELS.index(Channel.WEB))
    app = users.app_installed[joined]
    state.events.add(EventType.APP_INSTALL, user=joined[app], ts=at[app] + 600,
                     channel=CHANNELS.index(Channel.IN_APP))


def _messy(events: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Real logs lose brands and deliver some events twice."""
    lost = (rng.random(events.height) < MISSING_BRAND_SHARE) & (
        events["event_type"] == EventType.VIEW.value).to_numpy()
    events = events.with_columns(brand=pl.when(pl.Series(lost)).then(None)
                                 .otherwise(pl.col("brand")))
    again = np.flatnonzero(rng.random(events.height) < DUPLICATE_SHARE)
    return events[np.sort(np.concatenate([np.arange(events.height), again]))]


def _clear_previous_world(out: Path) -> None:
    """Remove what an earlier run wrote here, so two worlds are never mixed."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("events", "ground_truth"):
        shutil.rmtree(out / name, ignore_errors=True)
    for table in ("users", "items"):
        for fmt in FORMATS:
            (out / f"{table}.{fmt}").unlink(missing_ok=True)
    (out / "offers.yaml").unlink(missing_ok=True)


def simulate_chunk(seed: int, chunk: int, first_user: int, n: int, catalog: Catalog,
                   offers: OfferSet, clock: Clock,
                   activity: float = 1.0) -> tuple[ChunkState, pl.DataFrame]:
    """Simulate one chunk of users over the whole window; returns its state and events."""
    rng = np.random.default_rng([seed, chunk])
    population = build_population(rng, catalog, offers, first_user, n, clock.days)
    state = ChunkState.start(rng, catalog, offers, clock, population, activity)
    _lifecycle_events(state, clock)
    for day in range(clock.days):
        simulate_browsing(state, day)
        simulate_messages(state, day)
    events = state.events.frame(population.ids, catalog, offers.ids, chunk)
    in_window = (pl.col("ts") >= clock.timestamp(0)) & (pl.col("ts") < clock.timestamp(
        clock.days))
    return state, _messy(events.filter(in_window), rng)


def generate_world(out: Path, users: int, days: int, seed: int, start: date = date(2026, 1, 5),
                   fmt: str = "parquet", chunk_users: int = CHUNK_USERS,
                   progress: Callable[[int], None] | None = None,
                   activity: float = 1.0) -> WorldSummary:
    """Write a world of `users` users over `days` days into `out` (see docs/synthetic.md);
    `activity` scales how often users browse (0.11: about 20 events per user over 50 days)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if activity <= 0:
        raise ValueError(f"activity must be above 0, got {activity}")
    _clear_previous_world(out)
    clock = Clock(start, days)
    catalog = build_catalog(np.random.default_rng([seed, CATALOG_STREAM]))
    offers = build_offers(catalog, clock.timestamp(0), days, users)
    write_table(catalog.items_frame(), out / f"items.{fmt}")
    (out / "offers.yaml").write_text(yaml.safe_dump({"offers": offers.records}, sort_keys=False))
    truth_dir = out / "ground_truth"
    write_table(catalog.categories_frame(), truth_dir / "categories.parquet")

    total_events = 0
    user_frames: list[pl.DataFrame] = []
    chunks = range((users + chunk_users - 1) // chunk_users)
    for chunk in chunks:
        first = chunk * chunk_users
        n = min(chunk_users, users - first)
        state, events = simulate_chunk(seed, chunk, first, n, catalog, offers, clock,
                                       activity)
        write_table(events, out / "events" / f"part-{chunk:05d}.{fmt}")
        total_events += events.height
        user_frames.append(_users_frame(state, clock))
        for name, table in truth_tables(state.users, catalog, offers, clock).items():
            write_table(table, truth_dir / name / f"part-{chunk:05d}.parquet")
        if progress is not None:
            progress(n)
    write_table(pl.concat(user_frames), out / f"users.{fmt}")
    summary = WorldSummary(out, users, days, total_events, len(chunks))
    (truth_dir / "world.json").write_text(json.dumps({
        "seed": seed, "users": users, "days": days, "start": start.isoformat(),
        "end": clock.timestamp(days).date().isoformat(), "events": total_events,
        "chunk_users": chunk_users, "format": fmt, "activity": activity,
    }, indent=2) + "\n")
    return summary
