from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisions.contact_policy import INTERRUPTING, ContactPolicy
from features.contacts import ALL_CHANNELS
from features.profile import UserProfile
from features.state import UserState

NOW = datetime(2026, 3, 10, 3, tzinfo=UTC)  # 12:00 in Tokyo, 04:00 in Paris
CHANNELS = ("email", "push", "sms")
SEEN_AT_A_VISIT = ("in_app", "web")  # quiet hours do not hold them back
ZONES = (None, "UTC", "Europe/Paris", "America/Los_Angeles", "Asia/Kolkata", "Asia/Tokyo",
         "Pacific/Chatham", "Australia/Lord_Howe")


def user(sends: Mapping[tuple[str, date], int], zone: str | None = None,
         now: datetime = NOW) -> UserState:
    """A user with `sends` per (channel, day); the all-channels buckets are their sums."""
    contacts: dict[tuple[str, date], int] = {}
    for (channel, day), n in sends.items():
        contacts[(channel, day)] = contacts.get((channel, day), 0) + n
        contacts[(ALL_CHANNELS, day)] = contacts.get((ALL_CHANNELS, day), 0) + n
    return UserState("u1", now, profile=UserProfile(timezone=zone), contacts=contacts)


def local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


# -- caps ----------------------------------------------------------------------------------


def test_daily_push_cap_blocks_push_until_tomorrow_midnight_utc() -> None:
    policy = ContactPolicy({"push": [(1, 1)]})
    state = user({("push", NOW.date()): 1}, zone="Asia/Tokyo")
    both = policy.budget(state, NOW, ["push", "email"])
    assert both.allowed_channels == ("email",)
    assert both.blocked == {"push": "push: 1 of 1 messages in 1 day"}
    assert both.next_allowed_at is None  # email may go now
    only_push = policy.budget(state, NOW, ["push"])
    assert only_push.allowed_channels == ()
    assert only_push.next_allowed_at == datetime(2026, 3, 11, tzinfo=UTC)  # 09:00 in Tokyo


def test_global_weekly_cap_counts_seven_utc_days_and_reopens_when_the_oldest_leaves() -> None:
    policy = ContactPolicy({"*": [(7, 3)]})
    sends = {("email", date(2026, 3, 3)): 2,  # 7 days ago: outside the window
             ("email", date(2026, 3, 4)): 1, ("push", date(2026, 3, 7)): 1,
             ("sms", date(2026, 3, 9)): 1}
    budget = policy.budget(user(sends), NOW, CHANNELS)
    assert (budget.window_days, budget.sent, budget.cap, budget.remaining) == (7, 3, 3, 0)
    assert budget.allowed_channels == ()
    assert budget.blocked == dict.fromkeys(CHANNELS, "all channels: 3 of 3 messages in 7 days")
    # 4 March leaves the window on the 11th, whose midnight is quiet in UTC until 08:00
    assert budget.next_allowed_at == datetime(2026, 3, 11, 8, tzinfo=UTC)


def test_the_channel_cap_that_holds_longest_is_the_reason() -> None:
    policy = ContactPolicy({"*": [(1, 2)], "push": [(1, 1), (7, 4)]}, quiet_hours=(0, 0))
    sends = {("push", NOW.date() - timedelta(days=d)): 1 for d in range(4)}
    budget = policy.budget(user(sends), NOW, ["push"])
    assert budget.blocked == {"push": "push: 4 of 4 messages in 7 days"}
    assert budget.next_allowed_at == datetime(2026, 3, 14, tzinfo=UTC)  # the 7th leaves


def test_the_reason_names_the_cap_that_holds_longest_wherever_it_is_listed() -> None:
    """The global daily cap is full too, but push has room again only when its sends of
    three days ago leave its 7-day window."""
    policy = ContactPolicy({"*": [(1, 1)], "push": [(7, 2)]}, quiet_hours=(0, 0))
    three_days_ago = NOW.date() - timedelta(days=3)
    state = user({("push", three_days_ago): 2, ("email", NOW.date()): 1})
    budget = policy.budget(state, NOW, ["push"])
    assert budget.blocked == {"push": "push: 2 of 2 messages in 7 days"}
    assert budget.next_allowed_at == datetime(2026, 3, 14, tzinfo=UTC)


def test_the_budget_reports_the_binding_cap_and_never_less_than_nothing_left() -> None:
    """Sends from other systems can pass a cap: what is left is then nothing, not less."""
    policy = ContactPolicy({"*": [(7, 10), (7, 3)]})
    budget = policy.budget(user({("email", NOW.date()): 5}), NOW, ["email"])
    assert (budget.window_days, budget.sent, budget.cap, budget.remaining) == (7, 5, 3, 0)
    assert budget.blocked == {"email": "all channels: 5 of 3 messages in 7 days"}


def test_a_bucket_dated_tomorrow_counts_on_its_own_day() -> None:
    """A skewed clock can leave sends dated in the future: room waits until they leave too."""
    policy = ContactPolicy({"push": [(1, 1)]})
    tomorrow = NOW.date() + timedelta(days=1)
    state = user({("push", NOW.date()): 1, ("push", tomorrow): 1}, zone="Asia/Tokyo")
    budget = policy.budget(state, NOW, ["push"])
    assert budget.next_allowed_at == datetime(2026, 3, 12, tzinfo=UTC)


def test_quiet_hours_do_not_hold_back_channels_seen_at_a_visit() -> None:
    """At 23:00 in Paris an in-app message may be shown now; one held back by its cap may
    be shown from the midnight its cap has room again, quiet or not, while push waits
    for the morning."""
    policy = ContactPolicy({"in_app": [(1, 1)], "push": [(1, 1)]}, quiet_hours=(21, 8))
    late = datetime(2026, 3, 10, 22, tzinfo=UTC)  # 23:00 in Paris
    fresh = user({}, zone="Europe/Paris", now=late)
    assert policy.budget(fresh, late, ["in_app", "push"]).next_allowed_at is None
    assert policy.budget(fresh, late, ["web"]).next_allowed_at is None
    assert policy.budget(fresh, late, ["push"]).next_allowed_at == datetime(
        2026, 3, 11, 7, tzinfo=UTC)  # 08:00 in Paris
    capped = user({("in_app", late.date()): 1, ("push", late.date()): 1}, zone="Europe/Paris",
                  now=late)
    both = policy.budget(capped, late, ["in_app", "push"])
    assert both.allowed_channels == ()
    assert both.next_allowed_at == datetime(2026, 3, 11, tzinfo=UTC)  # 01:00 in Paris


def test_a_send_dated_after_midnight_by_a_clock_ahead_counts_already() -> None:
    """At 23:59 an email dated 00:05 tomorrow (a sender's clock 6 minutes ahead) was sent:
    a cap of one in two days has no room now (the decision proposed a second one)."""
    now = datetime(2027, 2, 10, 23, 59, tzinfo=UTC)
    state = user({("email", date(2027, 2, 11)): 1}, "Europe/Paris", now)
    budget = ContactPolicy({"email": [(2, 1)]}, quiet_hours=(0, 0)).budget(
        state, now, ["email"])
    assert budget.allowed_channels == () and budget.sent == 1
    assert budget.next_allowed_at == datetime(2027, 2, 13, tzinfo=UTC)  # the 11th has left
    assert state.sent_within(now, 1) == 1


def test_learned_weekly_cap_tightens_the_configured_one() -> None:
    sends = {("email", date(2026, 3, 8)): 1, ("push", date(2026, 3, 9)): 1}
    configured = {"*": [(1, 2), (7, 6)]}
    learned = ContactPolicy(configured, weekly_cap=2).budget(user(sends), NOW, ["email"])
    assert (learned.window_days, learned.sent, learned.cap, learned.remaining) == (7, 2, 2, 0)
    assert learned.blocked == {
        "email": "all channels: 2 of 2 messages in 7 days (learned weekly cap)"}
    looser = ContactPolicy(configured, weekly_cap=10).budget(user(sends), NOW, ["email"])
    assert (looser.cap, looser.remaining, looser.allowed_channels) == (6, 4, ("email",))
    alone = ContactPolicy({}, weekly_cap=3).budget(user(sends), NOW, ["email"])
    assert (alone.window_days, alone.cap, alone.remaining) == (7, 3, 1)


def test_window_is_the_longest_global_one_without_a_weekly_cap() -> None:
    sends = {("email", date(2026, 2, 20)): 2, ("email", NOW.date()): 1}
    monthly = ContactPolicy({"*": [(1, 2), (30, 10)]}).budget(user(sends), NOW, ["email"])
    assert (monthly.window_days, monthly.sent, monthly.cap, monthly.remaining) == (30, 3, 10, 7)
    uncapped = ContactPolicy({"push": [(1, 1)]}).budget(user(sends), NOW, ["email"])
    assert (uncapped.window_days, uncapped.sent, uncapped.cap, uncapped.remaining) == (
        7, 1, None, None)


# -- quiet hours and time zones --------------------------------------------------------------


def test_quiet_hours_may_wrap_midnight() -> None:
    wrapping = ContactPolicy({})
    assert [h for h in range(24) if wrapping.is_quiet(h)] == [0, 1, 2, 3, 4, 5, 6, 7, 21, 22, 23]
    assert [h for h in range(24) if ContactPolicy({}, (13, 15)).is_quiet(h)] == [13, 14]
    assert not any(ContactPolicy({}, (5, 5)).is_quiet(h) for h in range(24))


def test_quiet_night_in_paris_ends_at_eight_summer_time_after_the_eu_change() -> None:
    now = datetime(2026, 3, 28, 22, tzinfo=UTC)  # 23:00 CET; clocks go forward at 01:00 UTC
    budget = ContactPolicy({}).budget(user({}, "Europe/Paris", now), now, ["email"])
    assert budget.allowed_channels == ("email",)
    assert budget.next_allowed_at == datetime(2026, 3, 29, 6, tzinfo=UTC)
    assert local(budget.next_allowed_at, "Europe/Paris").hour == 8


def test_quiet_night_in_los_angeles_ends_at_eight_daylight_time_after_the_us_change() -> None:
    now = datetime(2026, 3, 8, 6, tzinfo=UTC)  # 22:00 PST on the 7th; 02:00 -> 03:00 that night
    budget = ContactPolicy({}).budget(user({}, "America/Los_Angeles", now), now, ["push"])
    assert budget.next_allowed_at == datetime(2026, 3, 8, 15, tzinfo=UTC)  # 08:00 PDT


def test_unknown_zone_reads_as_utc() -> None:
    now = datetime(2026, 3, 10, 22, tzinfo=UTC)
    budget = ContactPolicy({}).budget(user({}, "Mars/Olympus_Mons", now), now, ["email"])
    assert budget.next_allowed_at == datetime(2026, 3, 11, 8, tzinfo=UTC)


# -- next send time --------------------------------------------------------------------------


def test_next_send_lands_on_the_wanted_local_hour_across_the_eu_change() -> None:
    policy = ContactPolicy({})
    paris = user({}, "Europe/Paris")
    after_it = datetime(2026, 3, 28, 12, tzinfo=UTC)  # 13:00 CET
    assert policy.next_send_at(paris, "email", 10, after_it) == datetime(2026, 3, 29, 8,
                                                                         tzinfo=UTC)
    inside = datetime(2026, 3, 28, 9, 30, tzinfo=UTC)  # 10:30 CET
    assert policy.next_send_at(paris, "email", 10, inside) == inside
    # 23:00 is quiet: the first hour after the quiet night, 08:00 CEST
    assert policy.next_send_at(paris, "email", 23, after_it) == datetime(2026, 3, 29, 6,
                                                                         tzinfo=UTC)


def test_next_send_waits_for_room_then_for_the_hour() -> None:
    policy = ContactPolicy({"push": [(1, 1)]})
    now = datetime(2026, 3, 10, 16, 20, tzinfo=UTC)  # 09:20 PDT, inside the wanted hour
    state = user({("push", now.date()): 1}, "America/Los_Angeles", now)
    assert policy.next_send_at(state, "email", 9, now) == now
    # push has room from 00:00 UTC on the 11th (17:00 PDT on the 10th); 09:00 PDT is next
    assert policy.next_send_at(state, "push", 9, now) == datetime(2026, 3, 11, 16, tzinfo=UTC)


def test_next_send_in_a_half_hour_zone_and_on_an_hour_that_dst_skips() -> None:
    policy = ContactPolicy({}, quiet_hours=(0, 0))
    now = datetime(2026, 3, 8, 9, tzinfo=UTC)  # 01:00 PST; 02:00 does not exist that night
    la = user({}, "America/Los_Angeles", now)
    # the hour it skips starts when the clock jumps over it: 03:00 PDT, not 02:00 next day
    assert policy.next_send_at(la, "email", 2, now) == datetime(2026, 3, 8, 10, tzinfo=UTC)
    kolkata = user({}, "Asia/Kolkata", now)
    assert policy.next_send_at(kolkata, "email", 9, now) == datetime(2026, 3, 9, 3, 30,
                                                                     tzinfo=UTC)


def test_a_message_after_quiet_hours_that_end_on_a_skipped_hour_waits_no_day() -> None:
    """Quiet until 02:00 in New York on the night 02:00 does not exist: the message goes out
    at 03:00 EDT, when the quiet hours end (it waited for 02:00 the next night)."""
    policy = ContactPolicy({}, quiet_hours=(21, 2))
    now = datetime(2027, 3, 14, 4, tzinfo=UTC)  # 23:00 EST on the 13th
    new_york = user({}, "America/New_York", now)
    hour = policy.send_hour("email", 23)
    at = policy.next_send_at(new_york, "email", hour, now)
    assert at == datetime(2027, 3, 14, 7, tzinfo=UTC)  # 03:00 EDT
    assert at == policy.budget(new_york, now, ["email"]).next_allowed_at


def test_a_clock_going_back_skips_no_hour_and_an_in_app_skipped_hour_waits_no_day() -> None:
    """Chatham's clocks go back from 03:45 to 02:45: 09:00 that morning comes as usual (a
    change back was taken for a 23-hour jump forward over it). In Paris 02:00 does not
    exist on 29 March: an in-app message for 02:00 is shown from the jump, 03:00, though
    that hour is quiet (quiet hours hold back only messages that interrupt)."""
    chatham_now = datetime(2026, 4, 4, 12, tzinfo=UTC)  # 01:45 on the 5th, before the change
    chatham = user({}, "Pacific/Chatham", chatham_now)
    email = ContactPolicy({}, quiet_hours=(22, 2)).next_send_at(chatham, "email", 9,
                                                                chatham_now)
    assert local(email, "Pacific/Chatham").hour == 9
    assert email == datetime(2026, 4, 4, 20, 15, tzinfo=UTC)
    paris_now = datetime(2026, 3, 28, 23, tzinfo=UTC)  # midnight in Paris
    paris = user({}, "Europe/Paris", paris_now)
    shown = ContactPolicy({}, quiet_hours=(21, 8)).send_times(paris, {"in_app": 2}, paris_now)
    assert shown == {"in_app": datetime(2026, 3, 29, 1, tzinfo=UTC)}  # 03:00 CEST


def test_a_skipped_hour_whose_jump_lands_in_quiet_hours_waits_for_the_next_day() -> None:
    """Paris skips 02:00 on 29 March; quiet from 03:00: an email for 02:00 would reach the
    user at 03:00 CEST, a quiet hour, so it waits for 02:00 the next night. An in-app
    message goes at the jump (quiet hours do not hold it back)."""
    policy = ContactPolicy({}, quiet_hours=(3, 8))
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET
    paris = user({}, "Europe/Paris", now)
    email = policy.next_send_at(paris, "email", 2, now)
    assert email == datetime(2026, 3, 30, 0, tzinfo=UTC)  # 02:00 CEST on the 30th
    assert not policy.is_quiet(local(email, "Europe/Paris").hour)
    assert policy.send_times(paris, {"email": 2, "in_app": 2}, now) == {
        "email": email, "in_app": datetime(2026, 3, 29, 1, tzinfo=UTC)}


def test_next_send_on_an_hour_a_clock_change_enters_mid_way() -> None:
    """Chatham's clocks jump from 02:45 to 03:45: hour 3 that night starts at the jump."""
    policy = ContactPolicy({}, quiet_hours=(0, 0))
    now = datetime(2026, 9, 26, 13, 41, 46, tzinfo=UTC)  # 02:26 on the 27th, before the jump
    chatham = user({}, "Pacific/Chatham", now)
    assert policy.next_send_at(chatham, "email", 3, now) == datetime(2026, 9, 26, 14,
                                                                      tzinfo=UTC)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ContactPolicy({"sms": [(7, 0)]})
    with pytest.raises(ValueError, match="0..23"):
        ContactPolicy({}, quiet_hours=(21, 24))
    with pytest.raises(ValueError, match="aware"):
        ContactPolicy({}).budget(user({}), datetime(2026, 3, 10), ["email"])
    with pytest.raises(ValueError, match="0..23"):
        ContactPolicy({}).next_send_at(user({}), "email", 24, NOW)


# -- properties ------------------------------------------------------------------------------

caps_strategy = st.dictionaries(
    st.sampled_from((ALL_CHANNELS, *CHANNELS, *SEEN_AT_A_VISIT)),
    st.lists(st.tuples(st.integers(1, 10), st.integers(1, 5)), max_size=3), max_size=4)
sends_strategy = st.dictionaries(
    st.tuples(st.sampled_from((*CHANNELS, *SEEN_AT_A_VISIT)), st.integers(-12, 1)),
    st.integers(1, 3), max_size=20)


def clock_changes(zones: Sequence[str | None], year: int) -> list[datetime]:
    """Instants up to 6 hours before each clock change of `zones` in `year`."""
    found = set()
    for name in {zone for zone in zones if zone}:
        zone, moment = ZoneInfo(name), datetime(year, 1, 1, tzinfo=UTC)
        while moment.year == year:
            later = moment + timedelta(hours=6)
            if moment.astimezone(zone).utcoffset() != later.astimezone(zone).utcoffset():
                found.add(moment)
            moment = later
    return sorted(found)


# any moment of 2026, or one within a day and a half of a clock change (where the local
# hours sought may be skipped or repeated)
now_strategy = st.one_of(
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31)).map(
        lambda moment: moment.replace(tzinfo=UTC)),
    st.builds(lambda change, offset: change + timedelta(minutes=offset),
              st.sampled_from(clock_changes(ZONES, 2026)), st.integers(-30 * 60, 30 * 60)))
policy_strategy = st.builds(
    ContactPolicy, caps=caps_strategy,
    quiet_hours=st.tuples(st.integers(0, 23), st.integers(0, 23)),
    weekly_cap=st.none() | st.integers(1, 8))


def build(sends: Mapping[tuple[str, int], int], zone: str | None, now: datetime) -> UserState:
    """Sends by days from today (1: a bucket dated tomorrow, as a skewed clock leaves)."""
    return user({(channel, now.date() + timedelta(days=offset)): n
                 for (channel, offset), n in sends.items()}, zone, now)


def applicable(policy: ContactPolicy, channel: str) -> list[tuple[str, int, int]]:
    """(scope, days, max) of every cap on `channel`, the learned weekly one included."""
    caps = [(channel, days, limit) for days, limit in policy.caps.get(channel, ())]
    caps += [(ALL_CHANNELS, days, limit) for days, limit in policy.caps.get(ALL_CHANNELS, ())]
    if policy.weekly_cap is not None:
        caps.append((ALL_CHANNELS, 7, policy.weekly_cap))
    return caps


def has_room(policy: ContactPolicy, state: UserState, channel: str, at: datetime) -> bool:
    return all(state.sent_within(at, days, scope) < limit
               for scope, days, limit in applicable(policy, channel))


def open_at(policy: ContactPolicy, state: UserState, channels: Sequence[str],
            at: datetime) -> bool:
    """Whether one of `channels` may be used at `at`: with room under its caps, and outside
    the quiet hours if it interrupts."""
    quiet = policy.is_quiet(at.astimezone(ZoneInfo(state.profile.timezone or "UTC")).hour)
    return any(has_room(policy, state, c, at) and not (quiet and c in INTERRUPTING)
               for c in channels)


@settings(max_examples=150, deadline=None)
@given(policy=policy_strategy, sends=sends_strategy, zone=st.sampled_from(ZONES),
       now=now_strategy,
       channels=st.lists(st.sampled_from((*CHANNELS, *SEEN_AT_A_VISIT)), max_size=4))
def test_budget_properties(policy: ContactPolicy, sends: Mapping[tuple[str, int], int],
                           zone: str | None, now: datetime, channels: list[str]) -> None:
    state = build(sends, zone, now)
    budget = policy.budget(state, now, channels)
    for channel in channels:
        assert (channel in budget.allowed_channels) != (channel in budget.blocked)
        assert (channel in budget.allowed_channels) == has_room(policy, state, channel, now)
    assert budget.sent == state.sent_within(now, budget.window_days)
    if budget.next_allowed_at is None:
        assert not channels or open_at(policy, state, channels, now)
    else:
        moment = budget.next_allowed_at
        assert moment > now and moment.tzinfo is UTC
        assert open_at(policy, state, channels, moment)
        assert not open_at(policy, state, channels, moment - timedelta(seconds=1))


@settings(max_examples=150, deadline=None)
@given(policy=policy_strategy, sends=sends_strategy, zone=st.sampled_from(ZONES),
       now=now_strategy, channel=st.sampled_from(CHANNELS), hour=st.integers(0, 23))
def test_next_send_properties(policy: ContactPolicy, sends: Mapping[tuple[str, int], int],
                              zone: str | None, now: datetime, channel: str,
                              hour: int) -> None:
    state = build(sends, zone, now)
    moment = policy.next_send_at(state, channel, hour, now)
    wanted = policy.quiet_hours[1] if policy.is_quiet(hour) else hour
    at_local = moment.astimezone(ZoneInfo(zone or "UTC"))
    assert moment >= now
    skipped = moment > now and (moment - timedelta(seconds=1)).astimezone(
        ZoneInfo(zone or "UTC")).utcoffset() != at_local.utcoffset()  # a clock change
    assert at_local.hour == wanted or skipped  # (the hour wanted skipped: when it would be)
    assert not policy.is_quiet(at_local.hour)  # they interrupt
    assert has_room(policy, state, channel, moment)
    just_before = (moment - timedelta(seconds=1)).astimezone(ZoneInfo(zone or "UTC"))
    clock_changed = just_before.utcoffset() != at_local.utcoffset()  # an hour entered mid-way
    if moment > now and zone != "Australia/Lord_Howe":  # its DST moves clocks by 30 minutes
        assert at_local.minute == 0 or moment.time() == datetime.min.time() or clock_changed
    earlier = moment - timedelta(hours=1)  # and none of the hours before it would have done
    while earlier >= now and earlier > moment - timedelta(hours=49):
        assert (earlier.astimezone(ZoneInfo(zone or "UTC")).hour != wanted
                or not has_room(policy, state, channel, earlier))
        earlier -= timedelta(hours=1)


@settings(max_examples=150, deadline=None)
@given(policy=policy_strategy, sends=sends_strategy, zone=st.sampled_from(ZONES),
       now=now_strategy, hours=st.dictionaries(st.sampled_from(CHANNELS), st.integers(0, 23)))
def test_send_times_of_many_channels_are_each_channels_own(
        policy: ContactPolicy, sends: Mapping[tuple[str, int], int], zone: str | None,
        now: datetime, hours: dict[str, int]) -> None:
    """Channels asked together (which share the search for their hour) get what each
    would get alone."""
    state = build(sends, zone, now)
    together = policy.send_times(state, hours, now)
    assert together == {channel: policy.send_times(state, {channel: hour}, now)[channel]
                        for channel, hour in hours.items()}


def test_quiet_hours_hold_back_only_messages_that_interrupt() -> None:
    policy = ContactPolicy({}, quiet_hours=(21, 8))
    assert [policy.send_hour(c, 23) for c in ("email", "push", "sms", "whatsapp")] == [8] * 4
    assert policy.send_hour("in_app", 23) == policy.send_hour("web", 23) == 23
    assert policy.send_hour("email", 12) == 12
