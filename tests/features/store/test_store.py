"""The store interface's suite: every backend in BACKENDS must pass all of it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import redis
from redis.connection import AbstractConnection

from decisions.contact_policy import ContactPolicy
from features.contacts import ALL_CHANNELS
from features.contract.schema import EVENTS, Channel, EventType
from features.contract.tables import load_table
from features.event import Event
from features.pipeline import compute_features
from features.state import UserState
from features.store import keys
from features.store.base import Applied, FeatureStore
from features.store.export import export_events
from features.store.kept import kept
from features.store.layout import CHANNEL_COUNTS
from features.store.redis_store import Extra, MissingVersionMeta, RedisFeatureStore
from nbo.errors import DataContractError
from nbo.redis_plan import run
from tests.conftest import SplitWorld
from tests.features.test_state import T, at, batch_of

BACKENDS: dict[str, Callable[[redis.Redis], FeatureStore]] = {
    "redis": lambda client: RedisFeatureStore(client),
}
# the store keeps a top of these, with this relative precision
TRUNCATED = {"category_affinity": 1e-5, "brand_affinity": 1e-5, "hourly_activity": 2e-3}
SECOND = timedelta(seconds=1)


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, redis_client: redis.Redis) -> FeatureStore:
    return BACKENDS[request.param](redis_client)


def _same_time(mine: datetime | None, theirs: datetime | None) -> bool:
    """Equal to the second (the packed record keeps whole seconds)."""
    if mine is None or theirs is None:
        return mine is theirs
    return abs(mine - theirs) < SECOND


def test_an_unknown_user_reads_as_none(store: FeatureStore, split_world: SplitWorld) -> None:
    assert store.read("nobody") is None
    store.publish(split_world.early)
    assert store.read("nobody") is None
    assert store.read_many(["nobody", split_world.early.users["user_id"][0]])[1] is not None


def test_a_read_returns_what_was_published(store: FeatureStore, split_world: SplitWorld) -> None:
    batch = split_world.early
    report = store.publish(batch)
    meta = store.current()
    assert meta is not None and meta.version == report.version and report.users == meta.users
    for user_id in batch.users["user_id"].to_list()[:40]:
        expected, got = batch.state(user_id), store.read(user_id)
        assert expected is not None and got is not None
        assert got.profile == expected.profile and got.activity.events == expected.activity.events
        assert _same_time(got.activity.last_seen, expected.activity.last_seen)
        assert got.purchases.occasions == expected.purchases.occasions
        assert got.session.recent_categories == expected.session.recent_categories
        assert got.session.cart_lines == expected.session.cart_lines
        top = expected.values("category_affinity", batch.anchor)[:3]
        assert [k for k, _ in got.values("category_affinity", batch.anchor)[:3]] == [
            k for k, _ in top]


def test_live_events_on_a_published_batch_match_the_batch_over_all_events(
        store: FeatureStore, split_world: SplitWorld) -> None:
    """Exact to the stored precision where the store keeps everything; where it keeps a
    top (categories, brands, bought categories, hourly channels), a key the batch had
    outside the top at the cut restarts from zero, so it may fall short by at most the
    smallest value kept."""
    store.publish(split_world.early)
    late = split_world.late_events
    users = sorted({event.user_id for event in late})
    at_cut = dict(zip(users, store.read_many(users), strict=True))
    for event in late:
        assert store.apply(event) is Applied.APPLIED
    now = split_world.full.anchor
    carts = 0
    for user_id, got in zip(users, store.read_many(users), strict=True):
        expected = split_world.full.state(user_id)
        assert expected is not None and got is not None
        _check_scalars(got, expected, now)
        _check_counts(got, expected, at_cut[user_id], now)
        _check_category_purchases(got, expected, at_cut[user_id])
        carts += bool(got.session.cart_categories)
    assert carts > 10  # carts were compared, not only empty ones


def _check_scalars(got: UserState, expected: UserState, now: datetime) -> None:
    assert got.activity.events == expected.activity.events
    assert _same_time(got.activity.first_seen, expected.activity.first_seen)
    assert _same_time(got.activity.last_seen, expected.activity.last_seen)
    mine, theirs = got.purchases, expected.purchases
    assert (mine.lines, mine.occasions, mine.returns, mine.price_lean) == (
        theirs.lines, theirs.occasions, theirs.returns, theirs.price_lean)
    assert mine.amount == pytest.approx(theirs.amount, rel=1e-5, abs=1e-3)
    assert _same_time(mine.last, theirs.last) and _same_time(mine.first, theirs.first)
    assert got.session.recent_categories == expected.session.recent_categories
    assert got.session.cart_lines == expected.session.cart_lines
    assert got.session.cart_value == pytest.approx(expected.session.cart_value, abs=1e-3)
    assert got.session.app_installed == expected.session.app_installed
    assert _same_time(got.session.cart_updated, expected.session.cart_updated)
    assert _same_time(got.session.checkout_started, expected.session.checkout_started)
    assert _same_time(got.last_contact, expected.last_contact)
    for channel in (ALL_CHANNELS, *Channel):
        for days in (1, 7):
            assert got.sent_within(now, days, channel) == expected.sent_within(now, days, channel)


def _check_counts(got: UserState, expected: UserState, at_cut: UserState | None,
                  now: datetime) -> None:
    for name in (*CHANNEL_COUNTS, "price_affinity"):  # kept in full, as float16
        mine = dict(got.values(name, now))
        for key, value in expected.values(name, now):
            assert mine.get(key, 0.0) == pytest.approx(value, rel=2e-3, abs=1e-3)
    for name, precision in TRUNCATED.items():
        kept = dict(at_cut.values(name, now)) if at_cut else {}
        floor = min(kept.values(), default=0.0)
        mine = dict(got.values(name, now))
        for key, value in expected.values(name, now):
            if key in kept or floor == 0.0:
                assert mine.get(key, 0.0) == pytest.approx(value, rel=precision, abs=1e-5)
            else:
                assert -precision * value <= value - mine.get(key, 0.0) <= floor * (
                    1 + precision) + 1e-5
    mine = dict(got.values("hourly_opens", now))
    peak = max((v for _, v in expected.values("hourly_opens", now)), default=0.0)
    for key, value in expected.values("hourly_opens", now):
        assert value - mine.get(key, 0.0) >= -peak / 255
        if at_cut is None or key.split(":")[0] in {
                k.split(":")[0] for k in at_cut.counts.get("hourly_opens", {})}:
            assert mine.get(key, 0.0) == pytest.approx(value, abs=peak / 255 + 1e-6)


def _check_category_purchases(got: UserState, expected: UserState,
                              at_cut: UserState | None) -> None:
    kept = at_cut.category_purchases if at_cut else {}
    for category, theirs in expected.category_purchases.items():
        mine = got.category_purchases.get(category)
        if category in kept or theirs.first is None or (
                at_cut is not None and theirs.first > at_cut.anchor):
            assert mine is not None and mine.occasions == theirs.occasions
            assert mine.price_lean == theirs.price_lean
            assert _same_time(mine.last, theirs.last)
        else:
            assert mine is None or mine.lines <= theirs.lines


def test_a_read_is_one_round_trip(store: FeatureStore, split_world: SplitWorld,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store.publish(split_world.early)
    users = split_world.early.users["user_id"].to_list()
    store.read(users[0])  # the first read of a process also fetches the version's schema
    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    assert store.read(users[1]) is not None
    assert len(sent) == 1
    assert all(state is not None for state in store.read_many(users[:100]))
    assert len(sent) == 2


def test_a_found_answer_read_with_the_features_leaves_only_its_user_unpacked(
        redis_client: redis.Redis, split_world: SplitWorld) -> None:
    store = RedisFeatureStore(redis_client)
    store.publish(split_world.early)
    users = split_world.early.users["user_id"][:3].to_list()
    redis_client.hset("test:answer:0", "content", "remembered")
    redis_client.hset("test:answer:2", "content", "past its time")

    def holds_answer(fields: dict[bytes, bytes]) -> bool:
        return fields.get(b"content") == b"remembered"

    asked = Extra(["test:spent", "test:answer:0", "test:answer:2"], [1, None, 2], holds_answer)
    try:
        states = run(redis_client, store.read_plan(users, asked))[1]
    finally:
        redis_client.delete("test:answer:0", "test:answer:2")
    assert states[0] is None  # answered: not unpacked
    assert states[1] is not None  # no hash of its own
    assert states[2] is not None  # a hash, but no answer in it
    assert asked.replies == [{}, {b"content": b"remembered"}, {b"content": b"past its time"}]
    without = Extra(["test:answer:0"])
    assert all(state is not None for state in run(redis_client, store.read_plan(users, without))[1])


def test_an_event_is_visible_to_the_next_read_and_applied_once(
        store: FeatureStore, split_world: SplitWorld) -> None:
    store.publish(split_world.early)
    user_id = split_world.early.users["user_id"][3]
    before = store.read(user_id)
    assert before is not None
    cart = Event(user_id, split_world.cut + timedelta(hours=1), EventType.ADD_TO_CART,
                 event_id="cart-1", category="snacks", price=4.0, quantity=2)
    assert store.apply(cart) is Applied.APPLIED
    assert store.apply(cart) is Applied.DUPLICATE
    after = store.read(user_id)
    assert after is not None
    assert after.activity.events == before.activity.events + 1
    assert after.session.open_cart_value == pytest.approx(before.session.cart_value + 8.0)
    assert after.session.recent_categories[0] == "snacks"


def test_events_before_any_publish_are_kept(store: FeatureStore) -> None:
    moment = datetime.fromisoformat("2026-03-01T10:00:00+00:00")
    store.apply(Event("new", moment, EventType.VIEW, category="tea"))
    store.apply(Event("new", moment + SECOND, EventType.MESSAGE_SENT, channel="email"))
    state = store.read("new")
    assert state is not None and state.activity.events == 2
    assert state.values("category_affinity", moment)[0][0] == "tea"
    assert state.sent_within(moment, 1, "email") == 1


def test_concurrent_writers_on_one_user_lose_nothing(store: FeatureStore) -> None:
    moment = datetime.fromisoformat("2026-03-01T10:00:00+00:00")
    store.apply(Event("busy", moment, EventType.VIEW))

    def write(worker: int) -> None:
        for n in range(40):
            store.apply(Event("busy", moment + timedelta(seconds=n), EventType.PURCHASE,
                              event_id=f"{worker}-{n}", category="tea", price=1.0))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = store.read("busy")
    assert state is not None and state.activity.events == 121
    assert state.purchases.lines == 120 and state.purchases.amount == pytest.approx(120.0)


def test_a_reader_sees_one_version_or_the_other_never_a_mix(
        store: FeatureStore, split_world: SplitWorld) -> None:
    early = split_world.early
    store.publish(early)
    users = early.users["user_id"].to_list()[:50]
    base = {u: s.activity.events for u, s in zip(users, store.read_many(users), strict=True)
            if s is not None}
    extra = pl.DataFrame({"user_id": early.users["user_id"], "ts": early.anchor,
                          "event_type": EventType.VIEW.value})
    events = pl.concat([split_world.events.filter(pl.col("ts") <= early.anchor), extra],
                       how="diagonal_relaxed")
    newer = compute_features(events, split_world.users, split_world.items, early.anchor)
    seen: list[set[int]] = []
    done = threading.Event()

    def read() -> None:
        reader = BACKENDS["redis"](redis.Redis.from_url(_url(store)))
        while not done.is_set():
            states = reader.read_many(users)
            seen.append({s.activity.events - base[u]
                         for u, s in zip(users, states, strict=True) if s is not None})

    thread = threading.Thread(target=read)
    thread.start()
    for _ in range(3):
        store.publish(newer)
        store.publish(early)
    done.set()
    thread.join()
    assert len(seen) > 3 and all(len(versions) == 1 for versions in seen)
    assert {next(iter(v)) for v in seen} <= {0, 1}


def _url(store: FeatureStore) -> str:
    assert isinstance(store, RedisFeatureStore)
    kwargs = store._client.connection_pool.connection_kwargs
    return f"unix://{kwargs['path']}" if "path" in kwargs else (
        f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}")


def test_a_publish_keeps_live_events_after_its_cut_off_and_removes_old_versions(
        store: FeatureStore, split_world: SplitWorld, redis_client: redis.Redis) -> None:
    first = store.publish(split_world.early)
    late = split_world.late_events[:200]
    for event in late:
        store.apply(event)
    user_id = late[0].user_id
    live_key = keys.live(first.version, keys.bucket_of(user_id, first.buckets), user_id)
    assert 0 < redis_client.ttl(live_key) <= 30 * 86_400
    before = store.read(user_id)
    second = store.publish(split_world.early)
    assert second.replayed == len(late)
    after = store.read(user_id)
    assert before is not None and after is not None
    assert after.activity == before.activity and after.purchases == before.purchases
    third = store.publish(split_world.early)
    assert third.removed == (first.version,)
    leftovers = list(redis_client.scan_iter(match=f"*{first.version}*"))
    assert leftovers == []


def test_events_logged_during_a_publish_reach_the_new_version_whatever_their_ids(
        redis_client: redis.Redis, split_world: SplitWorld,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two events logged between the publish's two replays, with ids "…-9" and "…-10" (ten
    entries in one millisecond), are both replayed: ids compared as text stopped at "…-9"."""
    store = RedisFeatureStore(redis_client)
    store.publish(split_world.early)
    late = split_world.late_events[:2]
    late_ms = int(datetime.now().timestamp() * 1000) + 60_000  # after every id logged so far
    replay = store._replay

    def logging_meanwhile(*args: object, **kwargs: object) -> tuple[str, int]:
        found = replay(*args, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("into") is not None:  # the first replay: the events arrive after it
            for sequence, event in zip((9, 10), late, strict=True):
                redis_client.xadd(keys.EVENTS, {"e": event.to_json()},
                                  id=f"{late_ms}-{sequence}")
        return found

    monkeypatch.setattr(store, "_replay", logging_meanwhile)
    second = store.publish(split_world.early)
    assert second.replayed == 2


def test_logged_events_export_as_a_valid_events_table(
        store: FeatureStore, split_world: SplitWorld, tmp_path: Path) -> None:
    late = split_world.late_events[:50]
    for event in late:
        store.apply(event)
    assert late[0].event_id is not None and store.apply(late[0]) is Applied.DUPLICATE
    assert [event for _, event in store.logged_events()] == [
        replace(e, local_hour_of_week=None, price_band=None) for e in late]
    report = export_events(store, tmp_path)
    assert report.events == len(late)
    loaded = load_table(tmp_path, EVENTS)
    assert loaded.invalid_rows == 0
    assert [Event.from_row(row) for row in loaded.frame.iter_rows(named=True)] == late
    for fmt in ("jsonl", "csv"):  # nothing new: nothing written (a JSON Lines file of no
        # event named no column, and the next empty export's name was the same)
        more = export_events(store, tmp_path / "next", fmt, after=report.last_id or "-")
        assert (more.events, more.path) == (0, None)
    assert not (tmp_path / "next").exists()
    one_file = tmp_path / "one-file"
    one_file.mkdir()
    (one_file / "events.csv").write_text("user_id,ts,event_type\n")
    with pytest.raises(DataContractError, match="would give the table twice"):
        export_events(store, one_file)
    assert not (one_file / "events").exists()


def test_a_read_returns_what_kept_keeps(store: FeatureStore, split_world: SplitWorld) -> None:
    """`kept` (what models learn from) is what the store serves, to its numbers' precision."""
    batch = split_world.full
    store.publish(batch)
    served = kept(batch)
    truncated = 0
    for user_id in batch.users["user_id"].to_list()[:80]:
        full, expected, got = batch.state(user_id), served.state(user_id), store.read(user_id)
        assert full is not None and expected is not None and got is not None
        for name in ("category_affinity", "brand_affinity", "hourly_activity", "hourly_opens"):
            assert set(got.counts.get(name, {})) == set(expected.counts.get(name, {})), name
        assert set(got.category_purchases) == set(expected.category_purchases)
        assert got.contacts == expected.contacts
        truncated += len(full.category_purchases) > len(expected.category_purchases)
    assert truncated  # some users bought more categories than the record keeps


def test_a_category_only_returned_to_never_pushes_out_one_bought(
        redis_client: redis.Redis) -> None:
    """It has no last purchase: the record's 3 kept categories are the 3 bought last."""
    bought = [at(days, EventType.PURCHASE, category=category, price=10.0)
              for days, category in ((3, "a"), (4, "b"), (5, "c"))]
    returned = at(20, EventType.PURCHASE, category="z", price=10.0, quantity=-1)
    batch = batch_of(*bought, returned, users=_one_user())
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state = store.read("u1")
    assert state is not None
    assert sorted(state.category_purchases) == ["a", "b", "c"]


def _one_user() -> pl.DataFrame:
    """The users table of `batch_of`'s user u1, with every column publishing needs."""
    return pl.DataFrame({"user_id": ["u1"], "timezone": ["Europe/Paris"],
                         "signup_ts": [None], "country": ["FR"],
                         **{f"consent_{channel.value}": [True] for channel in Channel}},
                        schema_overrides={"signup_ts": pl.Datetime("us", "UTC")})


def test_an_event_the_new_batch_covers_is_a_duplicate_when_sent_again(
        redis_client: redis.Redis) -> None:
    """At-least-once delivery: a purchase applied live, exported into the data set, then
    published as part of the batch, is sent again after the publish."""
    store = RedisFeatureStore(redis_client)
    store.publish(batch_of(at(5, EventType.VIEW, category="shoes"), users=_one_user()))
    purchase = replace(at(1, EventType.PURCHASE, category="shoes", price=80.0),
                       event_id="p1")
    assert store.apply(purchase) is Applied.APPLIED
    store.publish(batch_of(at(5, EventType.VIEW, category="shoes"), purchase,
                           users=_one_user()))
    assert store.apply(purchase) is Applied.DUPLICATE
    state = store.read("u1")
    assert state is not None and state.purchases.lines == 1


def test_messages_sent_on_no_named_channel_count_toward_the_global_cap(
        redis_client: redis.Redis) -> None:
    sends = [at(0.5, EventType.MESSAGE_SENT) for _ in range(3)]  # no channel named
    sends += [at(0.5, EventType.MESSAGE_SENT, channel="email"),
              at(3, EventType.MESSAGE_SENT, channel="push")]
    batch = batch_of(*sends, users=_one_user())
    expected = batch.state("u1")
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state = store.read("u1")
    assert state is not None and expected is not None
    assert state.sent_within(T, 2) == expected.sent_within(T, 2) == 4  # the day before T's
    assert state.sent_within(T, 7) == 5
    assert state.sent_within(T, 2, "email") == 1
    assert state.contacts == kept(batch).state("u1").contacts  # type: ignore[union-attr]
    unnamed = [replace(at(1 / 24, EventType.MESSAGE_SENT), event_id=f"n{n}") for n in range(2)]
    for send in unnamed:  # live, as in batch
        assert store.apply(send) is Applied.APPLIED
    state = store.read("u1")
    assert state is not None and state.sent_within(T, 2) == 6
    assert state.sent_within(T, 2, "email") == 1
    assert state.contacts == batch_of(  # type: ignore[union-attr]
        *sends, *unnamed, users=_one_user()).state("u1").contacts


def test_a_publish_keeps_the_sends_of_the_longest_cap_it_counts(
        redis_client: redis.Redis) -> None:
    """Caps count up to 31 days: a send on the first of them is kept, one before is not."""
    sends = [at(days, EventType.MESSAGE_SENT, channel="email") for days in (30.5, 29.5, 1)]
    batch = batch_of(*sends, users=_one_user())
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state, expected = store.read("u1"), batch.state("u1")
    assert state is not None and expected is not None
    assert state.sent_within(T, 31) == expected.sent_within(T, 31) == 2
    assert state.sent_within(T, 31, "email") == 2


def test_an_event_at_the_cut_off_is_the_batchs_not_replayed(redis_client: redis.Redis) -> None:
    """Events timed at or before the cut-off are in the data set: one logged live at the
    cut-off itself is counted once, by the batch."""
    store = RedisFeatureStore(redis_client)
    store.publish(batch_of(at(5, EventType.VIEW, category="shoes"), users=_one_user()))
    purchase = replace(at(0, EventType.PURCHASE, category="shoes", price=80.0), event_id="p0")
    assert purchase.ts == T and store.apply(purchase) is Applied.APPLIED
    report = store.publish(batch_of(at(5, EventType.VIEW, category="shoes"), purchase,
                                    users=_one_user()))
    assert report.replayed == 0
    state = store.read("u1")
    assert state is not None and state.purchases.lines == 1


def test_returns_outweighing_purchases_read_back_as_the_batch_has_them(
        redis_client: redis.Redis) -> None:
    """Decayed, an old purchase weighs less than two recent returns of it: its totals fall
    below 0 in batch, and the record keeps them there instead of at 0."""
    shoes = {"category": "shoes", "price": 120.0}
    batch = batch_of(at(60, EventType.PURCHASE, **shoes),
                     at(1, EventType.PURCHASE, quantity=-1, **shoes),
                     at(1, EventType.PURCHASE, quantity=-1, **shoes), users=_one_user())
    expected = batch.state("u1")
    assert expected is not None and min(expected.counts["price_affinity"].values()) < 0
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state = store.read("u1")
    assert state is not None
    assert state.counts_at("price_affinity", T) == pytest.approx(
        expected.counts_at("price_affinity", T), rel=1e-3)


def test_a_cart_and_a_spend_read_back_as_the_amounts_they_were(
        redis_client: redis.Redis) -> None:
    """Kept as float32, 19.99 read 19.9899998: an offer with a minimum order of 19.99
    refused the cart after a publish, and accepted it fed live."""
    batch = batch_of(at(0.01, EventType.ADD_TO_CART, category="tea", price=19.99),
                     at(3, EventType.PURCHASE, category="tea", price=7.3),
                     users=_one_user())
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state = store.read("u1")
    assert state is not None
    assert state.session.cart_value == 19.99 and state.purchases.amount == 7.3


def test_more_send_buckets_than_slots_never_count_below_what_was_sent(
        redis_client: redis.Redis) -> None:
    """Messaged on three channels every day for a week: 21 (day, channel) buckets for 14
    slots. The record kept the 14 latest and dropped 7 sends: a cap of 20 in 7 days let
    more through. Folded, the week counts its 21, and each channel at least its own."""
    sends = [at(day + 0.5 + hour / 24, EventType.MESSAGE_SENT, channel=channel)
             for day in range(7) for hour, channel in enumerate(("email", "push", "sms"))]
    batch = batch_of(*sends, users=_one_user())
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state = store.read("u1")
    assert state is not None
    assert state.sent_within(T, 7) == 21
    for channel in ("email", "push", "sms"):
        assert state.sent_within(T, 7, channel) >= 7
    assert state.sent_within(T, 3) == 6  # the latest days (none on the cut-off's) stay exact
    assert state.sent_within(T, 3, "email") == 2
    assert state.contacts == kept(batch).state("u1").contacts  # type: ignore[union-attr]
    budget = ContactPolicy({"*": [(7, 20)]}).budget(state, T, ["email"])
    assert budget.allowed_channels == () and budget.sent == 21


def test_an_interest_decayed_to_nothing_reads_as_none_in_batch_and_published(
        redis_client: redis.Redis) -> None:
    """Sixteen years old, a purchase's anchored totals underflow the record's float16 (price) and
    float32 (categories, brands): below MIN_TOTAL they count as none on both sides, so a
    publish no longer flips the price band, brands and categories it gave."""
    batch = batch_of(at(6000, EventType.PURCHASE, category="tea", brand="zeta", price=3.0),
                     at(10, EventType.VIEW, category="coffee"), users=_one_user())
    expected = batch.state("u1")
    assert expected is not None
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state = store.read("u1")
    assert state is not None
    assert state.price_band(T) == expected.price_band(T) is None
    for name in ("category_affinity", "brand_affinity"):
        positive = {key for key, value in state.counts_at(name, T).items() if value > 0}
        assert positive == {key for key, value in expected.counts_at(name, T).items()
                            if value > 0}
    assert "coffee" in {key for key, value in state.counts_at("category_affinity", T).items()
                        if value > 0}


def test_folded_sends_past_what_one_slot_counts_take_more_slots(
        redis_client: redis.Redis) -> None:
    """Twice a day on six channels for a month: the folded sends overflowed one slot's 255
    and a cap of 300 in 30 days let a message through at 281 counted of 348 sent."""
    channels = ("email", "push", "sms", "whatsapp", "in_app", "web")
    sends = [at(day + 0.3 + hour / 48, EventType.MESSAGE_SENT, channel=channel)
             for day in range(30) for hour, channel in enumerate(channels * 2)]
    batch = batch_of(*sends, users=_one_user())
    store = RedisFeatureStore(redis_client)
    store.publish(batch)
    state, expected = store.read("u1"), batch.state("u1")
    assert state is not None and expected is not None
    for days in (2, 7, 30):
        assert state.sent_within(T, days) >= expected.sent_within(T, days) > 0
        for channel in channels:
            assert state.sent_within(T, days, channel) >= expected.sent_within(T, days, channel)
    assert state.contacts == kept(batch).state("u1").contacts  # type: ignore[union-attr]


def test_a_version_whose_metadata_was_evicted_reads_as_none_until_a_publish(
        split_world: SplitWorld, redis_client: redis.Redis) -> None:
    """Its records cannot be read without it: users read as unknown (every read raised,
    a 500, and went on reading the broken version after a publish), an event is refused
    with what to do, and the next publishes remove the broken version and succeed."""
    store = RedisFeatureStore(redis_client)
    user_id = split_world.early.users["user_id"][0]
    first = store.publish(split_world.early)
    assert store.read(user_id) is not None
    redis_client.delete(keys.meta(first.version))  # evicted
    starting = RedisFeatureStore(redis_client)  # a process starting now (one running
    assert starting.read_many([user_id, "nobody"]) == [None, None]  # keeps it in memory)
    with pytest.raises(MissingVersionMeta, match="run `nbo publish`"):
        starting.apply(Event(user_id, T, EventType.VIEW, category="shoes"))
    second = RedisFeatureStore(redis_client).publish(split_world.early)
    assert starting.read(user_id) is not None and starting.current() is not None
    assert second.removed == (first.version,)  # at once: no one could read it
    assert list(redis_client.scan_iter(match=f"*{first.version}*")) == []


def test_a_version_named_with_glob_characters_removes_only_its_own_keys(
        split_world: SplitWorld, redis_client: redis.Redis) -> None:
    """Its keys are found by SCAN patterns: `x*`, its metadata lost, matched and removed
    the current version's profiles too."""
    store = RedisFeatureStore(redis_client)
    user_id = split_world.early.users["user_id"][0]
    store.publish(split_world.early, version="x*")
    redis_client.delete(keys.meta("x*"))
    assert store.publish(split_world.early, version="xa").removed == ("x*",)
    assert RedisFeatureStore(redis_client).read(user_id) is not None


def test_removing_a_version_leaves_the_keys_of_users_whose_ids_hold_its_name(
        split_world: SplitWorld, redis_client: redis.Redis) -> None:
    """The SCAN pattern of version `a`'s live keys also matched `live:c:shop:a:42`: a user
    whose id holds `:a:` lost the current version's live features and seen events."""
    store = RedisFeatureStore(redis_client)
    store.publish(split_world.early, version="a")
    store.publish(split_world.early, version="b")
    events = [Event("shop:a:42", T, EventType.VIEW, category="shoes", event_id="e1"),
              Event("shop:a:42", T, EventType.VIEW, category="bags", event_id="e2")]
    for event in events:
        store.apply(event)
    assert store.publish(split_world.early, version="c").removed == ("a",)
    user = store.read("shop:a:42")
    assert user is not None and user.activity.events == 2
    assert store.apply(events[0]) is Applied.DUPLICATE  # its seen events kept too
    with pytest.raises(DataContractError, match="without ':'"):
        store.publish(split_world.early, version="d:1")
