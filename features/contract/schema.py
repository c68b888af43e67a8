"""The data contract's tables and columns: names, kinds, and what each value must be.

One declaration serves validation (`nbo validate`), loading, and the generator's writer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import available_timezones


class EventType(StrEnum):
    VIEW = "view"
    SEARCH = "search"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    CHECKOUT = "checkout"
    PURCHASE = "purchase"
    WISHLIST = "wishlist"
    SIGNUP = "signup"
    APP_INSTALL = "app_install"
    APP_UNINSTALL = "app_uninstall"
    MESSAGE_SENT = "message_sent"
    MESSAGE_OPEN = "message_open"
    MESSAGE_CLICK = "message_click"
    OFFER_REDEEMED = "offer_redeemed"


class Channel(StrEnum):
    EMAIL = "email"
    PUSH = "push"
    IN_APP = "in_app"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    WEB = "web"


class OfferKind(StrEnum):
    VOUCHER = "voucher"
    CASHBACK = "cashback"
    FREE_SHIPPING = "free_shipping"
    TOP_UP = "top_up"
    MEMBERSHIP = "membership"
    CONTENT = "content"


class LifecycleStage(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    LOYAL = "loyal"
    AT_RISK = "at_risk"
    DORMANT = "dormant"
    CHURNED = "churned"


class Journey(StrEnum):
    ONBOARDING = "onboarding"
    WELCOME = "welcome"
    SEARCH = "search"
    CATEGORY_VIEW = "category_view"
    PRODUCT_VIEW = "product_view"
    CART_ABANDONED = "cart_abandoned"
    CHECKOUT_ABANDONED = "checkout_abandoned"
    PURCHASE = "purchase"
    DELIVERED = "delivered"
    UNINSTALL = "uninstall"
    WISHLIST = "wishlist"
    WIN_BACK = "win_back"


ID_MAX_CHARS = 128
"""Longest id (user, event, item, campaign, offer): the API's paths take no longer ones."""

NAME_MAX_CHARS = 256
"""Longest category, brand or journey name: longer ones are garbage, not names."""

COUNTRY_PATTERN = r"^[A-Z]{2}$"
"""A country as the users table gives it (ISO 3166-1 alpha-2, upper case)."""

_CONTROL_RANGES = r"\x00-\x1F\x7F-\x9F"
CONTROL_CHARACTERS = f"[{_CONTROL_RANGES}]"
"""Unicode's control characters (Cc), refused in free text: a NUL or a stray escape is a
broken export, and would travel into Redis keys and responses (Python's and Rust's regex)."""

SURROGATES = "\ud800-\udfff"
"""The UTF-16 halves: no UTF-8 text holds one alone (a regular expression's range)."""
_NOT_TEXT = re.compile(f"[{_CONTROL_RANGES}{SURROGATES}]")


def is_clean_text(value: str) -> bool:
    """No control character (CONTROL_CHARACTERS) and no lone UTF-16 surrogate: JSON can
    carry one (a "\\ud800" escape), but no UTF-8 text, Redis key or response can hold it.
    (Polars' strings are UTF-8, so only values met in Python need the second check.)"""
    return _NOT_TEXT.search(value) is None


def clean_text(value: str) -> str:
    """`value` when `is_clean_text`, else a ValueError saying so (a pydantic validator)."""
    if not is_clean_text(value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


TIME_ZONES = frozenset(available_timezones()) - {"Factory", "localtime"}
"""The IANA zones a user may have: the system's, less the two that name no place (polars,
which computes local hours in batch, refuses them)."""

PRICE_MAX = 1e9
"""Highest price an event or item may carry: beyond it a number is garbage, and sums of
such would overflow what the features keep."""
_PRICE = f"a number from 0 to {PRICE_MAX:,.0f}"

QUANTITY_MAX = 1_000_000
"""Most items one event may add, buy or return (either sign)."""


class Kind(StrEnum):
    """How a column's raw values are parsed."""

    STRING = "string"
    TIMESTAMP = "timestamp"
    FLOAT = "float"
    INTEGER = "integer"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    allowed: frozenset[str] | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_exclusive: bool = False
    nonzero: bool = False
    pattern: str | None = None  # a regular expression the whole value must match
    max_chars: int | None = None  # free text (no `allowed`, no `pattern`): its longest form
    described: str | None = None  # words for a valid value, where the rule alone is unclear

    def expectation(self) -> str:
        """What a valid value looks like, in words, for error messages."""
        if self.described is not None:
            return self.described
        if self.allowed is not None:
            return "one of " + ", ".join(sorted(self.allowed))
        words = {
            Kind.STRING: "a non-empty string",
            Kind.TIMESTAMP: "an ISO-8601 timestamp with offset (2026-01-05T10:00:00+01:00) "
            "or epoch seconds/milliseconds",
            Kind.FLOAT: "a number",
            Kind.INTEGER: "a whole number",
            Kind.BOOLEAN: "a boolean (true/false, 1/0, yes/no)",
        }[self.kind]
        if self.kind is Kind.STRING and self.pattern is None:
            longest = "" if self.max_chars is None else f" of at most {self.max_chars} characters"
            return f"{words}{longest}, without control characters"
        if self.min_value is not None and self.max_value is not None:
            low = "(" if self.min_exclusive else "["
            return f"{words} in {low}{self.min_value:g}, {self.max_value:g}]"
        if self.min_value is not None:
            return f"{words} {'>' if self.min_exclusive else '>='} {self.min_value:g}"
        return words


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    required: bool
    key: str | None = None  # column whose exact duplicates are dropped on load
    key_within: str | None = None  # the key repeats only within one value of this column

    @property
    def required_columns(self) -> list[str]:
        return [column.name for column in self.columns if column.required]

    def column(self, name: str) -> Column | None:
        return next((column for column in self.columns if column.name == name), None)


def _choices(values: type[StrEnum]) -> frozenset[str]:
    return frozenset(member.value for member in values)


def _id(name: str, required: bool = False) -> Column:
    return Column(name, Kind.STRING, required=required, max_chars=ID_MAX_CHARS)


def _name(name: str) -> Column:
    return Column(name, Kind.STRING, max_chars=NAME_MAX_CHARS)


EVENTS = TableSpec(
    name="events",
    required=True,
    key="event_id",
    key_within="user_id",  # as the live path keeps them: one user's ids, per user
    columns=(
        _id("user_id", required=True),
        Column("ts", Kind.TIMESTAMP, required=True),
        Column("event_type", Kind.STRING, required=True, allowed=_choices(EventType)),
        _id("event_id"),
        _id("item_id"),
        _name("category"),
        _name("brand"),
        Column("price", Kind.FLOAT, min_value=0, max_value=PRICE_MAX, described=_PRICE),
        Column("quantity", Kind.INTEGER, nonzero=True, min_value=-QUANTITY_MAX,
               max_value=QUANTITY_MAX, described=f"a whole number other than 0 between "
               f"-{QUANTITY_MAX:,} and {QUANTITY_MAX:,} (negative: a return)"),
        Column("channel", Kind.STRING, allowed=_choices(Channel)),
        _id("campaign_id"),
        _id("offer_id"),
        _name("journey"),
        Column("propensity", Kind.FLOAT, min_value=0, max_value=1, min_exclusive=True),
    ),
)

USERS = TableSpec(
    name="users",
    required=False,
    key="user_id",
    columns=(
        _id("user_id", required=True),
        Column("signup_ts", Kind.TIMESTAMP),
        Column("country", Kind.STRING, pattern=COUNTRY_PATTERN,
               described="a two-letter ISO 3166 country code such as FR"),
        Column("timezone", Kind.STRING, allowed=TIME_ZONES,
               described="an IANA time zone name such as Europe/Paris"),
        *(Column(f"consent_{channel.value}", Kind.BOOLEAN) for channel in Channel),
    ),
)

ITEMS = TableSpec(
    name="items",
    required=False,
    key="item_id",
    columns=(
        _id("item_id", required=True),
        _name("category"),
        _name("brand"),
        Column("price", Kind.FLOAT, min_value=0, max_value=PRICE_MAX, described=_PRICE),
        Column("margin", Kind.FLOAT, min_value=-1, max_value=1),
    ),
)

TABLES: tuple[TableSpec, ...] = (EVENTS, USERS, ITEMS)


def missing_table(spec: TableSpec) -> str:
    """What to provide when a required table has no file."""
    return (f"expected the {spec.name} table ({spec.name}.csv, .parquet or .jsonl, "
            f"or a {spec.name}/ directory of part files)")
