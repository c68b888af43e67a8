from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from features.contacts import ALL_CHANNELS, contact_counts, contact_keys, sent_within
from features.contract.schema import EVENTS, EventType
from features.contract.tables import load_table
from features.event import Event
from training.synthetic.world import generate_world

NOW = datetime(2026, 3, 10, 18, tzinfo=UTC)


def test_rolling_windows_count_exactly() -> None:
    buckets: Counter[date] = Counter()
    for days_ago in (0, 0, 3, 6, 7, 29, 30):
        sent = Event("u1", NOW - timedelta(days=days_ago), EventType.MESSAGE_SENT,
                     channel="push")
        for channel, day in contact_keys(sent):
            if channel == "push":
                buckets[day] += 1
    assert [sent_within(buckets, NOW, days) for days in (1, 7, 30)] == [2, 4, 6]


def test_only_sends_count_and_each_also_counts_for_all_channels() -> None:
    assert contact_keys(Event("u1", NOW, EventType.MESSAGE_OPEN, channel="email")) == []
    assert contact_keys(Event("u1", NOW, EventType.MESSAGE_SENT, channel="sms")) == [
        (ALL_CHANNELS, NOW.date()), ("sms", NOW.date())]


def test_batch_buckets_equal_live_ones(tmp_path: Path) -> None:
    generate_world(tmp_path, users=200, days=14, seed=9)
    events = load_table(tmp_path, EVENTS).frame
    live: Counter[tuple[str, str, date]] = Counter()
    for row in events.iter_rows(named=True):
        event = Event.from_row(row)
        for channel, day in contact_keys(event):
            live[(event.user_id, channel, day)] += 1
    batch = {(u, c, d): n for u, c, d, n in
             contact_counts(events).select("user_id", "channel", "day", "sent").iter_rows()}
    assert batch == dict(live)
    assert sum(batch.values()) > 0
