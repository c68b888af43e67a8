"""Feedback recorded once, whole or not at all: Redis failing at any step of a report (before
a step is done, or after it, its reply lost) leaves nothing half-recorded, and the client's
retry records what is missing without counting anything twice. The same for the first
render of a campaign's offer block, which records its offer's impression."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from decisions import keys
from decisions.campaigns import CampaignDecisions
from decisions.catalog import OfferCatalog
from decisions.engine import DecisionEngine
from decisions.feedback import Feedback, FeedbackLog, FeedbackType, UnknownDecision
from decisions.policy import Policy
from features.contract.offers import Offer
from features.store.redis_store import RedisFeatureStore
from nbo.redis_plan import Plan, Step, execute, run, run_blocking
from nbo.settings import Settings

USER, DECISION, OFFER = "u1", "d1", "voucher-1"
Fault = tuple[int, bool]  # (step, whether the step was done before the failure)


@pytest.fixture
def log(redis_client: redis.Redis, tmp_path: Path) -> Iterator[FeedbackLog]:
    catalog = OfferCatalog(redis_client)
    catalog.put(Offer.model_validate({"offer_id": OFFER, "kind": "voucher", "value": 5.0,
                                      "cost": 2.5, "budget": 100.0}))
    redis_client.hset(keys.decision(DECISION), mapping={
        "user_id": USER, "offers": orjson.dumps([OFFER]), "ts": "2026-12-07T00:00:00+00:00"})
    yield FeedbackLog(catalog, Policy.from_settings(Settings(data_dir=tmp_path)))


def failing_once(client: redis.Redis, fault: Fault) -> Callable[[Step], list[Any]]:
    """An executor whose step number `fault[0]` fails as an outage would: before Redis runs
    it, or (`fault[1]`) after, with its reply lost."""
    steps = iter(range(1_000))

    def run_step(step: Step) -> list[Any]:
        number = next(steps)
        if number != fault[0]:
            return execute(client, step)
        if fault[1]:
            execute(client, step)
        raise redis.ConnectionError("Redis went away")
    return run_step


def steps_taken(plan: Plan[Any], client: redis.Redis) -> int:
    """How many steps `plan` takes when nothing fails."""
    count = 0

    def counting(step: Step) -> list[Any]:
        nonlocal count
        count += 1
        return execute(client, step)
    run_blocking(plan, counting)
    return count


def recorded(client: redis.Redis) -> tuple[int, dict[str, int], float]:
    """What the reports left: feedback entries, offers counted as shown, budget spent."""
    given = OfferCatalog.parse_given(client.hgetall(keys.given(USER)), 3600)
    return client.xlen(keys.FEEDBACK), given, float(client.hget(keys.SPENT, OFFER) or 0)


@pytest.mark.parametrize(("kind", "expected"), [
    ("impression", (1, {OFFER: 1}, 0.0)), ("redemption", (1, {}, 2.5)),
    ("click", (1, {}, 0.0))])
@pytest.mark.parametrize("done", [False, True])
def test_a_report_cut_off_at_any_step_is_recorded_once_by_its_retry(
        log: FeedbackLog, redis_client: redis.Redis, kind: FeedbackType,
        expected: tuple[int, dict[str, int], float], done: bool) -> None:
    report = Feedback(DECISION, kind, OFFER if kind != "click" else None,
                      datetime.now(UTC), None)
    def forget() -> None:
        redis_client.delete(keys.FEEDBACK, keys.given(USER), keys.SPENT)
        summary = keys.decision(DECISION)
        fields: list[bytes] = redis_client.hkeys(summary)  # type: ignore[assignment]
        redis_client.hdel(summary, *[field for field in fields if field.startswith(b"seen:")])

    run(redis_client, log.record_plan(report))  # its scripts now known to Redis
    assert recorded(redis_client) == expected
    forget()
    steps = steps_taken(log.record_plan(report), redis_client)
    for step in range(steps):
        forget()
        with pytest.raises(redis.ConnectionError, match="went away"):
            run_blocking(log.record_plan(report), failing_once(redis_client, (step, done)))
        retried = run(redis_client, log.record_plan(report))
        assert recorded(redis_client) == expected, (step, done)
        again = run(redis_client, log.record_plan(report))
        assert again.duplicate and recorded(redis_client) == expected
        assert retried.user_id == USER


@pytest.mark.parametrize("summary", [True, False])
@pytest.mark.parametrize("done", [False, True])
def test_a_first_render_cut_off_at_any_step_is_counted_once_by_the_next(
        log: FeedbackLog, redis_client: redis.Redis, summary: bool, done: bool) -> None:
    """With the decision's summary (the render is its impression) or without (not logged
    yet: the offer is counted as shown, unjoined)."""
    engine = DecisionEngine(redis_client, RedisFeatureStore(redis_client),
                            OfferCatalog(redis_client), Policy.from_settings(Settings()))
    campaigns = CampaignDecisions(engine, log, ttl_s=3600)
    key = keys.campaign_decision(USER, "spring")
    if not summary:
        redis_client.delete(keys.decision(DECISION))

    def render() -> Plan[None]:
        return campaigns.shown_plan(USER, "spring", DECISION, OFFER)

    def forget() -> None:
        redis_client.delete(keys.FEEDBACK, keys.given(USER), key)
        redis_client.hdel(keys.decision(DECISION), f"seen:impression:{OFFER}")
        redis_client.hset(key, "decision", "1:{}")

    forget()
    run(redis_client, render())
    counted = (1 if summary else 0, {OFFER: 1}, 0.0)
    assert recorded(redis_client) == counted and redis_client.hexists(key, "shown")
    forget()
    steps = steps_taken(render(), redis_client)
    for step in range(steps):
        forget()
        with pytest.raises(redis.ConnectionError, match="went away"):
            run_blocking(render(), failing_once(redis_client, (step, done)))
        run(redis_client, render())  # the next render
        assert recorded(redis_client) == counted, (step, done)
        run(redis_client, render())  # and the one after
        assert recorded(redis_client) == counted and redis_client.hexists(key, "shown")


def test_an_offer_named_star_is_told_apart_from_the_decision_as_a_whole(
        log: FeedbackLog, redis_client: redis.Redis) -> None:
    summary = keys.decision(DECISION)
    redis_client.hset(summary, "offers", orjson.dumps(["*"]))
    now = datetime.now(UTC)
    whole = run(redis_client, log.record_plan(Feedback(DECISION, "click", None, now, None)))
    star = run(redis_client, log.record_plan(Feedback(DECISION, "click", "*", now, None)))
    shown = run(redis_client, log.record_plan(Feedback(DECISION, "impression", "*", now, None)))
    assert not whole.duplicate and not star.duplicate and not shown.duplicate
    assert redis_client.xlen(keys.FEEDBACK) == 3
    assert OfferCatalog.parse_given(redis_client.hgetall(keys.given(USER)), 3600) == {"*": 1}


def test_a_whole_decision_report_recorded_by_the_older_marker_is_a_duplicate(
        log: FeedbackLog, redis_client: redis.Redis) -> None:
    """Before the marker moved, a report about the whole decision was marked
    `seen:<type>:*`: its resend after the upgrade is still a duplicate."""
    redis_client.hset(keys.decision(DECISION), "seen:open:*", "2026-12-07T00:00:00+00:00")
    now = datetime.now(UTC)
    again = run(redis_client, log.record_plan(Feedback(DECISION, "open", None, now, None)))
    assert again.duplicate and redis_client.xlen(keys.FEEDBACK) == 0
    click = run(redis_client, log.record_plan(Feedback(DECISION, "click", None, now, None)))
    assert not click.duplicate  # another type: recorded


@pytest.mark.parametrize("first", ["one offer", "the whole decision"])
def test_impressions_of_one_offer_and_of_the_whole_decision_count_each_offer_once(
        log: FeedbackLog, redis_client: redis.Redis, first: str) -> None:
    """In either order: each offer is counted once and has one entry naming it (a report
    for the whole decision after one for an offer wrote an entry for every offer)."""
    decision = "d2"
    redis_client.hset(keys.decision(decision), mapping={
        "user_id": USER, "offers": orjson.dumps([OFFER, "guide"]),
        "ts": "2026-12-07T00:00:00+00:00"})
    reports = [Feedback(decision, "impression", OFFER, datetime.now(UTC), None),
               Feedback(decision, "impression", None, datetime.now(UTC), None)]
    if first != "one offer":
        reports.reverse()
    duplicates = [run(redis_client, log.record_plan(report)).duplicate for report in reports]
    assert duplicates == [False, first != "one offer"]
    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis_client.xrange(  # type: ignore[assignment]
        keys.FEEDBACK)
    assert sorted(orjson.loads(fields[b"f"])["offer_id"] for _, fields in entries) == [
        "guide", OFFER]
    assert recorded(redis_client)[1] == {OFFER: 1, "guide": 1}


def test_a_whole_decision_impression_racing_the_block_render_is_a_duplicate(
        log: FeedbackLog, redis_client: redis.Redis) -> None:
    """The sender's report reads the summary, the campaign's offer block renders (standing
    for the whole decision), then the report's script runs: it records nothing."""
    decision = "d3"
    rendered: list[object] = []
    redis_client.hset(keys.decision(decision), mapping={
        "user_id": USER, "offers": orjson.dumps([OFFER, "guide"]),
        "ts": "2026-12-07T00:00:00+00:00"})

    def render_before_the_script(step: Step) -> list[Any]:
        if step.commands[0][0] in ("EVALSHA", "EVAL") and not rendered:
            rendered.append(run(redis_client, log.record_plan(
                Feedback(decision, "impression", OFFER, datetime.now(UTC), None),
                for_the_whole=True)))
        return execute(redis_client, step)

    report = run_blocking(log.record_plan(
        Feedback(decision, "impression", None, datetime.now(UTC), None)),
        render_before_the_script)
    assert rendered and report.duplicate
    assert recorded(redis_client)[:2] == (1, {OFFER: 1})  # the block's entry and count only


def test_a_conversion_spends_no_budget(log: FeedbackLog, redis_client: redis.Redis) -> None:
    """A redemption spends its offer's cost; a conversion naming the offer does not."""
    run(redis_client, log.record_plan(Feedback(DECISION, "conversion", OFFER,
                                               datetime.now(UTC), 30.0)))
    assert recorded(redis_client) == (1, {}, 0.0)


def test_shows_are_kept_as_long_as_the_policy_says(redis_client: redis.Redis,
                                                   tmp_path: Path) -> None:
    """NBO_OFFER_MEMORY_DAYS: how long an offer's count of shows is kept."""
    short = FeedbackLog(OfferCatalog(redis_client), Policy.from_settings(
        Settings(data_dir=tmp_path, offer_memory_days=0.001)))  # 86.4 s
    redis_client.hset(keys.decision(DECISION), mapping={
        "user_id": USER, "offers": orjson.dumps([OFFER])})
    run(redis_client, short.record_plan(Feedback(DECISION, "impression", OFFER,
                                                 datetime.now(UTC), None)))
    assert 0 < redis_client.ttl(keys.given(USER)) <= 87


def test_a_summary_expiring_mid_report_is_an_unknown_decision(
        log: FeedbackLog, redis_client: redis.Redis) -> None:
    """Read before the script runs, gone when it does: nothing is recorded, and the client
    is told so (not a 200 for a report that was dropped)."""
    def expiring_before_the_script(step: Step) -> list[Any]:
        if step.commands[0][0] in ("EVALSHA", "EVAL"):
            redis_client.delete(keys.decision(DECISION))
        return execute(redis_client, step)

    with pytest.raises(UnknownDecision):
        run_blocking(log.record_plan(Feedback(DECISION, "click", None, datetime.now(UTC),
                                              None)), expiring_before_the_script)
    assert redis_client.xlen(keys.FEEDBACK) == 0


def test_a_show_marked_on_a_hash_gone_counts_nothing_and_makes_no_hash(
        log: FeedbackLog, redis_client: redis.Redis) -> None:
    """A campaign's hash that expired is not made again without an expiry (the next
    decision of that campaign would read as shown already), by either script."""
    run(redis_client, log.shown_once_plan(USER, OFFER, "gone", "shown"))
    assert not redis_client.exists("gone") and recorded(redis_client)[1] == {}
    campaigns = CampaignDecisions(None, log, 3600)  # type: ignore[arg-type]  # no deciding
    run(redis_client, campaigns.shown_plan(USER, "spring", DECISION, OFFER))
    assert recorded(redis_client)[1] == {OFFER: 1}
    assert not redis_client.exists(keys.campaign_decision(USER, "spring"))
