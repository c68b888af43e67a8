"""The offer model's inputs: the user at a cut, the message's context, the offer.

FEATURES (models/offer_response.py) names the model's columns in order. Rows are built
from long frames here for training; models/offer_response.py fills the same columns from
a `UserState` and its candidate offers at request time. The "no offer" arm is the row
with every offer column at zero (its category interest too: no offer, no categories), so
the uplift of an offer is P(convert | offer) - P(convert | none).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from features.contract.offers import Offer
from features.engagement import DEFAULT_ENGAGEMENT
from features.pipeline import PURCHASE_PREFIX, BatchFeatures
from models.offer_response import (
    CHANNELS,
    DAY_SECONDS,
    HOUR_PRIOR_OPENS,
    JOURNEYS,
    KINDS,
    MIN_TENURE_DAYS,
    OFFER_COLUMNS,
    USER_COLUMNS,
)


def _days(since: str, anchor: datetime) -> pl.Expr:
    return (pl.lit(anchor) - pl.col(since)).dt.total_seconds() / DAY_SECONDS


def user_context(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, USER_COLUMNS) at the batch's cut."""
    p = PURCHASE_PREFIX
    bands = (batch.counts["price_affinity"].pivot(on="key", index="user_id", values="total")
             if batch.counts["price_affinity"].height
             else pl.DataFrame({"user_id": []}, schema={"user_id": pl.String}))
    for band, name in (("0", "price_low"), ("1", "price_mid"), ("2", "price_high")):
        bands = bands.rename({band: name}) if band in bands.columns else bands.with_columns(
            pl.lit(0.0).alias(name))
    # a band's total below 0 (returns outweighing purchases) is none, as served
    bands = bands.with_columns(pl.col("price_low", "price_mid", "price_high").fill_null(0.0)
                               .clip(lower_bound=0.0))
    total = pl.sum_horizontal("price_low", "price_mid", "price_high")
    bands = bands.select("user_id", *(
        (pl.col(n) / pl.when(total > 0).then(total).otherwise(1.0)).alias(n)
        for n in ("price_low", "price_mid", "price_high")))
    months = pl.max_horizontal(_days("first_seen", batch.anchor).fill_null(0.0),
                              MIN_TENURE_DAYS) / 30.0
    users = batch.users.select(
        "user_id",
        days_since_purchase=_days(p + "last", batch.anchor).fill_null(-1.0),
        occasions_per_30d=pl.col(p + "occasions").cast(pl.Float64) / months,
        spend_per_30d=pl.col(p + "amount") / months,
        aov=pl.col(p + "amount") / pl.max_horizontal(pl.col(p + "occasions"), 1),  # per order
        return_rate=pl.col(p + "returns") / pl.max_horizontal(
            pl.col(p + "lines") + pl.col(p + "returns"), 1),
        days_since_seen=_days("last_seen", batch.anchor).fill_null(-1.0),
        cart_value=pl.col("cart_value").clip(lower_bound=0.0))
    return users.join(bands, on="user_id", how="left").with_columns(
        pl.col("price_low", "price_mid", "price_high").fill_null(0.0)).select(
        "user_id", *USER_COLUMNS)


def channel_rates(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, channel, open/click/conversion rate): smoothed engagement per channel."""
    return DEFAULT_ENGAGEMENT.batch(batch.counts, batch.engagement).select(
        "user_id", "channel", open_rate="open", click_rate="click",
        conversion_rate="conversion")


def overall_rates(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, open_rate_all, conversion_rate_all): the same over all channels pooled."""
    # each channel's total floored at 0 before pooling, as a state serves them
    pooled = {name: frame.with_columns(key=pl.lit("all"),
                                       total=pl.col("total").clip(lower_bound=0.0))
              for name, frame in batch.counts.items() if name.startswith("channel_")}
    totals = {name: frame.group_by("user_id", "key").agg(total=pl.col("total").sum())
              for name, frame in pooled.items()}
    population = {response: {"all": sum(rates.values()) / max(len(rates), 1)}
                  for response, rates in batch.engagement.items()}
    return DEFAULT_ENGAGEMENT.batch(totals, population).select(
        "user_id", open_rate_all="open", conversion_rate_all="conversion")


def hour_shares(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, channel, local_hour, hour_open_share, channel_opens): smoothed share of the
    user's opens on the channel that fell in that local hour, and the channel's total (the
    share of an hour without opens is HOUR_PRIOR_OPENS / 24 over that total + the prior)."""
    opens = batch.counts["hourly_opens"].with_columns(
        pl.col("key").str.split_exact(":", 1).struct.rename_fields(
            ["channel", "local_hour"]).struct.unnest()).with_columns(
        pl.col("local_hour").cast(pl.Int16))
    return opens.select(
        "user_id", "channel", "local_hour",
        hour_open_share=(pl.col("total") + HOUR_PRIOR_OPENS / 24)
        / (pl.col("total").sum().over("user_id", "channel") + HOUR_PRIOR_OPENS),
        channel_opens=pl.col("total").sum().over("user_id", "channel"))


def offer_table(offers: Sequence[Offer]) -> pl.DataFrame:
    """(offer_id, OFFER_COLUMNS but the interest, categories) for each offer."""
    return pl.DataFrame(
        [{"offer_id": o.offer_id, "has_offer": 1.0,
          **{f"kind_{k}": float(o.kind.value == k) for k in KINDS},
          "offer_value": o.value, "offer_cost": o.cost, "offer_min_order": o.min_order_value,
          "categories": list(o.categories)} for o in offers],
        schema={"offer_id": pl.String, "has_offer": pl.Float64,
                **{f"kind_{k}": pl.Float64 for k in KINDS}, "offer_value": pl.Float64,
                "offer_cost": pl.Float64, "offer_min_order": pl.Float64,
                "categories": pl.List(pl.String)})


def category_fit(batch: BatchFeatures,
                 offers: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """CATEGORY_COLUMNS: (user_id, offer_id, both) for the offers restricted to categories
    (the user's share of interest in the offer's categories, and how many of the user's
    categories, those with interest, it names), and (user_id, offer_categories_engaged)
    for the offers of any category, which cover all the user's categories (share 1)."""
    affinity = batch.counts["category_affinity"].select(
        "user_id", category="key", total=pl.col("total").clip(lower_bound=0.0))
    share = affinity.with_columns(share=pl.col("total") / pl.col("total").sum().over("user_id"),
                                  engaged=(pl.col("total") > 0).cast(pl.Float64))
    wanted = offers.select("offer_id", category="categories").explode("category").drop_nulls()
    named = (share.join(wanted, on="category").group_by("user_id", "offer_id")
             .agg(offer_category_interest=pl.col("share").sum(),
                  offer_categories_engaged=pl.col("engaged").sum()).fill_nan(0.0))
    return named, share.group_by("user_id").agg(offer_categories_engaged=pl.col("engaged").sum())


def design(rows: pl.DataFrame, batch: BatchFeatures, offers: pl.DataFrame) -> pl.DataFrame:
    """`rows` (user_id, channel, journey, local_hour, weekend, offer_id) plus FEATURES."""
    one_hot = [(pl.col("channel") == c).cast(pl.Float64).alias(f"channel_{c}")
               for c in CHANNELS] + [
        (pl.col("journey") == j).fill_null(False).cast(pl.Float64).alias(f"journey_{j}")
        for j in JOURNEYS]
    offer_part = offers.drop("categories")
    specific = offers.filter(pl.col("categories").list.len() > 0).select("offer_id")
    named, every = category_fit(batch, offers)
    built = (rows.with_row_index("__row")
             .join(user_context(batch), on="user_id", how="left")
             .join(channel_rates(batch), on=["user_id", "channel"], how="left")
             .join(overall_rates(batch), on="user_id", how="left")
             .join(hour_shares(batch).drop("channel_opens"),
                   on=["user_id", "channel", "local_hour"], how="left")
             .join(hour_shares(batch).group_by("user_id", "channel").agg(
                 pl.col("channel_opens").first()), on=["user_id", "channel"], how="left")
             .join(offer_part, on="offer_id", how="left")
             .join(named, on=["user_id", "offer_id"], how="left")
             .join(every.rename({"offer_categories_engaged": "__engaged"}), on="user_id",
                   how="left")
             .join(specific.with_columns(__specific=pl.lit(True)), on="offer_id", how="left")
             .with_columns(*one_hot, local_hour=pl.col("local_hour").cast(pl.Float64),
                           weekend=pl.col("weekend").cast(pl.Float64))
             .with_columns(*(pl.when(pl.col("has_offer").is_null()).then(0.0)
                             .when(pl.col("__specific")).then(pl.col(name).fill_null(0.0))
                             .otherwise(general).alias(name)
                             for name, general in (
                                 ("offer_category_interest", pl.lit(1.0)),
                                 ("offer_categories_engaged",
                                  pl.col("__engaged").fill_null(0.0))))))
    prior = {response: dict(rates) for response, rates in batch.engagement.items()}
    rates = [pl.col(f"{response}_rate").fill_null(pl.col("channel").replace_strict(
        prior.get(response, {}), default=0.0, return_dtype=pl.Float64))
        for response in ("open", "click", "conversion")]
    return (built.with_columns(*rates)
            .with_columns(pl.col(*USER_COLUMNS, *OFFER_COLUMNS, "open_rate_all",
                                 "conversion_rate_all").fill_null(0.0),
                          pl.col("hour_open_share").fill_null(
                              (HOUR_PRIOR_OPENS / 24) / (pl.col("channel_opens").fill_null(0.0)
                                                         + HOUR_PRIOR_OPENS)))
            .sort("__row").drop("__row", "__specific", "__engaged", "channel_opens"))


def without_offers(frame: pl.DataFrame) -> pl.DataFrame:
    """The same rows in the no-offer arm."""
    return frame.with_columns(*(pl.lit(0.0).alias(c) for c in OFFER_COLUMNS))
