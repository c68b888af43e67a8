from datetime import UTC, datetime, timedelta

import polars as pl

from training.offers.sends import logged_sends

T = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday


def _event(user: str, hours: float, kind: str, channel: str, campaign: str) -> dict[str, object]:
    return {"user_id": user, "ts": T + timedelta(hours=hours), "event_type": kind,
            "channel": channel, "campaign_id": campaign, "offer_id": None, "journey": None,
            "propensity": 0.5 if kind == "message_sent" else None, "quantity": None}


def test_a_send_converts_with_an_attributed_purchase_within_a_week() -> None:
    events = pl.DataFrame([
        _event("a", 0, "message_sent", "email", "nl-1"),
        _event("a", 48, "purchase", "email", "nl-1"),  # attributed, 2 days later: converted
        _event("b", 0, "message_sent", "push", "nl-1"),
        _event("b", 24 * 8, "purchase", "push", "nl-1"),  # too late
        _event("c", 0, "message_sent", "sms", "nl-1"),
        _event("c", 5, "purchase", "email", "nl-1"),  # another channel's conversion
        _event("d", 24 * 9, "message_sent", "sms", "nl-1"),  # its window ends after stop
    ], schema_overrides={"ts": pl.Datetime("us", "UTC"), "quantity": pl.Int64,
                         "offer_id": pl.String, "journey": pl.String, "propensity": pl.Float64})
    users = pl.DataFrame({"user_id": ["a"], "timezone": ["Asia/Tokyo"]})
    sends = logged_sends(events, users, T - timedelta(days=1), T + timedelta(days=14))
    assert sends.select("user_id", "converted").rows() == [("a", 1), ("b", 0), ("c", 0)]
    assert sends["local_hour"].to_list() == [18, 9, 9]  # Tokyo is UTC+9; others UTC
    assert sends["weekend"].to_list() == [0, 0, 0]
