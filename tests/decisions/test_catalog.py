"""The offer catalog against a real Redis: versions, cached snapshots, budgets, counts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from redis.connection import AbstractConnection

from decisions import catalog as catalog_module
from decisions import keys
from decisions.candidates import CandidateTable
from decisions.catalog import OfferCatalog, offers_to_publish
from decisions.engine import DecisionEngine
from decisions.policy import Policy
from features.contract.offers import Offer
from features.contract.schema import Channel, OfferKind
from features.store.redis_store import RedisFeatureStore
from nbo.errors import DataContractError
from nbo.redis_plan import Step, execute, run
from nbo.settings import Settings


def _offer(offer_id: str, cost: float = 2.0, budget: float | None = None) -> Offer:
    return Offer(offer_id=offer_id, kind=OfferKind.VOUCHER, value=10.0, cost=cost,
                 channels=[Channel.EMAIL], budget=budget)


class Sent:
    """Round trips to Redis: each packed send (a command, or a whole pipeline) is one."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    counter = Sent()
    original = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        counter.count += 1
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return counter


@pytest.fixture
def other_client(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """A second connection, as another API process would have."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_writes_bump_the_version_and_are_read_back(redis_client: redis.Redis) -> None:
    catalog = OfferCatalog(redis_client, refresh_s=0)
    assert catalog.snapshot().version == 0
    assert catalog.snapshot().offers == ()

    assert catalog.put(_offer("b")) == 1
    assert catalog.put(_offer("a")) == 2
    snapshot = catalog.snapshot()
    assert snapshot.version == 2
    assert [offer.offer_id for offer in snapshot.offers] == ["a", "b"]
    assert snapshot.get("a") == _offer("a")
    assert snapshot.get("missing") is None

    assert catalog.put(_offer("a", cost=5.0)) == 3  # replace
    a = catalog.snapshot().get("a")
    assert a is not None and a.cost == 5.0

    assert catalog.delete("a") == 4
    assert catalog.delete("a") is None  # nothing there: no write, no new version
    assert int(redis_client.get(keys.CATALOG_VERSION) or 0) == 4
    assert [offer.offer_id for offer in catalog.snapshot().offers] == ["b"]

    assert catalog.replace_all([_offer("c"), _offer("d")]) == 5
    snapshot = catalog.snapshot()
    assert (snapshot.version, [o.offer_id for o in snapshot.offers]) == (5, ["c", "d"])
    assert catalog.replace_all([]) == 6
    assert catalog.snapshot().offers == ()


def test_offers_are_stored_as_their_json(redis_client: redis.Redis) -> None:
    offer = _offer("a", budget=50.0)
    OfferCatalog(redis_client).put(offer)
    stored = redis_client.hget(keys.CATALOG, "a")
    assert stored is not None
    assert Offer.model_validate_json(stored) == offer


def test_replace_all_refuses_duplicate_ids_and_changes_nothing(
        redis_client: redis.Redis) -> None:
    catalog = OfferCatalog(redis_client, refresh_s=0)
    catalog.put(_offer("a"))
    with pytest.raises(DataContractError, match="'b' is given more than once"):
        catalog.replace_all([_offer("b"), _offer("b")])
    snapshot = catalog.snapshot()
    assert (snapshot.version, [o.offer_id for o in snapshot.offers]) == (1, ["a"])


def test_a_snapshot_sees_another_clients_write(redis_client: redis.Redis,
                                               other_client: redis.Redis) -> None:
    reader = OfferCatalog(redis_client, refresh_s=0)
    writer = OfferCatalog(other_client)
    writer.put(_offer("a"))
    assert [o.offer_id for o in reader.snapshot().offers] == ["a"]
    writer.put(_offer("b"))
    assert [o.offer_id for o in reader.snapshot().offers] == ["a", "b"]
    writer.delete("a")
    assert [o.offer_id for o in reader.snapshot().offers] == ["b"]


def test_a_catalog_evicted_or_restored_under_the_same_version_is_read_again(
        redis_client: redis.Redis, other_client: redis.Redis) -> None:
    """A process compared the version number alone: a catalog hash evicted (its version
    key kept), or Redis restored from an older copy whose counter reached the same number
    with other offers, left it deciding with offers that no longer exist, for good."""
    reader = OfferCatalog(redis_client, refresh_s=0)
    writer = OfferCatalog(other_client)
    engine = DecisionEngine(redis_client, RedisFeatureStore(redis_client), reader,
                            Policy.from_settings(Settings()))

    def decided_from() -> tuple[int | None, list[str]]:
        version, table = run(redis_client, engine.candidates())
        return version, [offer.offer_id for offer in table.offers]

    writer.replace_all([_offer("a"), _offer("b")])
    assert decided_from() == (1, ["a", "b"])
    other_client.delete(keys.CATALOG)  # evicted
    assert decided_from() == (1, [])
    other_client.hset(keys.CATALOG, "a", _offer("a").model_dump_json())  # written before
    other_client.incr(keys.CATALOG_VERSION)  # stamps were: no stamp
    assert decided_from() == (2, ["a"])
    other_client.delete(keys.CATALOG)  # evicted
    assert decided_from() == (2, [])
    other_client.flushdb()  # lost, then published again from another file
    writer.replace_all([_offer("c")])
    assert decided_from() == (1, ["c"])


def test_a_cached_snapshot_is_served_without_a_redis_call(
        redis_client: redis.Redis, other_client: redis.Redis, sent: Sent) -> None:
    writer = OfferCatalog(other_client)
    writer.put(_offer("a"))
    reader = OfferCatalog(redis_client, refresh_s=3600)
    first = reader.snapshot()
    before = sent.count
    writer.put(_offer("b"))
    during = sent.count
    for _ in range(100):
        assert reader.snapshot() is first
    assert during - before == 1  # the writer's transaction
    assert sent.count == during  # the reader sent nothing


def test_after_refresh_s_one_small_call_confirms_or_refreshes(
        redis_client: redis.Redis, other_client: redis.Redis, sent: Sent,
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(catalog_module, "monotonic", clock)
    writer = OfferCatalog(other_client)
    writer.put(_offer("a"))
    reader = OfferCatalog(redis_client, refresh_s=5)
    first = reader.snapshot()

    clock.now += 4.9
    before = sent.count
    assert reader.snapshot() is first
    assert sent.count == before

    clock.now += 0.2
    assert reader.snapshot() is first  # unchanged: one GET of the version
    assert sent.count == before + 1
    clock.now += 1  # confirmed 1 s ago: cached again
    assert reader.snapshot() is first
    assert sent.count == before + 1

    writer.put(_offer("b"))
    before = sent.count
    clock.now += 5
    snapshot = reader.snapshot()
    assert [o.offer_id for o in snapshot.offers] == ["a", "b"]
    assert sent.count == before + 2  # the version check, then one transaction to re-read


def test_a_process_sees_its_own_writes_at_once(redis_client: redis.Redis) -> None:
    catalog = OfferCatalog(redis_client, refresh_s=3600)
    catalog.put(_offer("a"))
    assert [o.offer_id for o in catalog.snapshot().offers] == ["a"]
    catalog.put(_offer("b"))
    assert [o.offer_id for o in catalog.snapshot().offers] == ["a", "b"]
    catalog.delete("a")
    assert [o.offer_id for o in catalog.snapshot().offers] == ["b"]


def test_a_corrupt_entry_is_skipped_and_logged(redis_client: redis.Redis,
                                               caplog: pytest.LogCaptureFixture) -> None:
    catalog = OfferCatalog(redis_client, refresh_s=0)
    catalog.replace_all([_offer("a"), _offer("c")])
    bad_cost = _offer("d").model_dump_json().replace('"cost":2.0', '"cost":-1.0')
    redis_client.hset(keys.CATALOG, mapping={
        "b": "{not json",
        "d": bad_cost,
        "e": _offer("other").model_dump_json(),  # stored under another id
        "f": b"\xff\xfe",
    })
    redis_client.incr(keys.CATALOG_VERSION)
    with caplog.at_level(logging.WARNING, logger="decisions.catalog"):
        snapshot = catalog.snapshot()
    assert [o.offer_id for o in snapshot.offers] == ["a", "c"]
    skipped = sorted(record.args[0] for record in caplog.records
                     if isinstance(record.args, tuple) and isinstance(record.args[0], str))
    assert skipped == ["b", "d", "e", "f"]


def test_budgets_and_exhaustion_in_one_round_trip(redis_client: redis.Redis,
                                                  sent: Sent) -> None:
    catalog = OfferCatalog(redis_client, refresh_s=3600)
    catalog.replace_all([_offer("capped", budget=10.0), _offer("open"),
                         _offer("tiny", budget=0.0)])
    assert catalog.record_spend("capped", 4.0) == 4.0
    assert catalog.record_spend("capped", 2.5) == 6.5
    catalog.record_spend("open", 100.0)
    redis_client.hincrby(keys.CHOSEN, "capped", 2)  # as two decisions' logs count them
    redis_client.hincrby(keys.CHOSEN, "open", 1)
    catalog.snapshot()

    before = sent.count
    statuses = catalog.budgets()
    assert sent.count == before + 1
    assert statuses == {
        "capped": catalog_module.BudgetStatus(10.0, 6.5, 3.5, False, 2),
        "open": catalog_module.BudgetStatus(None, 100.0, None, False, 1),
        "tiny": catalog_module.BudgetStatus(0.0, 0.0, 0.0, True, 0),
    }

    catalog.record_spend("capped", 3.5)
    before = sent.count
    capped = catalog.budgets(["capped", "unknown"])
    assert sent.count == before + 1
    assert capped["capped"].exhausted and capped["capped"].remaining == 0.0
    assert capped["unknown"] == catalog_module.BudgetStatus(None, 0.0, None, False, 0)
    assert catalog.budgets([]) == {}
    written = _offer("capped", budget=20.0)  # as a writer knows it, stored or not
    assert catalog.statuses({"capped": written})["capped"] == catalog_module.BudgetStatus(
        20.0, 10.0, 10.0, False, 2)
    catalog.record_spend("capped", 1.0)  # overspent: remaining stays at 0
    assert catalog.budgets(["capped"])["capped"].remaining == 0.0
    with pytest.raises(ValueError, match="finite"):
        catalog.record_spend("capped", float("nan"))


def test_offers_given_count_per_user_with_a_ttl(redis_client: redis.Redis) -> None:
    def record_given(user_id: str, offer_ids: list[str], ttl_s: int) -> None:
        commands = OfferCatalog.given_commands([(user_id, offer_ids)], ttl_s)
        if commands:
            execute(redis_client, Step(commands))

    def given(user_id: str) -> dict[str, int]:
        return OfferCatalog.parse_given(redis_client.hgetall(keys.given(user_id)), 3600)

    record_given("u1", ["a", "b"], ttl_s=3600)
    record_given("u1", ["a"], ttl_s=7200)
    record_given("u2", ["a", "a"], ttl_s=3600)
    record_given("u3", [], ttl_s=3600)

    assert given("u1") == {"a": 2, "b": 1}
    assert given("u2") == {"a": 2}
    assert given("u3") == {}
    assert 3600 < redis_client.ttl(keys.given("u1")) <= 7200  # the latest give sets the TTL
    assert 0 < redis_client.ttl(keys.given("u2")) <= 3600
    assert not redis_client.exists(keys.CHOSEN)  # shown is not chosen: decisions count that
    with pytest.raises(ValueError, match="ttl_s"):
        record_given("u1", ["a"], ttl_s=0)


def test_each_offer_is_forgotten_its_own_time_after_it_was_last_shown(
        redis_client: redis.Redis) -> None:
    """Shows of other offers keep the user's hash alive, not an old offer's count."""
    day, start = 86_400, 1_800_000_000.0

    def show(offer_ids: list[str], at: float) -> None:
        execute(redis_client, Step(OfferCatalog.given_commands(
            [("u9", offer_ids)], ttl_s=90 * day, now=at)))

    def given(at: float) -> dict[str, int]:
        return OfferCatalog.parse_given(redis_client.hgetall(keys.given("u9")), 90 * day, at)

    show(["old", "old"], start)
    show(["new"], start + 80 * day)
    assert given(start + 89 * day) == {"old": 2, "new": 1}
    assert given(start + 91 * day) == {"new": 1}  # "old" was last shown 91 days before
    show(["old"], start + 100 * day)  # shown again: counting starts over
    assert given(start + 100 * day) == {"old": 1, "new": 1}
    redis_client.hset(keys.given("u9"), "kept-before", "3")  # a count of the older format
    assert given(start + 100 * day)["kept-before"] == 3
    show(["new"], start + 101 * day)  # the next show dates it: it expires like the others
    assert given(start + 190 * day)["kept-before"] == 3
    assert "kept-before" not in given(start + 192 * day)
    redis_client.delete(keys.given("u9"))


def test_a_count_last_shown_exactly_its_keeping_time_ago_is_forgotten(
        redis_client: redis.Redis) -> None:
    """Reading and counting agree on the edge: shown `ttl_s` ago is shown too long ago."""
    at, ttl_s = 1_800_000_000, 100
    assert OfferCatalog.parse_given({b"o": f"1:{at}".encode()}, ttl_s, at + ttl_s) == {}
    assert OfferCatalog.parse_given({b"o": f"1:{at}".encode()}, ttl_s, at + ttl_s - 1) == {
        "o": 1}
    for now in (at, at + ttl_s):
        execute(redis_client, Step(OfferCatalog.given_commands([("u8", ["o"])], ttl_s, now)))
    assert redis_client.hget(keys.given("u8"), "o") == f"1:{at + ttl_s}".encode()
    redis_client.delete(keys.given("u8"))


def test_a_batch_counts_each_user_once(redis_client: redis.Redis) -> None:
    given = [("u1", ["a", "b"]), ("u2", ["a"]), ("u1", ["a"]), ("u3", [])]
    execute(redis_client, Step(OfferCatalog.given_commands(given, ttl_s=60)))
    assert OfferCatalog.parse_given(redis_client.hgetall(keys.given("u1")), 60) == {
        "a": 2, "b": 1}
    assert OfferCatalog.parse_given(redis_client.hgetall(keys.given("u2")), 60) == {"a": 1}
    assert not redis_client.exists(keys.given("u3"))
    assert all(0 < redis_client.ttl(keys.given(user)) <= 60 for user in ("u1", "u2"))
    assert not redis_client.exists(keys.CHOSEN)  # the decision log counts offers chosen


OFFERS_YAML = """\
offers:
  - offer_id: welcome10
    kind: voucher
    value: 10
    cost: 10
    budget: 1000
  - offer_id: broken
    kind: voucher
    value: 5
    cost: -3
  - offer_id: freeship
    kind: free_shipping
    value: 4.9
    cost: 3.5
    channels: [email, push]
"""


def test_a_file_s_good_offers_are_published(redis_client: redis.Redis,
                                            tmp_path: Path) -> None:
    OfferCatalog(redis_client).put(_offer("old"))
    path = tmp_path / "offers.yaml"
    path.write_text(OFFERS_YAML)
    offers, check = offers_to_publish(path)
    assert OfferCatalog(redis_client).replace_all(offers) == 2
    assert (check.rows, check.invalid_rows) == (3, 1)
    assert [(p.row, p.column) for p in check.shown] == [(2, "cost")]
    snapshot = OfferCatalog(redis_client).snapshot()
    assert snapshot.version == 2
    assert [o.offer_id for o in snapshot.offers] == ["freeship", "welcome10"]


def test_a_broken_file_is_never_published_over_the_catalog(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    OfferCatalog(redis_client).put(_offer("old"))
    path = tmp_path / "offers.yaml"
    path.write_text("offers: [\n")
    with pytest.raises(DataContractError, match="left as it was"):
        offers_to_publish(path)
    snapshot = OfferCatalog(redis_client).snapshot()
    assert (snapshot.version, [o.offer_id for o in snapshot.offers]) == (1, ["old"])


def test_a_decimal_budget_pays_its_last_redemption(redis_client: redis.Redis) -> None:
    """2.2 + 1.1 > 3.3 in floating point: the budget read as spent one redemption early."""
    catalog = OfferCatalog(redis_client, refresh_s=3600)
    catalog.replace_all([_offer("decimal", cost=1.1, budget=3.3)])
    table = CandidateTable.of(catalog.snapshot().offers)

    def pays() -> tuple[bool, bool, float | None]:
        status = catalog.budgets(["decimal"])["decimal"]
        spent = {"decimal": status.spent}
        passing = bool(table.rules([], datetime.now(UTC), spent)["budget"][0, 0])
        return not status.exhausted, passing, status.remaining

    for _ in range(2):
        catalog.record_spend("decimal", 1.1)
    assert pays() == (True, True, 1.1)
    catalog.record_spend("decimal", 1.1)
    assert pays() == (False, False, 0.0)


@pytest.mark.parametrize("budget", [1e7, 1e9])
def test_a_large_budget_spent_pays_no_cheap_redemption(redis_client: redis.Redis,
                                                       budget: float) -> None:
    """The rounding slack is a share of the budget, but never half a redemption: a budget
    of 1e9 spent exactly used to pay 100 more redemptions at 0.01."""
    catalog = OfferCatalog(redis_client, refresh_s=3600)
    catalog.replace_all([_offer("big", cost=0.01, budget=budget)])
    catalog.record_spend("big", budget - 0.01)
    table = CandidateTable.of(catalog.snapshot().offers)

    def pays() -> tuple[bool, bool]:
        status = catalog.budgets(["big"])["big"]
        passing = bool(table.rules([], datetime.now(UTC), {"big": status.spent})["budget"][0, 0])
        return not status.exhausted, passing

    assert pays() == (True, True)  # one redemption left
    catalog.record_spend("big", 0.01)
    assert pays() == (False, False)
