"""The generated world is valid, deterministic, realistic, and carries its ground truth."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.contract.schema import EVENTS, USERS, EventType
from features.contract.tables import load_table
from features.contract.validate import validate_dataset
from training.synthetic.world import generate_world

WINDOW_DAYS = 60


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("world")
    generate_world(directory, users=4_000, days=WINDOW_DAYS, seed=7)
    return directory


@pytest.fixture(scope="module")
def events(world: Path) -> pl.DataFrame:
    return load_table(world, EVENTS).frame


@pytest.fixture(scope="module")
def sends(world: Path, events: pl.DataFrame) -> pl.DataFrame:
    """Logged sends with the local hour, whether opened, and the true best hour."""
    users = load_table(world, USERS).frame.select("user_id", "timezone")
    sent = events.filter(pl.col("event_type") == EventType.MESSAGE_SENT).join(users, on="user_id")
    local = [group.with_columns(local_hour=pl.col("ts").dt.convert_time_zone(zone).dt.hour())
             for (zone,), group in sent.group_by("timezone")]
    opened = (events.filter(pl.col("event_type") == EventType.MESSAGE_OPEN)
              .select("message_id").unique().with_columns(opened=pl.lit(True)))
    truth = pl.read_parquet(world / "ground_truth" / "channels")
    return (pl.concat(local).join(opened, on="message_id", how="left")
            .with_columns(pl.col("opened").fill_null(False))
            .join(truth.select("user_id", "channel", "best_hour_local"),
                  on=["user_id", "channel"]))


def _mean(series: pl.Series) -> float:
    value = series.mean()
    assert isinstance(value, float)
    return value


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_the_same_seed_gives_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate_world(tmp_path / name, users=300, days=14, seed=5)
    generate_world(tmp_path / "c", users=300, days=14, seed=6)
    first = _files(tmp_path / "a")
    assert first == _files(tmp_path / "b")
    assert first["events/part-00000.parquet"] != _files(tmp_path / "c")[
        "events/part-00000.parquet"]


def test_a_new_world_replaces_an_older_one_in_the_same_place(tmp_path: Path) -> None:
    generate_world(tmp_path, users=600, days=7, seed=5, chunk_users=300)
    generate_world(tmp_path, users=300, days=7, seed=5, chunk_users=300, fmt="csv")
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == ["part-00000.csv"]
    assert validate_dataset(tmp_path).ok


def test_chunks_do_not_change_the_first_users(tmp_path: Path) -> None:
    generate_world(tmp_path / "small", users=300, days=14, seed=5, chunk_users=300)
    generate_world(tmp_path / "large", users=900, days=14, seed=5, chunk_users=300)
    small = load_table(tmp_path / "small", EVENTS).frame
    large = load_table(tmp_path / "large", EVENTS).frame
    assert small.equals(large.filter(pl.col("event_id").str.starts_with("e0-")))


def test_lower_activity_means_fewer_shopping_sessions(tmp_path: Path) -> None:
    views = {}
    for activity in (1.0, 0.2):
        generate_world(tmp_path / str(activity), users=300, days=14, seed=5, activity=activity)
        events = load_table(tmp_path / str(activity), EVENTS).frame
        views[activity] = events.filter(pl.col("event_type") == EventType.VIEW).height
    assert 0.1 * views[1.0] < views[0.2] < 0.4 * views[1.0]
    with pytest.raises(ValueError, match="activity"):
        generate_world(tmp_path / "none", users=10, days=7, seed=5, activity=0.0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_formats_pass_validation(tmp_path: Path, fmt: str) -> None:
    generate_world(tmp_path, users=200, days=10, seed=3, fmt=fmt)
    assert (tmp_path / "events" / f"part-00000.{fmt}").exists()
    report = validate_dataset(tmp_path)
    assert report.ok, report.lines()


def test_the_world_passes_validation(world: Path) -> None:
    report = validate_dataset(world)
    assert report.ok, report.lines()


def test_logs_are_messy_like_real_ones(world: Path, events: pl.DataFrame) -> None:
    loaded = load_table(world, EVENTS)
    assert loaded.duplicates_dropped > 0
    assert set(events["event_type"].unique()) == {t.value for t in EventType}
    purchases = events.filter(pl.col("event_type") == EventType.PURCHASE)
    assert (purchases["quantity"] < 0).sum() > 0  # returns
    views = events.filter(pl.col("event_type") == EventType.VIEW)
    assert 0 < views["brand"].null_count() < 0.1 * views.height
    carts = int((events["event_type"] == EventType.ADD_TO_CART).sum())
    assert carts > 1.3 * int((purchases["quantity"] > 0).sum())  # abandoned carts
    users = load_table(world, USERS).frame
    assert 0.1 < _mean(users["consent_sms"]) < 0.6
    assert users["timezone"].n_unique() >= 8


def test_repeat_purchases_make_up_most_of_the_volume(events: pl.DataFrame) -> None:
    bought = events.filter((pl.col("event_type") == EventType.PURCHASE)
                           & (pl.col("quantity") > 0)).sort("ts")
    start = bought["ts"].min()
    late = bought.with_columns(
        seen=pl.col("ts").rank("ordinal").over("user_id", "category") > 1,
        late=pl.col("ts") >= start + pl.duration(days=WINDOW_DAYS // 2))
    assert _mean(late.filter(pl.col("late"))["seen"]) > 0.6


def test_category_views_follow_the_true_preferences(world: Path, events: pl.DataFrame) -> None:
    truth = pl.read_parquet(world / "ground_truth" / "category_affinity")
    views = events.filter(pl.col("event_type") == EventType.VIEW).group_by(
        "user_id", "category").len()
    joined = truth.join(views, on=["user_id", "category"], how="left").with_columns(
        pl.col("len").fill_null(0))
    per_user = joined.group_by("user_id").agg(
        r=pl.corr("preference", "len", method="spearman"), views=pl.col("len").sum())
    assert _mean(per_user.filter(pl.col("views") >= 20)["r"]) > 0.4


def test_opens_peak_at_the_true_best_hour(sends: pl.DataFrame) -> None:
    gap = (pl.col("local_hour") - pl.col("best_hour_local")).abs()
    by_distance = (sends.with_columns(distance=pl.min_horizontal(gap, 24 - gap))
                   .group_by("distance").agg(rate=pl.col("opened").mean()).sort("distance"))
    rates = by_distance["rate"].to_list()
    assert rates.index(max(rates)) <= 1
    assert rates[0] > 3 * rates[-1]


def test_logged_conversions_match_the_true_probabilities(
    world: Path, events: pl.DataFrame, sends: pl.DataFrame
) -> None:
    truth = world / "ground_truth"
    converted = (events.filter((pl.col("event_type") == EventType.PURCHASE)
                               & pl.col("message_id").is_not_null())
                 .select("message_id").unique().with_columns(converted=pl.lit(True)))
    cutoff = events["ts"].max() - pl.duration(days=6)
    opened = (sends.filter(pl.col("opened") & (pl.col("ts") < cutoff))
              .join(converted, on="message_id", how="left")
              .with_columns(pl.col("converted").fill_null(False))
              .join(pl.read_parquet(truth / "offer_response"), on=["user_id", "offer_id"],
                    how="left")
              .join(pl.read_parquet(truth / "users").select("user_id", "p_convert_no_offer"),
                    on="user_id"))
    expected = pl.coalesce("p_convert_with", "p_convert_no_offer")
    groups = opened.group_by(with_offer=pl.col("offer_id").is_not_null()).agg(
        observed=pl.col("converted").mean(), expected=expected.mean(), n=pl.len(),
        variance=(expected * (1 - expected)).sum())
    observed_uplift = expected_uplift = 0.0
    uplift_variance = 0.0
    for row in groups.iter_rows(named=True):
        error = (row["variance"] ** 0.5) / row["n"]
        assert abs(row["observed"] - row["expected"]) < 4 * error, row
        sign = 1 if row["with_offer"] else -1
        observed_uplift += sign * row["observed"]
        expected_uplift += sign * row["expected"]
        uplift_variance += error**2
    assert abs(observed_uplift - expected_uplift) < 4 * uplift_variance**0.5


def test_responses_to_offers_are_heterogeneous(world: Path) -> None:
    truth = pl.read_parquet(world / "ground_truth" / "offer_response")
    users = pl.read_parquet(world / "ground_truth" / "users")
    assert (truth["p_convert_with"] >= truth["p_convert_without"]).all()
    best = truth.group_by("user_id").agg(top=pl.col("uplift").max()).join(users, on="user_id")
    by_type = best.group_by("response_type").agg(pl.col("top").max())
    tops = dict(by_type.iter_rows())
    assert tops["sure_thing"] == 0.0 and tops["lost_cause"] == 0.0
    assert tops["persuadable"] > 0.05
    reacting = truth.filter(pl.col("uplift") > 0).group_by("user_id").len()
    fewest = reacting["len"].min()
    assert isinstance(fewest, int) and fewest < truth["offer_id"].n_unique()  # only some kinds
