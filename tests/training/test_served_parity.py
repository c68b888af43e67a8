"""What models train on from a batch equals what they are served from a user's state, for
histories at the edges: returns outweighing purchases, responses to sends nbo never saw,
a brand sold in two categories."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from features.contract.schema import EventType
from models.brands import BrandRanker
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
    only_responses = [replace(at(day, kind, channel="email"), user_id="u3")
                      for day, kind in ((4, EventType.MESSAGE_OPEN), (4, EventType.MESSAGE_CLICK))]
    users = pl.DataFrame({"user_id": ["u1", "u2", "u3"], "timezone": ["Europe/Paris"] * 3,
                          "signup_ts": [None] * 3, "country": ["FR"] * 3,
                          "consent_email": [True] * 3})
    batch = batch_of(at(9, EventType.MESSAGE_OPEN, channel="email"),
                     at(9, EventType.MESSAGE_CLICK, channel="email"),
                     at(8, EventType.PURCHASE, **email),
                     at(7, EventType.MESSAGE_SENT, channel="sms"),
                     at(6, EventType.PURCHASE, channel="sms", campaign_id="c2", **COFFEE),
                     at(2, EventType.PURCHASE, quantity=-1, **email),
                     at(2, EventType.PURCHASE, quantity=-1, **email), *other, *only_responses,
                     users=users)
    population = batch.engagement
    assert set(population["open"]) == {"email", "sms"}
    for user in ("u1", "u3"):  # u3: an open and a click, no send at all
        state = batch.state(user)
        assert state is not None
        trained = {row["channel"]: row for row in channel_rates(batch).filter(
            pl.col("user_id") == user).iter_rows(named=True)}
        pooled = overall_rates(batch).filter(pl.col("user_id") == user).row(0, named=True)
        for channel in trained:
            served = rate_columns(state, batch.anchor, channel, 10, population)
            row = trained[channel]
            assert [row["open_rate"], row["click_rate"], row["conversion_rate"],
                    pooled["open_rate_all"], pooled["conversion_rate_all"]] == pytest.approx(
                served[:5], rel=1e-9), (user, channel)


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
    """Its signals read its main category's row in training as in serving (training joined
    both rows, serving kept the last by name); each category still lists it as popular."""
    events = [at(day, EventType.PURCHASE, brand=brand, category=category, price=5.0)
              for day, brand, category in ((9, "zeta", "coffee"), (8, "zeta", "coffee"),
                                           (7, "zeta", "snacks"), (6, "eta", "tea"))]
    batch = batch_of(*events)
    frame = pl.DataFrame([{name: getattr(e, name) for name in
                           ("user_id", "ts", "event_type", "category", "brand", "price",
                            "quantity")} | {"channel": None} for e in events])
    context = BrandContext.at(batch, frame)
    assert context.main.select("key", "category").rows() == [("eta", "tea"),
                                                             ("zeta", "coffee")]
    served = BrandRanker.of(None, [], np.zeros((0, 2)),  # type: ignore[arg-type]
                            context.popularity.to_dicts())
    assert served.category_of == {"zeta": "coffee", "eta": "tea"}
    assert served.popular == {"coffee": ["zeta"], "snacks": ["zeta"], "tea": ["eta"]}
    assert [brand for brand, _ in served.by_prior(["snacks"], 5)] == ["zeta"]
