from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from training.contact_volume import ContactVolume, recent_sends

T = datetime(2026, 4, 1, tzinfo=UTC)


def test_recent_sends_count_the_week_before_each_send() -> None:
    rows = [{"user_id": "a", "ts": T + timedelta(days=d), "event_type": "message_sent",
             "channel": "email", "campaign_id": f"c{d}"} for d in (0, 1, 2, 9)]
    counted = recent_sends(pl.DataFrame(rows))
    assert counted["recent"].to_list() == [0, 1, 2, 0]


def test_the_cap_stops_where_messages_lose_half_their_opens() -> None:
    rng = np.random.default_rng(5)
    rows = []
    for user in range(600):
        for day in range(14):  # one message a day: 0..6 earlier ones in the week
            sent = T + timedelta(days=day, hours=int(rng.integers(0, 5)))
            rows.append({"user_id": f"u{user}", "ts": sent, "event_type": "message_sent",
                         "channel": "push", "campaign_id": f"c{day}"})
            recent = min(day, 6)
            if rng.random() < 0.4 * 0.75 ** recent:  # each earlier message costs a quarter
                rows.append({"user_id": f"u{user}", "ts": sent + timedelta(minutes=30),
                             "event_type": "message_open", "channel": "push",
                             "campaign_id": f"c{day}"})
    volume = ContactVolume.fit(pl.DataFrame(rows))
    assert volume.weekly_cap == 3  # 0.75 ** 2 = 0.56 keeps half, 0.75 ** 3 = 0.42 does not
    assert volume.open_rates["all"][0] > volume.open_rates["push"][6]


def test_too_few_sends_to_tell_learn_no_cap() -> None:
    """Below MIN_SENDS first messages of a week nothing is measured: no cap, not a cap of 1
    (which blocked every channel of anyone messaged once that week)."""
    rows = [{"user_id": f"u{user}", "ts": T + timedelta(days=day), "event_type": "message_sent",
             "channel": "email", "campaign_id": f"c{day}"} for user in range(20)
            for day in range(3)]
    volume = ContactVolume.fit(pl.DataFrame(rows))
    assert volume.weekly_cap is None
    assert b'"weekly_cap": null' in volume.to_json()
