"""The Redis backend of the feature store (keys in keys.py, records in layout.py).

Reads are one MULTI transaction: the current-version pointer, the user's packed record
and the user's live hash. The pointer is cached; if the transaction shows it moved, the
read is repeated once on the new version, so a reader never mixes two versions.

A live event is applied optimistically: read the state, apply the feature definitions in
Python, then a Lua script writes the changed fields only if the version is still current
and no other event touched the user in between (the `_seq` field); otherwise it retries.
The same script records the event id (idempotency) and appends the event to the stream.

A publish writes the new version's profile hashes with pipelines, replays the logged live
events after its cut-off into the new version, flips the pointer, replays what arrived
meanwhile, and deletes all versions but the new one and the one before.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import redis

from features.event import Event
from features.pipeline import BatchFeatures
from features.state import UserState
from features.store import keys
from features.store.base import Applied, PublishReport
from features.store.layout import layout
from features.store.live import SEQUENCE, changed_fields, overlay
from features.store.meta import VersionMeta
from features.store.pack import pack, to_blobs
from features.store.unpack import unpack
from nbo.errors import DataContractError, NboError, StoreContentionError
from nbo.redis_plan import Command, LuaScript, Plan, Step, run
from nbo.redis_server import connect
from nbo.settings import Settings, get_settings

logger = logging.getLogger(__name__)
USERS_PER_BUCKET = 128  # within the embedded server's hash-max-ziplist-entries (512)
PIPELINE_COMMANDS = 64
STREAM_PAGE = 1_000

# KEYS: pointer, live hash, seen set, stream.
# ARGV: version ('' = do not check the pointer), expected sequence, event id ('' = none),
#       ttl seconds, stream cap, field count n, n field/value pairs, stream entry ('' = none).
APPLY = LuaScript("""
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -2 end
if ARGV[3] ~= '' and redis.call('SISMEMBER', KEYS[3], ARGV[3]) == 1 then return 0 end
local sequence = tonumber(redis.call('HGET', KEYS[2], '_seq') or '0')
if sequence ~= tonumber(ARGV[2]) then return -1 end
local n = tonumber(ARGV[6])
if n > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, 7, 6 + 2 * n)) end
redis.call('HSET', KEYS[2], '_seq', sequence + 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
local entry = ARGV[7 + 2 * n]
if entry ~= '' then redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'e', entry) end
return 1
""")
_STALE_VERSION, _CONCURRENT_UPDATE = -2, -1


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


@dataclass
class Extra:
    """Hashes to read along with users' features: their keys, then their HGETALL replies.

    A user may have a hash that can hold their answer: `answer_at[user]` is its position in
    `keys` (None: none). When `is_answer` finds it holds one, the caller needs none of that
    user's features: they are not unpacked (the user's state comes back None)."""

    keys: Sequence[str]
    answer_at: Sequence[int | None] = ()
    is_answer: Callable[[dict[bytes, bytes]], bool] = bool
    replies: list[dict[bytes, bytes]] = field(default_factory=list)

    def answered(self, user: int) -> bool:
        """Whether the user's answer was found (after the replies are read)."""
        at = self.answer_at[user] if self.answer_at else None
        return at is not None and self.is_answer(self.replies[at])


def new_version_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


class MissingVersionMeta(NboError):
    """The current feature version's metadata is gone from Redis (evicted, or lost): its
    records cannot be read. Decisions read users as unknown meanwhile; events wait."""

    http_status = 503
    retry_after_s = 60.0


class RedisFeatureStore:
    def __init__(self, client: redis.Redis, live_ttl_s: int = 30 * 86_400,
                 stream_maxlen: int = 1_000_000, retries: int = 20) -> None:
        self._client = client
        self._live_ttl_s = live_ttl_s
        self._stream_maxlen = stream_maxlen
        self._retries = retries
        self._metas: dict[str, VersionMeta] = {}
        self._version: str | None = None  # the pointer as last seen
        self._missing: set[str] = set()  # versions found without metadata (logged once)

    # -- versions ---------------------------------------------------------------------

    def _meta(self, version: str) -> Plan[VersionMeta]:
        meta = self._metas.get(version)
        if meta is None:
            raw = (yield Step.one("GET", keys.meta(version)))[0]
            if raw is None:
                raise MissingVersionMeta(
                    f"feature version {version} has no metadata in Redis (evicted or lost: "
                    "give Redis maxmemory-policy noeviction), so no features can be read "
                    "or updated: run `nbo publish` to publish them again")
            meta = self._metas[version] = VersionMeta.from_json(raw)
        return meta

    def _current(self) -> Plan[VersionMeta | None]:
        pointer = (yield Step.one("GET", keys.CURRENT))[0]
        self._version = None if pointer is None else _text(pointer)
        return None if self._version is None else (yield from self._meta(self._version))

    def current(self) -> VersionMeta | None:
        return run(self._client, self._current())

    def versions(self) -> list[str]:
        versions: Any = self._client.zrange(keys.VERSIONS, 0, -1)
        return [_text(version) for version in versions]

    def _start_empty_version(self) -> Plan[VersionMeta]:
        """The version live events land in before any publish (nothing batch behind it)."""
        meta = VersionMeta(version=new_version_id(), anchor=datetime.now(UTC), buckets=1,
                           users=0, layout=layout())
        yield Step.one("SET", keys.meta(meta.version), meta.to_json())
        if (yield Step.one("SET", keys.CURRENT, meta.version, "NX"))[0]:
            yield Step.one("ZADD", keys.VERSIONS, time.time(), meta.version)
        else:
            yield Step.one("DEL", keys.meta(meta.version))
        current = yield from self._current()
        assert current is not None
        return current

    # -- reads --------------------------------------------------------------------------

    def _fetch(self, meta: VersionMeta, user_ids: Sequence[str], check_current: bool,
               extra: Extra | None = None) -> Plan[
            tuple[str | None, list[tuple[UserState | None, int]]]]:
        """One transaction: the pointer, then each user's record and live hash, then the
        hashes `extra` names (their replies are put into `extra.replies`)."""
        commands: list[Command] = [("GET", keys.CURRENT)]
        for user_id in user_ids:
            bucket = keys.bucket_of(user_id, meta.buckets)
            commands.append(("HGET", keys.profiles(meta.version, bucket), user_id))
            commands.append(("HGETALL", keys.live(meta.version, bucket, user_id)))
        commands.extend(("HGETALL", key) for key in (extra.keys if extra else ()))
        replies = yield Step(commands, transaction=True)
        pointer = None if replies[0] is None else _text(replies[0])
        if check_current and pointer != meta.version:
            return pointer, []
        if extra:
            extra.replies = replies[1 + 2 * len(user_ids):]
        states: list[tuple[UserState | None, int]] = []
        for position, user_id in enumerate(user_ids):
            if extra and extra.answered(position):
                states.append((None, 0))
                continue
            blob, fields = replies[1 + 2 * position], replies[2 + 2 * position]
            live = {name.decode(): value.decode() for name, value in fields.items()}
            sequence = int(live.pop(SEQUENCE, 0))
            if blob is None and not live:
                states.append((None, 0))
                continue
            base = (unpack(blob, user_id, meta) if blob is not None
                    else UserState(user_id, meta.anchor))
            states.append((overlay(base, live), sequence))
        return pointer, states

    def _current_states(self, user_ids: Sequence[str], extra: Extra | None = None) -> Plan[
            tuple[VersionMeta | None, list[tuple[UserState | None, int]]]]:
        for _ in range(3):
            last_seen = self._version  # None: the pointer is read now
            try:
                meta = yield from (self._current() if last_seen is None
                                   else self._meta(last_seen))
            except MissingVersionMeta as missing:  # read as no version until a publish
                version, self._version, meta = self._version, None, None
                if last_seen is not None:
                    continue  # the pointer may have moved on since: follow it
                if version not in self._missing:
                    self._missing.add(str(version))
                    logger.warning("%s", missing)
            if meta is None:
                if extra:
                    extra.replies = yield Step([("HGETALL", key) for key in extra.keys])
                return None, [(None, 0)] * len(user_ids)
            pointer, states = yield from self._fetch(meta, user_ids, check_current=True,
                                                     extra=extra)
            if pointer == meta.version:
                return meta, states
            self._version = pointer
        raise StoreContentionError("the feature version kept changing during a read")

    def read(self, user_id: str) -> UserState | None:
        return self.read_many([user_id])[0]

    def read_many(self, user_ids: Sequence[str]) -> list[UserState | None]:
        return [state for state, _ in run(self._client, self._current_states(user_ids))[1]]

    def read_plan(self, user_ids: Sequence[str], extra: Extra) -> Plan[
            tuple[VersionMeta | None, list[UserState | None]]]:
        """`read_many` plus other hashes (a decision's per-user counters) in the same round
        trip; also returns the version read."""
        meta, states = yield from self._current_states(user_ids, extra)
        return meta, [state for state, _ in states]

    # -- live events ----------------------------------------------------------------------

    def apply(self, event: Event) -> Applied:
        return run(self._client, self.apply_plan(event))

    def apply_plan(self, event: Event) -> Plan[Applied]:
        """`apply` as a plan (nbo.redis_plan), for the API's event loop."""
        return self._apply(event, replay_into=None)

    def _apply(self, event: Event, replay_into: VersionMeta | None,
               log: bool = True) -> Plan[Applied]:
        """Apply to the current version (checked by the script), or replay into a version."""
        for attempt in range(self._retries):
            if attempt:  # let the other writer finish
                yield Step(pause_s=random.uniform(0, 0.0005 * attempt))
            if replay_into is None:
                current, states = yield from self._current_states([event.user_id])
                if current is None:
                    current = yield from self._start_empty_version()
                    states = (yield from self._fetch(current, [event.user_id],
                                                     check_current=False))[1]
                meta = current
            else:
                meta, states = replay_into, (yield from self._fetch(
                    replay_into, [event.user_id], False))[1]
            state, sequence = states[0]
            before = state or UserState(event.user_id, meta.anchor)
            fields = changed_fields(before, before.apply(event, meta.bands))
            bucket = keys.bucket_of(event.user_id, meta.buckets)
            outcome = yield from APPLY.call(
                keys=[keys.CURRENT, keys.live(meta.version, bucket, event.user_id),
                      keys.seen(meta.version, bucket, event.user_id), keys.EVENTS],
                args=["" if replay_into is not None else meta.version, sequence,
                      event.event_id or "", self._live_ttl_s, self._stream_maxlen,
                      len(fields), *(x for pair in fields.items() for x in pair),
                      event.to_json() if log else ""])
            if outcome == 1:
                return Applied.APPLIED
            if outcome == 0:
                return Applied.DUPLICATE
            if outcome == _STALE_VERSION:
                self._version = None
        raise StoreContentionError(
            f"could not apply an event for user {event.user_id!r}: {self._retries} "
            "concurrent updates in a row; retry later")

    def logged_events(self, after: str = "-", count: int = STREAM_PAGE,
                      until: str = "+") -> list[tuple[str, Event]]:
        """Up to `count` logged events after the entry id `after`, up to `until` included
        (Redis compares the ids: as text, "…-9" would sort after "…-10")."""
        start = after if after == "-" else f"({after}"
        entries: Any = self._client.xrange(keys.EVENTS, start, until, count=count)
        return [(_text(entry_id), Event.from_json(fields[b"e"]))
                for entry_id, fields in entries]

    def _replay(self, meta: VersionMeta, after: str, until: str,
                into: VersionMeta | None) -> tuple[str, int]:
        """Apply logged events after `after` (up to `until`) that the batch does not cover;
        the ids of those it covers are marked seen in `meta`'s version, so one sent again
        after the publish is still a duplicate."""
        replayed = 0
        while True:
            page = self.logged_events(after, until=until)
            covered: list[Event] = []
            for entry_id, event in page:
                after = entry_id
                if event.ts > meta.anchor:
                    run(self._client, self._apply(event, replay_into=into, log=False))
                    replayed += 1
                elif event.event_id is not None:
                    covered.append(event)
            self._mark_seen(meta, covered)
            if len(page) < STREAM_PAGE:
                return after, replayed

    def _mark_seen(self, meta: VersionMeta, events: Sequence[Event]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            key = keys.seen(meta.version, keys.bucket_of(event.user_id, meta.buckets),
                            event.user_id)
            pipe.sadd(key, event.event_id or "")
            pipe.expire(key, self._live_ttl_s)
        pipe.execute()

    # -- publish --------------------------------------------------------------------------

    def publish(self, batch: BatchFeatures, version: str | None = None) -> PublishReport:
        version = version or new_version_id()
        buckets = max(1, math.ceil(batch.users.height / USERS_PER_BUCKET))
        return self.publish_packed(*pack(batch, version, buckets))

    def publish_packed(self, user_ids: list[str], records: np.ndarray,
                       meta: VersionMeta) -> PublishReport:
        """Publish records already packed by `layout.pack` (what `publish` does next)."""
        started = time.perf_counter()
        if ":" in meta.version:  # keys.py separates a key's parts with it
            raise DataContractError(f"feature version {meta.version!r}: a name without ':'")
        if self._client.exists(keys.meta(meta.version)):
            raise NboError(f"feature version {meta.version} already exists; choose another")
        self._write_profiles(meta, user_ids, to_blobs(records))
        self._client.set(keys.meta(meta.version), meta.to_json())
        after, replayed = self._replay(meta, "-", "+", into=meta)
        flip = self._client.pipeline(transaction=True)
        flip.set(keys.CURRENT, meta.version)
        flip.zadd(keys.VERSIONS, {meta.version: time.time()})
        flip.xrevrange(keys.EVENTS, count=1)
        last = flip.execute()[2]
        self._version = meta.version
        if last:
            replayed += self._replay(meta, after, _text(last[0][0]), into=None)[1]
        removed = self._remove_old_versions(keep=2)
        return PublishReport(meta.version, len(user_ids), meta.buckets,
                             time.perf_counter() - started, replayed, removed)

    def _write_profiles(self, meta: VersionMeta, user_ids: list[str],
                        blobs: list[bytes]) -> None:
        buckets = np.fromiter((keys.bucket_of(u, meta.buckets) for u in user_ids),
                              dtype=np.int64, count=len(user_ids))
        order = np.argsort(buckets, kind="stable")
        edges = np.searchsorted(buckets[order], np.arange(meta.buckets + 1))
        pipe = self._client.pipeline(transaction=False)
        for bucket in range(meta.buckets):
            members = order[edges[bucket]:edges[bucket + 1]]
            if not len(members):
                continue
            pipe.hset(keys.profiles(meta.version, bucket),
                      mapping={user_ids[row]: blobs[row] for row in members.tolist()})
            if len(pipe) >= PIPELINE_COMMANDS:
                pipe.execute()
        pipe.execute()

    def _remove_old_versions(self, keep: int) -> tuple[str, ...]:
        """Every version but the `keep` newest, and among those (the newest, just
        published, aside) any whose metadata is gone, which no one can read."""
        versions = self.versions()
        old = [*versions[:-keep], *(version for version in versions[-keep:-1]
                                    if not self._client.exists(keys.meta(version)))]
        for version in old:
            try:
                profiles = [keys.profiles(version, bucket)
                            for bucket in range(run(self._client, self._meta(version)).buckets)]
            except MissingVersionMeta:  # its buckets unknown: found by their names
                profiles = [key for key in self._client.scan_iter(
                    match=keys.profiles_pattern(version), count=1000)
                    if keys.of_version(key, version)]
            pipe = self._client.pipeline(transaction=False)
            for profile in profiles:
                pipe.unlink(profile)
            for key in self._client.scan_iter(match=keys.version_pattern(version), count=1000):
                if keys.of_version(key, version):
                    pipe.unlink(key)
            pipe.unlink(keys.meta(version))
            pipe.zrem(keys.VERSIONS, version)
            pipe.execute()
            self._metas.pop(version, None)
        return tuple(old)


def open_store(settings: Settings | None = None) -> RedisFeatureStore:
    """The store on the configured Redis (the embedded one unless NBO_REDIS_URL is set)."""
    settings = settings or get_settings()
    return RedisFeatureStore(connect(settings), live_ttl_s=int(settings.live_ttl_days * 86_400),
                             stream_maxlen=settings.event_log_max)
