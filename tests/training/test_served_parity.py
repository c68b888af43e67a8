"""What models train on from a batch equals what they are served from a user's state, for
histories at the edges: returns outweighing purchases, responses to sends nbo never saw,
a brand sold in two categories."""

from __future__ import annotations

import math
from dataclasses import replace

import polars as pl
import pytest

from features.contract.schema import EventType
from models.offer_response import rate_columns
from models.send_time import activity_by_hour, hourly_activity
from tests.features.test_state import at, batch_of
from training.affinity.brands import BrandContext
from training.offers.design import channel_rates, overall_rates
from training.price_bands import ServedBands

COFFEE = {"category": "coffee", "price": 30.0}


def test_activity_returned_reads_as_none_in_training_too() -> None:
    batch = batch_of(at(20, EventType.PURCHASE, **COFFEE),
                     at(5, EventType.PURCHASE, quantity=-1, **COFFEE),
                     at(4.5, EventType.PURCHASE, quantity=-1, **COFFEE))
    trained = hourly_activity(batch)
    assert (trained["activity"] >= 0.0).all()
    state = batch.state("u1")
    assert state is not None
    served = activity_by_hour(state, batch.anchor)[0]
    by_hour = dict(zip(trained["local_hour"], trained["activity"], strict=True))
    assert [by_hour.get(hour, 0.0) for hour in range(24)] == pytest.approx(served.tolist())


def test_rates_of_responses_without_sends_and_of_returned_conversions_agree() -> None:
    """Opens, clicks and an attributed order of an email sent before the log began; an SMS
    conversion, and an email one returned (another user's sends give the population's
    rates on both channels)."""
    email = {"channel": "email", "campaign_id": "c1", **COFFEE}
    other = [replace(at(day, EventType.MESSAGE_SENT, channel=channel), user_id="u2")
             for day in (5, 6) for channel in ("email", "sms")]
    users = pl.DataFrame({"user_id": ["u1", "u2"], "timezone": ["Europe/Paris"] * 2,
                          "signup_ts": [None, None], "country": ["FR"] * 2,
                          "consent_email": [True] * 2})
    batch = batch_of(at(9, EventType.MESSAGE_OPEN, channel="email"),
                     at(9, EventType.MESSAGE_CLICK, channel="email"),
                     at(8, EventType.PURCHASE, **email),
                     at(7, EventType.MESSAGE_SENT, channel="sms"),
                     at(6, EventType.PURCHASE, channel="sms", campaign_id="c2", **COFFEE),
                     at(2, EventType.PURCHASE, quantity=-1, **email),
                     at(2, EventType.PURCHASE, quantity=-1, **email), *other, users=users)
    state = batch.state("u1")
    assert state is not None
    population = batch.engagement
    assert set(population["open"]) == {"email", "sms"}
    trained = {row["channel"]: row for row in channel_rates(batch).filter(
        pl.col("user_id") == "u1").iter_rows(named=True)}
    pooled = overall_rates(batch).filter(pl.col("user_id") == "u1").row(0, named=True)
    for channel in ("email", "sms"):
        served = rate_columns(state, batch.anchor, channel, 10, population)
        row = trained[channel]
        assert [row["open_rate"], row["click_rate"], row["conversion_rate"],
                pooled["open_rate_all"], pooled["conversion_rate_all"]] == pytest.approx(
            served[:5], rel=1e-9)


def test_served_price_bands_floor_returned_bands() -> None:
    shoes = {"category": "shoes", "price": 120.0}
    batch = batch_of(at(60, EventType.PURCHASE, **shoes),
                     at(1, EventType.PURCHASE, quantity=-1, **shoes),
                     at(1, EventType.PURCHASE, quantity=-1, **shoes))
    assert (batch.counts["price_affinity"]["total"] < 0).any()
    bands = ServedBands.of(batch).affinity["u1"]
    state = batch.state("u1")
    assert state is not None
    assert bands == pytest.approx(dict(state.counts_at("price_affinity", batch.anchor)))


def test_a_brand_sold_in_two_categories_belongs_to_the_one_it_sells_most_in() -> None:
    events = [at(day, EventType.PURCHASE, brand="zeta", category=category, price=5.0)
              for day, category in ((9, "coffee"), (8, "coffee"), (7, "snacks"))]
    batch = batch_of(*events)
    frame = pl.DataFrame([{name: getattr(e, name) for name in
                           ("user_id", "ts", "event_type", "category", "brand", "price",
                            "quantity")} | {"channel": None} for e in events])
    popularity = BrandContext.at(batch, frame).popularity
    assert popularity.select("key", "category").rows() == [("zeta", "coffee")]
    assert not math.isnan(popularity["popularity"][0])
