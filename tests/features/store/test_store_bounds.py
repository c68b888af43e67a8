"""What the store keeps, and for how long: an event written across a publish, the TTLs of
the live hash and of seen ids, the event log's cap, refused channels, sends folded into
the record's slots, a net spend below zero (docs/store.md)."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import redis

from features.contract.schema import Channel, EventType
from features.event import Event
from features.store import keys
from features.store.base import Applied
from features.store.redis_store import RedisFeatureStore
from nbo.redis_plan import execute
from tests.features.store.test_store import _one_user
from tests.features.test_state import T, at, batch_of


def test_an_event_applied_across_a_publish_lands_in_the_new_version(
        redis_client: redis.Redis) -> None:
    """The apply script checks its version is still current: a publish between the read
    and the write sends the event to the new version, where it is kept."""
    store = RedisFeatureStore(redis_client)
    first = batch_of(at(5, EventType.VIEW, category="shoes"), users=_one_user())
    store.publish(first)
    plan = store.apply_plan(replace(at(-0.5, EventType.PURCHASE, category="shoes", price=80.0),
                                    event_id="p1"))
    step, published = next(plan), False
    try:
        while True:
            if not published and any(command[0] in ("EVALSHA", "EVAL")
                                     for command in step.commands):
                RedisFeatureStore(redis_client).publish(first)  # another process
                published = True
            try:
                replies = execute(redis_client, step)
            except redis.RedisError as error:
                step = plan.throw(error)
                continue
            step = plan.send(replies)
    except StopIteration as done:
        assert done.value is Applied.APPLIED
    assert published
    state = RedisFeatureStore(redis_client).read("u1")
    assert state is not None and state.purchases.lines == 1


def test_the_live_hash_and_seen_ids_live_as_long_as_the_setting_says(
        redis_client: redis.Redis) -> None:
    """Each event sets its user's TTLs again."""
    store = RedisFeatureStore(redis_client, live_ttl_s=1000)
    report = store.publish(batch_of(at(5, EventType.VIEW, category="shoes"), users=_one_user()))
    bucket = keys.bucket_of("u1", report.buckets)
    store.apply(replace(at(-0.1, EventType.VIEW, category="shoes"), event_id="v1"))
    assert 0 < redis_client.ttl(keys.seen(report.version, bucket, "u1")) <= 1000
    live = keys.live(report.version, bucket, "u1")
    redis_client.expire(live, 10)
    store.apply(replace(at(-0.2, EventType.VIEW, category="shoes"), event_id="v2"))
    assert redis_client.ttl(live) > 10


def test_ids_the_next_batch_covers_are_marked_seen_with_a_ttl(
        redis_client: redis.Redis) -> None:
    store = RedisFeatureStore(redis_client, live_ttl_s=1000)
    store.publish(batch_of(at(5, EventType.VIEW, category="shoes"), users=_one_user()))
    purchase = replace(at(1, EventType.PURCHASE, category="shoes", price=80.0), event_id="p1")
    store.apply(purchase)
    report = store.publish(batch_of(at(5, EventType.VIEW, category="shoes"), purchase,
                                    users=_one_user()))
    seen = keys.seen(report.version, keys.bucket_of("u1", report.buckets), "u1")
    assert redis_client.sismember(seen, "p1") and 0 < redis_client.ttl(seen) <= 1000


def test_the_event_log_is_capped(redis_client: redis.Redis) -> None:
    store = RedisFeatureStore(redis_client, stream_maxlen=10)
    for n in range(500):
        store.apply(replace(at(1, EventType.VIEW, category="shoes"), event_id=f"v{n}"))
    assert redis_client.xlen(keys.EVENTS) < 500  # approximately 10: trimmed by whole nodes


def test_a_user_who_refused_web_and_in_app_reads_back_refused(
        redis_client: redis.Redis) -> None:
    users = _one_user().with_columns(consent_web=pl.lit(False), consent_in_app=pl.lit(False))
    batch = batch_of(at(5, EventType.VIEW, category="shoes"), users=users)
    RedisFeatureStore(redis_client).publish(batch)
    state, expected = RedisFeatureStore(redis_client).read("u1"), batch.state("u1")
    assert expected is not None and state is not None
    assert state.profile.refused == expected.profile.refused == {Channel.WEB, Channel.IN_APP}


def _emails(days: int, per_day: int) -> list[Event]:
    return [at(day + 0.5 + n / 10_000, EventType.MESSAGE_SENT, channel="email")
            for day in range(days) for n in range(per_day)]


def test_sends_that_fit_the_slots_read_back_exactly(redis_client: redis.Redis) -> None:
    """Compared with the whole batch, not with what the record keeps of it."""
    for days in (10, 14):
        batch = batch_of(*_emails(days, 1), users=_one_user())
        RedisFeatureStore(redis_client).publish(batch)
        state, expected = RedisFeatureStore(redis_client).read("u1"), batch.state("u1")
        assert state is not None and expected is not None
        assert state.contacts == expected.contacts


def test_one_day_past_the_slots_folds_only_the_oldest(redis_client: redis.Redis) -> None:
    """15 days of sends: the 13 latest stay exact, the 2 oldest share the last slot."""
    batch = batch_of(*_emails(15, 1), users=_one_user())
    RedisFeatureStore(redis_client).publish(batch)
    state, expected = RedisFeatureStore(redis_client).read("u1"), batch.state("u1")
    assert state is not None and expected is not None
    for days in range(1, 15):
        assert state.sent_within(T, days, "email") == expected.sent_within(T, days, "email")


def test_many_folded_sends_never_count_below_what_was_sent(redis_client: redis.Redis) -> None:
    """A cap must never let through a message it should stop: 100 emails a day for 20
    days, folded, still count at least 100 a day in every window."""
    batch = batch_of(*_emails(20, 100), users=_one_user())
    RedisFeatureStore(redis_client).publish(batch)
    state, expected = RedisFeatureStore(redis_client).read("u1"), batch.state("u1")
    assert state is not None and expected is not None
    for days in (7, 14, 21, 31):
        assert state.sent_within(T, days) >= expected.sent_within(T, days)
        assert state.sent_within(T, days, "email") >= expected.sent_within(T, days, "email")


def test_a_net_spend_below_zero_reads_back(redis_client: redis.Redis) -> None:
    batch = batch_of(at(3, EventType.PURCHASE, category="tea", price=7.5, quantity=-2),
                     users=_one_user())
    RedisFeatureStore(redis_client).publish(batch)
    state, expected = RedisFeatureStore(redis_client).read("u1"), batch.state("u1")
    assert expected is not None and state is not None
    assert expected.purchases.amount == state.purchases.amount == -15.0
