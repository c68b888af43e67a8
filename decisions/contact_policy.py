"""Whether and when a user may be contacted: rolling frequency caps, quiet hours, weekly cap.

Caps count whole UTC days exactly like `features.contacts.sent_within` (the `days` UTC days
ending today), so the budget the API reports is the one the store counts. Quiet hours are
read on the user's own wall clock, with real zone arithmetic so DST changes are handled.
Everything here is plain Python over a few dozen daily buckets: it runs on every request.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property
from itertools import accumulate
from typing import Literal

from features.contacts import ALL_CHANNELS
from features.local_time import user_zone
from features.state import UserState

WEEK = 7
# messages sent at a chosen hour, which quiet hours hold back; in-app and web are seen at
# the user's next visit
INTERRUPTING = frozenset({"email", "push", "sms", "whatsapp"})
_MAX_STEPS = 100  # any local hour occurs within 48 h, even when a DST change skips one
_CLOCK_SLACK = 2  # hours: the largest clock change (Antarctica/Troll), so a jump stays short
OUTSIDE_QUIET: Literal["outside quiet"] = "outside quiet"
ANY_HOUR: Literal["any"] = "any"


@dataclass(frozen=True)
class _AtHour:
    """One local hour wanted, for a message that interrupts (quiet hours hold it back) or
    one seen at a visit."""

    hour: int
    interrupts: bool


Wanted = _AtHour | Literal["outside quiet", "any"]
"""The local hours a search accepts: one of them, any outside the quiet hours (a message
that interrupts), or any at all (one seen at a visit)."""


@dataclass(frozen=True)
class ContactBudget:
    window_days: int  # window of the reported global figure
    sent: int  # messages on any channel in that window
    cap: int | None  # the binding global cap in that window (None: no global cap)
    remaining: int | None
    allowed_channels: tuple[str, ...]  # asked channels with room under every cap that applies
    blocked: dict[str, str]  # channel -> why, e.g. "push: 4 of 4 messages in 7 days"
    next_allowed_at: datetime | None  # UTC; None when a channel may be used now: one with
    # room under the caps, and outside the quiet hours if it interrupts (INTERRUPTING)


class _Daily:
    """One channel's sends per UTC day, its days as sorted day numbers (`date.toordinal`)
    with running totals: a window sum is two bisections over plain integers, so finding
    when room returns stays cheap on every request."""

    def __init__(self, buckets: Mapping[int, int]) -> None:  # day number -> sends
        self.days = sorted(day for day, n in buckets.items() if n)
        self.totals = [0, *accumulate(buckets[day] for day in self.days)]

    def within(self, day: int, days: int) -> int:
        """Messages in the `days` UTC days ending on day number `day`, and any dated after
        it (a sender's clock running ahead: they were sent already), as `sent_within`
        counts them."""
        return self.totals[-1] - self.totals[bisect_left(self.days, day - days + 1)]


_NONE_SENT = _Daily({})
Counts = Mapping[str, _Daily]


@dataclass(frozen=True)
class _Cap:
    """One rolling cap: at most `limit` messages on `scope` ("*" = all) in `days` UTC days."""

    scope: str
    days: int
    limit: int
    learned: bool = False

    def sent(self, counts: Counts, day: int) -> int:
        """Messages this cap counts on the UTC day numbered `day` (no new sends assumed)."""
        return counts.get(self.scope, _NONE_SENT).within(day, self.days)

    def room_day(self, counts: Counts, first: int) -> int:
        """The first UTC day number >= `first` with room under this cap, if nothing more is
        sent: once enough of the oldest sends have left the window (a day's sends count
        until `days` days after it), so that fewer than `limit` are left."""
        daily = counts.get(self.scope, _NONE_SENT)
        if daily.within(first, self.days) < self.limit:
            return first
        leaving = bisect_right(daily.totals, daily.totals[-1] - self.limit)  # days' worth
        return daily.days[leaving - 1] + self.days

    def reason(self, sent: int) -> str:
        who = "all channels" if self.scope == ALL_CHANNELS else self.scope
        unit = "day" if self.days == 1 else "days"
        text = f"{who}: {sent} of {self.limit} messages in {self.days} {unit}"
        return f"{text} (learned weekly cap)" if self.learned else text


@dataclass(frozen=True)
class ContactPolicy:
    caps: Mapping[str, Sequence[tuple[int, int]]]  # channel or "*" -> [(days, max messages)]
    quiet_hours: tuple[int, int] = (21, 8)  # local [start, end), may wrap; start == end: none
    weekly_cap: int | None = None  # learned cap on all channels over 7 days

    def __post_init__(self) -> None:
        for channel, caps in self.caps.items():
            for days, limit in caps:
                if days < 1 or limit < 1:
                    raise ValueError(
                        f"contact cap {channel!r} ({days}, {limit}): days and max messages "
                        "must be at least 1; leave a channel out of the allowed channels "
                        "to never use it")
        if not all(0 <= hour <= 23 for hour in self.quiet_hours):
            raise ValueError(f"quiet hours {self.quiet_hours}: both must be hours 0..23")
        if self.weekly_cap is not None and self.weekly_cap < 1:
            raise ValueError(f"weekly cap {self.weekly_cap}: must be at least 1 (or None)")

    def budget(self, state: UserState, now: datetime, channels: Sequence[str]) -> ContactBudget:
        """The user's contact budget at `now`, and which of `channels` may be used."""
        now = _utc(now)
        today = now.toordinal()
        counts = _daily_counts(state)
        global_caps = self._global_caps
        window = (WEEK if any(c.days == WEEK for c in global_caps)
                  else max((c.days for c in global_caps), default=WEEK))
        cap = min((c.limit for c in global_caps if c.days == window), default=None)
        sent = counts.get(ALL_CHANNELS, _NONE_SENT).within(today, window)
        caps_of = {channel: self._caps_of(channel) for channel in channels}
        allowed: list[str] = []
        blocked: dict[str, str] = {}
        for channel, caps in caps_of.items():
            full = [(c, n) for c in caps if (n := c.sent(counts, today)) >= c.limit]
            if not full:
                allowed.append(channel)
                continue
            # name the cap that holds the channel back longest (the channel's own on ties)
            last, n = max(full, key=lambda cap_sent: cap_sent[0].room_day(counts, today))
            blocked[channel] = last.reason(n)
        zone = user_zone(state.profile.timezone)
        quiet = self.is_quiet(now.astimezone(zone).hour)
        next_allowed_at: datetime | None = None
        if all(channel in INTERRUPTING and quiet for channel in allowed):
            from_now: dict[Wanted, datetime] = {}
            next_allowed_at = min((self._next_open(counts, caps, now, zone, wanted, from_now)
                                   for caps, wanted in _loosest(
                                       (caps, _hours_of(channel))
                                       for channel, caps in caps_of.items())), default=None)
        return ContactBudget(window_days=window, sent=sent, cap=cap,
                             remaining=None if cap is None else max(cap - sent, 0),
                             allowed_channels=tuple(allowed), blocked=blocked,
                             next_allowed_at=next_allowed_at)

    def is_quiet(self, local_hour: int) -> bool:
        """Whether nothing may be sent at this local hour of the day."""
        start, end = self.quiet_hours
        if start == end:
            return False
        if start < end:
            return start <= local_hour < end
        return local_hour >= start or local_hour < end

    def send_hour(self, channel: str, local_hour: int) -> int:
        """The local hour a message on `channel` meant for `local_hour` goes out: that
        hour, or on a channel that interrupts (INTERRUPTING) the first hour after the quiet
        hours when it is quiet."""
        interrupts = channel in INTERRUPTING and self.is_quiet(_hour(local_hour))
        return self.quiet_hours[1] if interrupts else local_hour

    def next_send_at(self, state: UserState, channel: str, local_hour: int,
                     now: datetime) -> datetime:
        """The next UTC instant >= `now` at the start of `send_hour(channel, local_hour)`
        in the user's zone (or `now` itself inside that hour) when `channel` has room under
        every cap."""
        return self.send_times(state, {channel: self.send_hour(channel, local_hour)},
                               now)[channel]

    def send_times(self, state: UserState, local_hours: Mapping[str, int],
                   now: datetime) -> dict[str, datetime]:
        """For each channel of `local_hours` (channel -> local hour), the next UTC instant
        >= `now` at the start of that hour in the user's zone (or `now` inside it) when the
        channel has room under every cap. The hours are taken as given: `send_hour` moves
        a message that would interrupt out of the quiet hours."""
        counts, now, zone = _daily_counts(state), _utc(now), user_zone(state.profile.timezone)
        from_now: dict[Wanted, datetime] = {}
        found = {}
        for channel, local_hour in local_hours.items():
            found[channel] = self._next_open(
                counts, self._caps_of(channel), now, zone,
                _AtHour(_hour(local_hour), channel in INTERRUPTING), from_now)
        return found

    @cached_property
    def _global_caps(self) -> tuple[_Cap, ...]:
        """The "*" caps, the 7-day one lowered to the learned weekly cap where that is tighter."""
        caps = tuple(_Cap(ALL_CHANNELS, days, limit)
                     for days, limit in self.caps.get(ALL_CHANNELS, ()))
        if self.weekly_cap is None:
            return caps
        configured = min((c.limit for c in caps if c.days == WEEK), default=None)
        if configured is not None and configured <= self.weekly_cap:
            return caps
        return (*(c for c in caps if c.days != WEEK),
                _Cap(ALL_CHANNELS, WEEK, self.weekly_cap, learned=True))

    def _caps_of(self, channel: str) -> tuple[_Cap, ...]:
        """The caps a send on `channel` counts against: its own, then the global ones."""
        return self._channel_caps.get(channel, self._global_caps)

    @cached_property
    def _channel_caps(self) -> dict[str, tuple[_Cap, ...]]:
        return {channel: (*(_Cap(channel, days, limit) for days, limit in caps),
                          *self._global_caps)
                for channel, caps in self.caps.items() if channel != ALL_CHANNELS}

    def _next_open(self, counts: Counts, caps: Sequence[_Cap], now: datetime, zone: tzinfo,
                   wanted: Wanted, from_now: dict[Wanted, datetime]) -> datetime:
        """The first instant >= `now` with room under `caps` whose local hour is `wanted`.
        `from_now` keeps `_next_hour` from `now` by the hours wanted: one search for all the
        channels or caps of one user."""
        day = _room_day(counts, caps, now.toordinal())  # room from then on: sends only leave
        start = now if day == now.toordinal() else _midnight(day)
        moment = from_now.get(wanted) if start == now else None
        if moment is None:
            moment = self._next_hour(start, zone, wanted)
            if start == now:
                from_now[wanted] = moment
        return moment

    def _next_hour(self, start: datetime, zone: tzinfo, wanted: Wanted) -> datetime:
        """`start` if its local hour is `wanted`, else the start of the first later local
        hour that is."""
        local = start.astimezone(zone)
        if self._fits(local.hour, wanted):
            return start
        # the wall clock's next hh:00 that fits, unless the clock changes on the way there:
        # the same offset at both ends means none (no zone changes twice within a day)
        target = wanted.hour if isinstance(wanted, _AtHour) else self.quiet_hours[1]
        moment = start + timedelta(hours=(target - local.hour) % 24, minutes=-local.minute,
                                   seconds=-local.second, microseconds=-local.microsecond)
        if moment.astimezone(zone).utcoffset() == local.utcoffset():
            return moment
        return self._hour_by_hour(start, zone, wanted)

    def _hour_by_hour(self, start: datetime, zone: tzinfo, wanted: Wanted) -> datetime:
        """`_next_hour` across a clock change, which may skip or repeat hours."""
        moment = start
        for _ in range(_MAX_STEPS):
            local = moment.astimezone(zone)
            if self._fits(local.hour, wanted):
                return moment
            # to a local hh:00 up to `_CLOCK_SLACK` hours before the hour that fits (a clock
            # change on the way cannot make that overshoot), then hour by hour; a change
            # leaves other minutes on the clock, which the next step rounds off
            target = wanted.hour if isinstance(wanted, _AtHour) else self.quiet_hours[1]
            skipped = max((target - local.hour) % 24 - 1 - _CLOCK_SLACK, 0)
            step = moment + timedelta(hours=skipped, minutes=60 - local.minute,
                                      seconds=-local.second, microseconds=-local.microsecond)
            if step.astimezone(zone).utcoffset() != local.utcoffset():
                # the clock changes on the way: an hour it jumps into mid-way (02:45 ->
                # 03:45) starts at the change, which the next hh:00 would miss
                change = _clock_change(moment, step, zone)
                if (self._fits(change.astimezone(zone).hour, wanted)
                        or self._jumped_over(change, zone, wanted)):
                    return change
            moment = step
        raise AssertionError(f"no local hour {wanted} within {_MAX_STEPS} hours of {start}")

    def _fits(self, local_hour: int, wanted: Wanted) -> bool:
        """Whether a message may go out at this local hour, as `wanted`."""
        if wanted == ANY_HOUR:
            return True
        if wanted == OUTSIDE_QUIET:
            return not self.is_quiet(local_hour)
        return isinstance(wanted, _AtHour) and local_hour == wanted.hour

    def _jumped_over(self, change: datetime, zone: tzinfo, wanted: Wanted) -> bool:
        """Whether the clock change at `change` moves the clock forward over the local hour
        `wanted` (02:00 on a spring night that goes from 01:59:59 to 03:00): the change is
        then when it would have been, unless the message interrupts and the hour the clock
        jumps to is a quiet one."""
        if not isinstance(wanted, _AtHour):
            return False
        before, after = (change - timedelta(seconds=1)).astimezone(zone), change.astimezone(zone)
        forward = (after.utcoffset() or timedelta()) > (before.utcoffset() or timedelta())
        skipped = 0 < (wanted.hour - before.hour) % 24 <= (after.hour - before.hour) % 24
        return (forward and skipped
                and not (wanted.interrupts and self.is_quiet(after.hour)))


def _clock_change(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The first whole second in (before, after] with `after`'s UTC offset in `zone` (the
    two ends' offsets differ; zones change at most once within hours)."""
    offset = after.astimezone(zone).utcoffset()
    low, high = before, after  # low has the old offset, high the new one
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    whole = high.replace(microsecond=0)
    return whole if whole > low and whole.astimezone(zone).utcoffset() == offset else high


def _room_day(counts: Counts, caps: Sequence[_Cap], first: int) -> int:
    """The first UTC day number >= `first` with room under every cap, if nothing more is sent.

    Each cap's own first day with room is a lower bound; moving to the latest of them and
    asking again converges on the first day all of them have room.
    """
    day = first
    while True:
        later = max((cap.room_day(counts, day) for cap in caps), default=day)
        if later == day:
            return day
        day = later


def _hours_of(channel: str) -> Wanted:
    """The hours a message on `channel` may go out: outside the quiet hours if it
    interrupts, else any (it is seen at the user's next visit)."""
    return OUTSIDE_QUIET if channel in INTERRUPTING else ANY_HOUR


def _loosest(searches: Iterable[tuple[tuple[_Cap, ...], Wanted]],
             ) -> list[tuple[tuple[_Cap, ...], Wanted]]:
    """The searches (caps, hours wanted) no other is looser than: room under a set of caps
    means room under each of its subsets, and any hour takes in those outside the quiet
    hours, so only these can find a moment first."""
    distinct = {(frozenset(caps), wanted): caps for caps, wanted in searches}

    def looser(other: tuple[frozenset[_Cap], Wanted], than: tuple[frozenset[_Cap], Wanted],
               ) -> bool:
        return (other != than and other[0] <= than[0]
                and other[1] in (than[1], ANY_HOUR))

    return [(caps, key[1]) for key, caps in distinct.items()
            if not any(looser(other, key) for other in distinct)]


def _daily_counts(state: UserState) -> dict[str, _Daily]:
    """channel -> its daily sends, from the state's (channel, UTC day) buckets."""
    buckets: dict[str, dict[int, int]] = {}
    for (channel, day), n in state.contacts.items():
        buckets.setdefault(channel, {})[day.toordinal()] = n
    return {channel: _Daily(days) for channel, days in buckets.items()}


def _midnight(day: int) -> datetime:
    """The start of the UTC day numbered `day`."""
    return datetime.combine(date.fromordinal(day), time(), tzinfo=UTC)


def _hour(local_hour: int) -> int:
    if not 0 <= local_hour <= 23:
        raise ValueError(f"local hour {local_hour}: must be 0..23")
    return local_hour


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{now}: pass a time-zone aware instant (UTC)")
    return now.astimezone(UTC)
