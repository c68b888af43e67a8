"""Records and files agree on "valid": the per-value check of POST /v1/events (`check_records`,
`check_events`) against the polars path files take (`check_frame` + `typed`), on drawn records
mixing good and bad values of every kind, odd forms and wrong JSON types included."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract.files import ROW, SINGLE_VALUE
from features.contract.parse import checked_value, invalid, parsed
from features.contract.problems import FileCheck, Problem
from features.contract.records import CheckedRecords, check_events, check_records, raw_text
from features.contract.schema import EVENTS, ITEMS, USERS, Column, Kind, TableSpec
from features.contract.tables import check_frame, typed
from features.event import Event

AGREE = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Item = dict[str, object]
_TS = next(column for column in EVENTS.columns if column.name == "ts")


def checked_as_frame(items: Sequence[Mapping[str, object]], spec: TableSpec,
                     source: str = "request") -> CheckedRecords:
    """The file path applied to records, as `check_events` did before: a frame of raw texts,
    one row per item, checked by `check_frame` and parsed by `typed`."""
    names = [column.name for column in spec.columns]
    path = Path(source)
    problems: dict[int, list[Problem]] = {}
    for position, item in enumerate(items):
        unknown = sorted(set(item) - set(names))
        if unknown:
            expected = f"a column of the {spec.name} contract (docs/data.md)"
            problems[position] = [Problem(path, expected, position, name,
                                          raw_text(item[name])) for name in unknown]
    rows = [{name: raw_text(item.get(name)) for name in names} | {ROW: position}
            for position, item in enumerate(items)]
    raw = pl.DataFrame(rows, schema={**dict.fromkeys(sorted(names), pl.String), ROW: pl.Int64})
    check = FileCheck(path)
    valid = check_frame(raw, spec, check, limit=len(items) * len(names) + 1)
    by_cell: dict[tuple[int, str | None], list[Problem]] = {}
    for problem in check.shown:
        assert problem.row is not None
        by_cell.setdefault((problem.row, problem.column), []).append(problem)
    for position, item in enumerate(items):  # each column in the contract's order; a list
        for name in names:  # or an object, which a JSON Lines file refuses, in its place
            nested = isinstance(item.get(name), Mapping | list)
            found = ([Problem(path, SINGLE_VALUE, position, name, raw_text(item[name]))]
                     if nested else by_cell.get((position, name), []))
            if found:
                problems.setdefault(position, []).extend(found)
    rows_parsed = typed(raw.filter(valid), spec).iter_rows(named=True)
    records = [(int(row[ROW]), {name: row[name] for name in names})
               for row in rows_parsed if int(row[ROW]) not in problems]
    return CheckedRecords(records, problems)


def _exact(record: Mapping[str, object], spec: TableSpec) -> list[tuple[str, str]]:
    """Every contract column's value with its type, so 1 != 1.0 and tzinfo counts."""
    return [(column.name, f"{type(record.get(column.name)).__name__}:"
             f"{record.get(column.name)!r}") for column in spec.columns]


def assert_agree(items: Sequence[Mapping[str, object]], spec: TableSpec) -> None:
    new, old = check_records(items, spec, "events"), checked_as_frame(items, spec, "events")
    assert new.problems == old.problems
    assert ([(position, _exact(record, spec)) for position, record in new.records]
            == [(position, _exact(record, spec)) for position, record in old.records])


# -- drawing values -----------------------------------------------------------------------

# Rust's whitespace (what polars trims) and Python's differ: \x1c-\x1f are only Python's,
# \u200b and \ufeff neither's.
_ODD_SPACE = ["", "", "", " ", "  ", "\t", "\n", "\r\n", "\xa0", "\x85", "\u3000", "\u2028",
              "\x1c", "\x1f", "\u200b", "\ufeff"]
_PAD = st.sampled_from(_ODD_SPACE)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates
_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT)
_WRONG_TYPES = st.one_of(
    st.lists(_JSON_SCALARS, max_size=3),
    st.dictionaries(_TEXT, _JSON_SCALARS, max_size=2),
    st.booleans(),
)


def _padded(texts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(_PAD, texts, _PAD).map("".join)


_NUMBER_JSON = st.one_of(
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.sampled_from([0, 1, -1, 2**53 - 1, 2**53, 2**53 + 1, -(2**53) + 1, -(2**53), 10**400,
                     0.0, -0.0, 1.0, 0.5, 1e-320, float("nan"), float("inf"), float("-inf")]),
    st.floats(),
    st.floats(-10.0, 10.0),
)
_ODD_NUMBER_TEXTS = st.sampled_from([
    "1.", ".5", "+.5", "-.e5", ".", "+", "-", "1e", "1e+", "1E5", "1e5.5", "1_000", "0x10",
    "0b1", "1,5", "1d5", "1.5f", "+-1", "--1", "00001", "Infinity", "-INF", "+inf", "infinit",
    "infinityy", "nan", "NaN", "-nan", "nan(1)", "１２", "\u0661", "1 5", "1\x00", "9" * 400,
    "0." + "0" * 400 + "1", "1e99999", "-1e-99999", "2.5", "3.0", "-0", "1e15", "ınf",
])
_NUMBER_TEXTS = st.one_of(
    st.floats().map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:e}"),
    st.floats(-1e3, 1e3).map(lambda x: f"{x:.4f}"),
    st.integers(-(2**60), 2**60).map(str),
    st.integers(-99, 99).map(lambda n: f"{n}."),
    st.integers(-99, 99).map(lambda n: f"+{n}"),
    st.tuples(st.integers(-99, 99), st.integers(-5, 20)).map(lambda t: f"{t[0]}e{t[1]}"),
    _ODD_NUMBER_TEXTS,
    st.from_regex(r"[+\-]?[0-9.eE_xX+\-]{1,8}", fullmatch=True),
    st.text("0123456789.eE+-infatyINFATY", min_size=1, max_size=9),
)


_OFFSET_GLUE = ["", ":", " ", "::", ": ", "\t"]


@st.composite
def _iso_texts(draw: st.DrawFn) -> str:
    """ISO-8601-like texts: each part usually as written by a good client, sometimes odd
    (a field of 1 or 3 digits, spaces, a leap second, no offset, ...), sometimes left out."""

    def part(usual: str, *odd: str) -> str:
        return usual if draw(st.integers(0, 5)) else draw(st.sampled_from(odd))

    def field(value: int, *odd: int) -> str:
        value = draw(st.sampled_from(odd)) if odd and not draw(st.integers(0, 5)) else value
        return part(f"{value:02d}", str(value), f" {value}", f"{value:03d}", f"\u3000{value:02d}",
                    f"\x1c{value:02d}")

    moment = draw(st.datetimes(datetime(1988, 1, 1), datetime(2102, 12, 31)))
    year = part(f"{moment.year:04d}", f"+{moment.year}", f"+{moment.year:06d}",
                f"-{moment.year}", f"{moment.year % 100:02d}", f"{moment.year}0", f" {moment.year}")
    sign = part(draw(st.sampled_from("+-")), "\u2212", "", " +", " -", "\t-")
    hours, minutes = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    glued = f"{sign}{hours:02d}{draw(st.sampled_from(_OFFSET_GLUE))}{minutes:02d}"
    offset = part(draw(st.sampled_from([f"{sign}{hours:02d}:{minutes:02d}", "Z"])),
                  "z", " Z", "", "+00:00", glued, glued, glued, f"{sign}24:00", f"{sign}1:00",
                  f"{sign}{hours:02d}", f"{sign}{hours:02d}:{minutes}",
                  f"{sign}{draw(st.integers(24, 99))}:00", f"{sign}{hours:02d}:60")
    digits = draw(st.text("0123456789", min_size=1, max_size=12))
    fraction = part(draw(st.sampled_from(["", f".{digits}"])), ".", f".{digits}Z")
    parts = [year, part("-", "/", "--", "- "), field(moment.month, 0, 13),
             part("-", "/", "--"), field(moment.day, 0, 29, 30, 31, 32),
             part("T", " ", "t", "", "  ", "\u3000", "T ", "TT", "_"),
             field(moment.hour, 24, 25), part(":", ".", ": "), field(moment.minute, 60),
             part(":", ".", ": "), field(moment.second, 59, 60, 61), fraction, offset]
    if not draw(st.integers(0, 9)):
        del parts[draw(st.integers(0, len(parts) - 1))]
    return "".join(parts)


_EPOCH_NUMBERS = st.one_of(
    st.integers(600_000_000, 4_200_000_000),  # seconds, 1989-2103
    st.floats(600_000_000, 4_200_000_000),
    st.integers(600_000_000_000, 4_200_000_000_000),  # milliseconds
    st.floats(600_000_000_000, 4_200_000_000_000),
    st.integers(99_999_999_990, 100_000_000_010),  # around the seconds/milliseconds threshold
    st.sampled_from([1e11, 1e11 - 1, 99_999_999_999_999, 10**14, 1e14, -1767604200,
                     631_152_000, 631_151_999.9999995, 4_102_444_800, 4_102_444_799.9999995,
                     631_152_000_000, 4_102_444_800_000, 1767604200.0000005]),
)
_EPOCH_TEXTS = st.one_of(
    _EPOCH_NUMBERS.map(repr),
    _EPOCH_NUMBERS.map(str),
    st.floats(600_000_000, 4_200_000_000).map(lambda x: f"{x:.7f}"),
    _EPOCH_NUMBERS.map(lambda x: f"{x:e}"),
    _EPOCH_NUMBERS.map(lambda x: f"+{x}"),
)
_TIMESTAMPS_TEXT = st.one_of(
    _iso_texts(), _iso_texts(), _iso_texts(),  # drawn more often: the most ways to be odd
    st.datetimes(datetime(1986, 1, 1), datetime(2104, 12, 31),
                 timezones=st.timezones()).map(datetime.isoformat),
    _EPOCH_TEXTS,
    st.sampled_from(["soon", "now", "2026-01-05", "10:00:00Z", "2026-01-05T10:00:00",
                     "T2026-01-05 10:00:00Z", "2026-01-05 10:00:00.+01:00", "Z", "z", "T"]),
)
_BOOLEAN_WORDS = ["true", "t", "yes", "y", "1", "false", "f", "no", "n", "0"]
_BOOLEAN_TEXTS = st.one_of(
    st.sampled_from(_BOOLEAN_WORDS),
    st.sampled_from(_BOOLEAN_WORDS).map(str.upper),
    st.sampled_from(_BOOLEAN_WORDS).map(str.title),
    st.sampled_from(["maybe", "2", "1.0", "0.0", "tru", "yess", "on", "off", "-1", "+1", "ｙ",
                     "İ", "\u212a"]),
)


def _near_choices(allowed: frozenset[str]) -> st.SearchStrategy[str]:
    choices = sorted(allowed)[:50]
    return st.one_of(st.sampled_from(choices).map(str.upper),
                     st.sampled_from(["teleport", "Europe/Nowhere", "view ", "VIEW", "Email"]))


def _odd_texts(column: Column) -> st.SearchStrategy[str]:
    """Texts in the column's form, in odd shapes: some right, many wrong."""
    if column.allowed is not None:
        return _near_choices(column.allowed)
    if column.pattern is not None:
        return st.text(string.ascii_letters + "1", min_size=1, max_size=3)
    return {
        Kind.STRING: _TEXT,
        Kind.TIMESTAMP: _TIMESTAMPS_TEXT,
        Kind.FLOAT: _NUMBER_TEXTS,
        Kind.INTEGER: _NUMBER_TEXTS,
        Kind.BOOLEAN: _BOOLEAN_TEXTS,
    }[column.kind]


def _in_range(column: Column) -> st.SearchStrategy[float]:
    low = -1e6 if column.min_value is None else column.min_value
    high = 1e6 if column.max_value is None else column.max_value
    return st.floats(low, high, exclude_min=column.min_exclusive)


def _whole(column: Column) -> st.SearchStrategy[int]:
    numbers = st.integers(-1000, 1000) | st.integers(-(2**53) + 1, 2**53 - 1)
    return numbers.filter(lambda n: n != 0) if column.nonzero else numbers


def _good(column: Column) -> st.SearchStrategy[object]:
    """Values the column accepts, in the forms it accepts them (as text and as JSON)."""
    if column.allowed is not None:
        return st.sampled_from(sorted(column.allowed)[:50])
    if column.pattern is not None:
        return st.from_regex(column.pattern)
    if column.kind is Kind.TIMESTAMP:
        moments = st.datetimes(datetime(1990, 1, 2), datetime(2099, 12, 30),
                               timezones=st.just(UTC))
        seconds = st.floats(631_152_000, 4_102_444_799)  # odd fractions, ties in rounding
        millis = st.floats(631_152_000_000, 4_102_444_799_999)
        return st.one_of(moments.map(datetime.isoformat),
                         moments.map(lambda m: m.isoformat().replace("+00:00", "Z")),
                         moments.map(lambda m: m.timestamp()),
                         moments.map(lambda m: int(m.timestamp() * 1000)),
                         moments.map(lambda m: str(int(m.timestamp()))),
                         _iso_texts(), seconds, seconds.map(repr), millis, millis.map(repr))
    if column.kind is Kind.FLOAT:
        return st.one_of(_in_range(column), _in_range(column).map(repr),
                         _in_range(column).map(lambda x: f"{x:e}"))
    if column.kind is Kind.INTEGER:
        return st.one_of(_whole(column), _whole(column).map(str),
                         _whole(column).map(lambda n: f"{n}.0"), _whole(column).map(float))
    if column.kind is Kind.BOOLEAN:
        return st.one_of(st.booleans(), st.sampled_from(_BOOLEAN_WORDS), st.sampled_from([0, 1]))
    return st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8)


def _json(column: Column) -> st.SearchStrategy[object]:
    """The column's values as JSON would give them (numbers as numbers, ...)."""
    if column.kind is Kind.TIMESTAMP:
        return _EPOCH_NUMBERS
    if column.kind is Kind.BOOLEAN:
        return st.sampled_from([0, 1, 2, 1.0, 0.0, -1])
    if column.kind in (Kind.FLOAT, Kind.INTEGER):
        return _NUMBER_JSON
    return st.nothing()


@st.composite
def plausible(draw: st.DrawFn, column: Column) -> object:
    """Mostly values the column accepts (7 in 10), odd forms of them, and near misses."""
    choice = draw(st.integers(0, 9))
    if choice < 7:
        return draw(_good(column))
    if choice == 7:
        return draw(_padded(_good(column).map(lambda value: raw_text(value) or "")))
    return draw(_odd_texts(column) if choice == 8 or column.kind is Kind.STRING
                else _json(column))


def anything(column: Column) -> st.SearchStrategy[object]:
    return st.one_of(plausible(column), st.none(), st.sampled_from(_ODD_SPACE), _TEXT,
                     _WRONG_TYPES, _NUMBER_JSON, _NUMBER_TEXTS)


@st.composite
def items(draw: st.DrawFn, spec: TableSpec) -> Item:
    """A record: required columns mostly there, optional ones at random, plausible values,
    then a few columns given any value at all, sometimes keys the contract does not know."""
    item: Item = {}
    for column in spec.columns:
        if draw(st.integers(0, 9)) < (9 if column.required else 4):
            item[column.name] = draw(plausible(column))
    for column in draw(st.lists(st.sampled_from(spec.columns), max_size=2)):
        item[column.name] = draw(anything(column))
    if draw(st.integers(0, 5)) == 0:
        names = st.one_of(st.sampled_from(["source", ROW, "Event_Type", "ts ", ""]), _TEXT)
        item |= draw(st.dictionaries(names, _JSON_SCALARS, min_size=1, max_size=2))
    return item


# -- the properties -----------------------------------------------------------------------


@AGREE
@given(st.lists(items(EVENTS), max_size=5))
def test_events_agree_with_the_file_path(drawn: list[Item]) -> None:
    new, old = check_events(drawn, "events"), checked_as_frame(drawn, EVENTS, "events")
    assert new.problems == old.problems
    assert ([(position, repr(event)) for position, event in new.events]
            == [(position, repr(Event.from_row(record))) for position, record in old.records])


@AGREE
@given(st.lists(items(USERS), max_size=4))
def test_users_agree_with_the_file_path(drawn: list[Item]) -> None:
    assert_agree(drawn, USERS)  # booleans and patterns, which events do not have


@settings(AGREE, max_examples=200)
@given(st.lists(items(ITEMS), max_size=4))
def test_items_agree_with_the_file_path(drawn: list[Item]) -> None:
    assert_agree(drawn, ITEMS)


def assert_values_agree(column: Column, values: Sequence[object]) -> None:
    """Each value's verdict and parsed value, the polars expressions' and the twins'."""
    raws = [raw_text(value) for value in values]
    frame = pl.DataFrame({column.name: raws}, schema={column.name: pl.String})
    wrong = invalid(column, pl.String())  # parsed values kept where valid only: an invalid
    polars = frame.select(wrong.alias("invalid"),  # one may be beyond Python's datetime
                          pl.when(~wrong).then(parsed(column, pl.String())).alias("parsed"))
    for raw, bad, value in zip(raws, polars["invalid"].to_list(), polars["parsed"].to_list(),
                               strict=True):
        valid, mine = checked_value(column, raw)
        assert valid is not bad, raw
        if valid:
            assert repr(mine) == repr(value), raw


@pytest.mark.parametrize(("spec", "name", "examples"), [
    pytest.param(spec, name, examples, id=f"{spec.name}.{name}") for spec, name, examples in [
        (EVENTS, "ts", 200), (EVENTS, "price", 60), (EVENTS, "quantity", 60),
        (EVENTS, "propensity", 60), (EVENTS, "event_type", 30), (EVENTS, "user_id", 30),
        (EVENTS, "category", 30), (USERS, "consent_email", 60), (USERS, "country", 30),
        (USERS, "timezone", 30)]
])
def test_values_agree(spec: TableSpec, name: str, examples: int) -> None:
    """Many values of one column a run, each compared on its own."""
    column = spec.column(name)
    assert column is not None
    half_plausible = st.booleans().flatmap(
        lambda good: plausible(column) if good else anything(column))

    @settings(AGREE, max_examples=examples)
    @given(st.lists(half_plausible, min_size=20, max_size=60))
    def agree(values: list[object]) -> None:
        assert_values_agree(column, values)

    agree()


@settings(AGREE, max_examples=200)
@given(st.lists(_iso_texts(), min_size=20, max_size=60))
def test_iso_timestamps_agree(texts: list[str]) -> None:
    """ISO texts alone, the rule with the most ways to be odd (chrono's, behind polars)."""
    assert_values_agree(_TS, texts)


_BY_NAME = {column.name: column for column in (*EVENTS.columns, *USERS.columns)}


@pytest.mark.parametrize(("name", "raw", "accepted"), [
    ("ts", "2026-01-0510:00:00+01:00", True),  # chrono lets the date/time space go
    ("ts", "2026-01-05:00:00+00:00", False),  # ... but never backtracks: day 05, no hour
    ("ts", "2026-1-5 1:2:3+0100", True),
    ("ts", "+02026-01-05 10:00:00Z", True),
    ("ts", "2026-01-05 10:00:00+01::  00", True),
    ("ts", "2026-01-05 10:00:60.5Z", True),  # a leap second: the next second
    ("ts", "2026-01-05 10:00:00.1234567891Z", True),  # truncated, not rounded
    ("ts", "2026-01-05 10:00:00\u221201:00", True),
    ("ts", "2026-01-05 10:00:00+24:00", False),
    ("ts", "2026-01-05t10:00:00Z", False),
    ("ts", "T2026-01-05 10:00:00Z", True),  # the first T becomes the space
    ("ts", "\x1c1767604200", False),  # no whitespace to polars; Python's float() skips it
    ("ts", "1767604200000.0005", True),
    ("ts", "99999999999", False),  # seconds: year 5138
    ("ts", "1e11", False),  # milliseconds: 1973
    ("ts", "631151999.9999995", True),  # rounds (half to even) into 1990
    ("price", "1_000", False),
    ("price", "-0.0", True),
    ("quantity", "3.0", True),
    ("quantity", str(2**53), False),
    ("propensity", "1", True),
    ("consent_sms", "Yes", True),
    ("consent_sms", "\u212a", False),  # the Kelvin sign, which Python's re.I takes for k
    ("country", "FR\n", True),
    ("timezone", " Europe/Paris ", True),
    ("user_id", "u" * 128, True),  # the API's limit on a user id in a path
    ("user_id", "u" * 129, False),
    ("user_id", f" {'u' * 128}\t", True),  # trimmed first
    ("user_id", "u1\x00", False),  # control characters: a broken export
    ("category", "cof\x01fee", False),
    ("category", "coffee\x1c", False),  # no whitespace to polars: kept, then refused
    ("category", "\u3000coffee\xa0", True),
    ("brand", "ka\x85lo", False),  # a C1 control inside (at either end, whitespace)
    ("brand", "k" * 256, True),
    ("brand", "k" * 257, False),
    ("journey", "cart\u200babandoned", True),  # a format character, not a control one
])
def test_odd_values_agree(name: str, raw: str, accepted: bool) -> None:
    assert_values_agree(_BY_NAME[name], [raw])
    assert checked_value(_BY_NAME[name], raw)[0] is accepted
