from datetime import UTC, datetime, timedelta

import polars as pl

from features.pipeline import compute_features
from models.channels import ChannelModel

T = datetime(2026, 5, 1, tzinfo=UTC)


def test_each_user_gets_their_likeliest_consented_channel() -> None:
    rows = []
    for day in range(20):  # 'reader' opens emails, never pushes; everyone else is average
        rows += [("reader", day, "message_sent", "email"), ("reader", day, "message_open",
                                                            "email"),
                 ("reader", day, "message_sent", "push")]
        rows += [(f"crowd{n}", day, "message_sent", channel) for n in range(10)
                 for channel in ("email", "push")]
        rows += [(f"crowd{n}", day, "message_open", "push") for n in range(0, 10, 2)]
    events = pl.DataFrame(
        [{"user_id": u, "ts": T - timedelta(days=d), "event_type": k, "channel": c}
         for u, d, k, c in rows]).with_columns(
        *(pl.lit(None, pl.String).alias(c) for c in ("category", "brand", "campaign_id",
                                                     "event_id")),
        price=pl.lit(None, pl.Float64), quantity=pl.lit(None, pl.Int64))
    users = pl.DataFrame({"user_id": ["reader", "newcomer", "email_only"],
                          "country": ["FR", "FR", "FR"], "timezone": ["UTC"] * 3,
                          "consent_email": [True, True, True],
                          "consent_push": [True, True, False]})
    batch = compute_features(events, users, pl.DataFrame(
        {"category": [], "price": []}, schema={"category": pl.String, "price": pl.Float64}), T)
    model = ChannelModel.fit(batch)
    assert model.global_rates["push"] > model.global_rates["email"]
    best = dict(model.best_channels(batch).iter_rows())
    assert best["reader"] == "email"  # own history beats the crowd's preference for push
    assert best["newcomer"] == "push"  # no history: the population's likeliest channel
    assert best["email_only"] == "email"  # only what they consented to
