"""Configuration from `NBO_`-prefixed environment variables, built once per process."""

import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url

from features.contacts import ALL_CHANNELS, CONTACT_DAYS
from features.contract.schema import Channel, Journey

_CHANNELS = tuple(channel.value for channel in Channel)
_JOURNEYS = tuple(journey.value for journey in Journey)


class Settings(BaseSettings):
    """Every knob nbo reads from its environment; see the README for the list."""

    # Settings hold secrets (API keys, a Redis URL's password): errors never echo inputs.
    model_config = SettingsConfigDict(env_prefix="NBO_", extra="ignore",
                                      hide_input_in_errors=True)

    redis_url: str | None = Field(
        default=None,
        description="Redis server to use; unset means an embedded server under data_dir.",
    )
    data_dir: Path = Field(
        default=Path(".nbo"),
        description="Where the embedded Redis server keeps its append-only file.",
    )
    redis_start_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    live_ttl_days: float = Field(
        default=30.0, ge=1 / 86_400, le=36_500,
        description="How long a user's live feature changes outlive their last event (at "
        "least a second, at most 100 years: Redis keeps them for a whole number of seconds).",
    )
    event_log_max: int = Field(
        default=1_000_000, ge=1000,
        description="Live events kept in the Redis stream for export (older ones trimmed).",
    )

    # -- the API ---------------------------------------------------------------------------
    models_dir: Path = Field(default=Path(".nbo/models"),
                             description="The model registry the API serves from.")
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='JSON {"key": "role"}; roles decide, ingest, admin (checked by '
        "api/auth.py's ApiKeys). Empty: open API.")
    max_request_bytes: int = Field(default=2_000_000, ge=1024)
    max_batch_users: int = Field(default=1000, ge=1)
    max_events_per_request: int = Field(default=1000, ge=1)
    max_in_flight: int = Field(
        default=32, ge=0,
        description="Requests a worker serves at once (health checks and metrics aside); "
        "past it, 503 with Retry-After at once instead of queueing (api/shedding.py). "
        "An admitted request waits at most about this many decisions' time. 0: no limit.")
    decision_fast_path: bool = Field(
        default=True,
        description="Answer valid, authorized single decisions and blocks beneath FastAPI's "
        "routing and dependency solving (api/fast_path.py): the same answers for a sixth to a "
        "quarter less CPU. false: every request through FastAPI's routes.")
    coalesce_decisions: bool = Field(
        default=True,
        description="Decide the single decisions that reach the event loop in the same turn "
        "as one engine call (api/coalescing.py): one Redis read and one log for all of them, "
        "each stage over all of them. Nothing waits for a batch to fill.")
    freeze_startup_objects: bool = Field(
        default=True,
        description="Freeze what the app loaded (models, catalog, modules) out of the garbage "
        "collector's walks while it serves, and make full collections ten times rarer "
        "(api/garbage.py): a full collection otherwise pauses every request in flight for "
        "tens of milliseconds.")
    request_threads: int = Field(
        default=0, ge=0,
        description="Threads per worker for the per-user request path (decisions, blocks, "
        "events, feedback), with blocking Redis calls; 0 runs them on the event loop, whose "
        "own Redis connection leaves it free while Redis answers. Python runs one thread "
        "at a time per process: threads only contend for the interpreter lock "
        "(docs/api.md, Performance). Add workers instead.")
    redis_timeout_s: float = Field(
        default=0.25, gt=0, le=3600,
        description="Socket timeout of the API's Redis calls; past it the answer degrades.")
    redis_retry_after_s: float = Field(
        default=1.0, ge=0, le=3600,
        description="After a Redis failure, how long the API answers degraded before trying.")
    # -- the decision policy ------------------------------------------------------------
    tree_scorer: Literal["compiled", "onnx"] = Field(
        default="compiled", description="How the API scores tree models: compiled to native "
        "code (lleaves; object code cached under NBO_DATA_DIR/compiled) or by onnxruntime.")
    holdout_salt: str = "nbo-holdout"
    holdout_share: float = Field(default=0.05, ge=0, le=1)
    holdout_journey_shares: dict[str, float] = Field(default_factory=dict)
    exploration: Literal["none", "epsilon_greedy", "thompson"] = "epsilon_greedy"
    exploration_epsilon: float = Field(default=0.05, ge=0, le=1)
    exploration_top_k: int = Field(default=5, ge=1, le=1000)
    contact_caps: dict[str, list[tuple[int, int]]] = Field(
        default_factory=lambda: {"*": [(1, 2), (7, 6)], "push": [(1, 1), (7, 4)],
                                 "sms": [(7, 1)], "whatsapp": [(7, 1)]},
        description='Rolling caps: channel ("*" = all) -> [(days, max messages)].')
    quiet_hours: tuple[Annotated[int, Field(ge=0, le=23)], Annotated[int, Field(ge=0, le=23)]] = (
        Field(default=(21, 8), description="Local hours [start, end) when nothing is sent "
              "(start == end: none)."))
    channel_costs: dict[str, float] = Field(
        default_factory=lambda: {"email": 0.002, "push": 0.0, "in_app": 0.0, "web": 0.0,
                                 "sms": 0.05, "whatsapp": 0.03},
        description="Cost per message, in the offers' currency units.")
    open_value: float = Field(default=0.5, ge=0, allow_inf_nan=False,
                              description="What an opened message is worth, currency units.")
    order_margin: float = Field(default=0.3, gt=0, le=1,
                                description="The share of an order's value the business keeps.")
    default_order_value: float = Field(default=40.0, gt=0, allow_inf_nan=False,
                                       description="Order value assumed for users who never "
                                       "bought.")
    offer_memory_days: float = Field(default=90.0, ge=1 / 86_400, le=36_500,
                                     description="How long offers given to a user count "
                                     "toward max_per_user, and decisions can take feedback "
                                     "(at least a second, at most 100 years: Redis keeps "
                                     "them for a whole number of seconds).")
    model_poll_s: float = Field(
        default=5.0, ge=0, le=86_400, description="How often each API worker checks which model "
        "version is promoted and loads it if it is not the one served (0: never; only "
        "POST /v1/models/reload switches, and only the worker answering it).")
    block_ttl_s: int = Field(default=7 * 86_400, ge=1, le=100 * 365 * 86_400,
                             description="How long a campaign's decision for a user (which its "
                             "blocks render) is remembered.")
    decision_log_max: int = Field(default=1_000_000, ge=1000)

    @field_validator("redis_url")
    @classmethod
    def _parsable_redis_url(cls, url: str | None) -> str | None:
        """A URL redis-py can read, checked here so that its own error, which quotes the
        password, is never shown."""
        if url is None:
            return url
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = urlsplit("")
        scheme = parts.scheme.lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("NBO_REDIS_URL must start with redis://, rediss:// or unix://")
        try:
            parts.port  # noqa: B018 (raises on a port that is no number)
            parse_url(url)  # type: ignore[no-untyped-call]  # its options, as redis-py reads them
            if scheme != "unix" and (not re.fullmatch(r"/?\d*", parts.path)
                                     or parts.fragment or "@" in parts.query):
                # redis-py ignores a database that is no number: a password's / # or ?
                # read as the end of the host (redis://:pa@ss/word@host) tried the host "ss"
                raise ValueError("a path that is no database number")
        except ValueError:
            raise ValueError("NBO_REDIS_URL is not a valid Redis URL (its value is not shown: "
                             "percent-encode any / # ? @ in its password)") from None
        return url

    @field_validator("holdout_journey_shares")
    @classmethod
    def _known_journeys(cls, shares: dict[str, float]) -> dict[str, float]:
        _known("NBO_HOLDOUT_JOURNEY_SHARES", shares, _JOURNEYS)
        wrong = sorted(journey for journey, share in shares.items() if not 0 <= share <= 1)
        if wrong:
            raise ValueError(f"NBO_HOLDOUT_JOURNEY_SHARES: the share of {', '.join(wrong)} "
                             "must be between 0 and 1")
        return shares

    @field_validator("contact_caps")
    @classmethod
    def _known_cap_channels(cls, caps: dict[str, list[tuple[int, int]]]
                            ) -> dict[str, list[tuple[int, int]]]:
        _known("NBO_CONTACT_CAPS", caps, (ALL_CHANNELS, *_CHANNELS))
        small = sorted(f"{channel} ({days}, {limit})" for channel, limits in caps.items()
                       for days, limit in limits if days < 1 or limit < 1)
        if small:
            raise ValueError(f"NBO_CONTACT_CAPS: {', '.join(small)}: days and max messages "
                             "must be at least 1; leave a channel out of the allowed channels "
                             "to never use it")
        longer = sorted(f"{channel} ({days} days)" for channel, limits in caps.items()
                        for days, _ in limits if days > CONTACT_DAYS)
        if longer:
            raise ValueError(f"NBO_CONTACT_CAPS: {', '.join(longer)} spans more days than the "
                             f"store keeps sends for ({CONTACT_DAYS}): it would count too few")
        return caps

    @field_validator("channel_costs")
    @classmethod
    def _known_cost_channels(cls, costs: dict[str, float]) -> dict[str, float]:
        _known("NBO_CHANNEL_COSTS", costs, _CHANNELS)
        wrong = sorted(channel for channel, cost in costs.items()
                       if not (math.isfinite(cost) and cost >= 0))
        if wrong:
            raise ValueError(f"NBO_CHANNEL_COSTS: the cost of {', '.join(wrong)} must be a "
                             "finite number >= 0")
        return costs

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys_shape(cls, value: object) -> object:
        """Read NBO_API_KEYS (the variable's JSON text, or a mapping given in code) and check
        its shape, naming entries by position: pydantic's own errors would name the dict
        key, which is the secret key itself. A key listed twice is refused: JSON would keep
        its last role, silently."""
        if isinstance(value, str | bytes):
            value = _json_keys(value)
        if not isinstance(value, Mapping):
            raise ValueError('NBO_API_KEYS must be a JSON object {"key": "role", ...}')
        for number, (key, role) in enumerate(value.items(), start=1):
            if not isinstance(key, str) or not isinstance(role, str):
                raise ValueError(f"NBO_API_KEYS: key #{number} or its role is not a string; "
                                 "a role is one of decide, ingest, admin")
        return value


def _json_keys(text: str | bytes) -> object:
    """NBO_API_KEYS' JSON text, refusing a key listed twice (named by position)."""
    repeated: list[tuple[int, int] | None] = []  # per object read, the inner ones first

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, int] = {}
        for number, (key, _) in enumerate(items, start=1):
            if key in seen:
                repeated.append((number, seen[key]))
                break
            seen[key] = number
        else:
            repeated.append(None)
        return dict(items)

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError:
        raise ValueError("NBO_API_KEYS is not valid JSON (its value is not shown: it may "
                         'hold secrets); write {"key": "role", ...}') from None
    if isinstance(value, dict) and repeated[-1] is not None:  # the outer object: the keys
        number, first = repeated[-1]
        raise ValueError(f"NBO_API_KEYS: key #{number} repeats key #{first}; give each key "
                         "one role (admin may do everything)")
    return value


def _known(setting: str, given: Mapping[str, object], names: Sequence[str]) -> None:
    """A name `setting` does not know is a typo that would silently never apply: refused."""
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"{setting}: unknown {', '.join(map(repr, unknown))}; the names it "
                         f"takes are {', '.join(names)}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
