"""Column parsing, written twice: one definition of "valid" for files and single records.

Files (validate, load) are parsed with polars expressions: each contract column becomes its
parsed value (null where it cannot be parsed) and an `invalid` mask (a value is present but
wrong, or a required value is missing); both work on eager and lazy frames of any input
format. Records arriving one by one (POST /v1/events) are parsed by the per-value twin that
follows each expression (`*_value`), from the same raw text, because a polars query costs
milliseconds even for one row. The twins must agree on every text: verdict and parsed value.
tests/features/contract/test_records_agree.py holds them together by drawing odd records and
comparing both paths, so a rule changed on one side only fails there.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from features.contract.schema import CONTROL_CHARACTERS, Column, Kind, is_clean_text

UTC_MICROS = pl.Datetime("us", "UTC")
_EARLIEST = pl.datetime(1990, 1, 1, time_zone="UTC")
_LATEST = pl.datetime(2100, 1, 1, time_zone="UTC")
_EPOCH_MS_THRESHOLD = 1e11  # larger epoch values are milliseconds (year 5138 in seconds)
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]

PARSED_DTYPES: dict[Kind, pl.DataType] = {
    Kind.STRING: pl.String(),
    Kind.TIMESTAMP: UTC_MICROS,
    Kind.FLOAT: pl.Float64(),
    Kind.INTEGER: pl.Int64(),
    Kind.BOOLEAN: pl.Boolean(),
}

# The per-value twins' constants: polars returns UTC datetimes with a ZoneInfo, so do they.
_UTC = ZoneInfo("UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_EARLIEST_VALUE = datetime(1990, 1, 1, tzinfo=_UTC)
_LATEST_VALUE = datetime(2100, 1, 1, tzinfo=_UTC)
_TRUE_WORDS = frozenset(_TRUE)
_FALSE_WORDS = frozenset(_FALSE)
# What polars trims: Rust's `char::is_whitespace`, which, unlike `str.isspace`, leaves
# \x1c-\x1f alone.
_WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
               "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _text(raw: pl.Expr) -> pl.Expr:
    """Raw values as trimmed strings, with empty strings as null."""
    text = raw.cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


def text_value(raw: str | None) -> str | None:
    """`_text` for one raw value."""
    if raw is None:
        return None
    return raw.strip(_WHITESPACE) or None


def _number(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_numeric():
        return raw.cast(pl.Float64)
    return _text(raw).cast(pl.Float64, strict=False)


# What polars' string to Float64 cast accepts: ASCII digits only, no spaces or underscores.
_FLOAT_TEXT = re.compile(r"(?ai)[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?"
                         r"|inf(?:inity)?|nan)")


def number_value(text: str) -> float | None:
    """`_number` for one trimmed, non-empty text."""
    return float(text) if _FLOAT_TEXT.fullmatch(text) else None


_LARGEST_EXACT = 2.0**53  # beyond this a float is no whole number we can trust
_ISO_FORMAT = "%Y-%m-%d %H:%M:%S%.f%z"  # after Z becomes +00:00 and T a space


def _epoch(seconds_or_millis: pl.Expr) -> pl.Expr:
    plausible = seconds_or_millis.is_finite() & (seconds_or_millis.abs() < 1e14)
    seconds_or_millis = pl.when(plausible).then(seconds_or_millis)
    micros = (
        pl.when(seconds_or_millis.abs() >= _EPOCH_MS_THRESHOLD)
        .then(seconds_or_millis * 1_000)
        .otherwise(seconds_or_millis * 1_000_000)
    )
    return micros.round(0).cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _epoch_micros(seconds_or_millis: float) -> int | None:
    """`_epoch` for one value, as microseconds (`round` ties to even, as polars does)."""
    if not (math.isfinite(seconds_or_millis) and abs(seconds_or_millis) < 1e14):
        return None
    if abs(seconds_or_millis) >= _EPOCH_MS_THRESHOLD:
        return round(seconds_or_millis * 1_000)
    return round(seconds_or_millis * 1_000_000)


def _timestamp(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:  # Parquet writers store naive timestamps as UTC
            return raw.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
        return raw.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if isinstance(dtype, pl.Date):
        return raw.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        return _epoch(raw.cast(pl.Float64))
    text = _text(raw)
    iso = (
        text.str.replace(r"[Zz]$", "+00:00")
        .str.replace("T", " ", literal=True)
        .str.to_datetime(_ISO_FORMAT, strict=False, time_unit="us", time_zone="UTC")
    )
    return pl.coalesce(iso, _epoch(text.cast(pl.Float64, strict=False)))


# What chrono (behind `str.to_datetime`) accepts for `_ISO_FORMAT`: whitespace before each
# number and the offset, a signed year of any length (else up to 4 digits), 1-2 digit fields,
# a date/time space that may be absent, fraction digits past the 9th ignored, colons or
# spaces (or neither) between the offset's hours and minutes. Possessive, as chrono never
# backtracks ("05:00" is a day of 05 and no hour, not a day of 0 and hour 5).
_SPACE = "[" + re.escape(_WHITESPACE) + "]*+"
_ISO_TEXT = re.compile(
    rf"{_SPACE}([+-]?)((?<=[+-])[0-9]++|[0-9]{{1,4}}+)"
    rf"-{_SPACE}([0-9]{{1,2}}+)-{_SPACE}([0-9]{{1,2}}+)"
    rf"{_SPACE}([0-9]{{1,2}}+):{_SPACE}([0-9]{{1,2}}+):{_SPACE}([0-9]{{1,2}}+)"
    r"(?:\.([0-9]++))?"
    rf"{_SPACE}([+\-\u2212])([0-9]{{2}})[:{re.escape(_WHITESPACE)}]*+([0-5][0-9])"
)


def _iso_value(text: str) -> datetime | None:
    """The ISO branch of `_timestamp` for one text.

    None also for years outside 1-9999, which are never in the accepted range.
    """
    text = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    match = _ISO_TEXT.fullmatch(text.replace("T", " ", 1))
    if match is None:
        return None
    year_sign, year, month, day, hour, minute, second, fraction, sign, off_h, off_m = (
        match.groups())
    year = year.lstrip("0")
    offset = int(off_h) * 60 + int(off_m)
    seconds = int(second)
    if len(year) > 4 or (year_sign == "-" and year) or seconds > 60 or offset >= 24 * 60:
        return None
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0  # chrono truncates
    try:  # a second of 60 is a leap second, which chrono counts as the next one
        local = datetime(int(year or "0"), int(month), int(day), int(hour), int(minute),
                         min(seconds, 59), micros, _UTC)
        shift = (seconds == 60) - (offset if sign == "+" else -offset) * 60
        return local + timedelta(seconds=shift) if shift else local
    except (ValueError, OverflowError):  # no such day or time, year 0, beyond year 9999
        return None


def timestamp_value(text: str) -> datetime | None:
    """`_timestamp` for one trimmed, non-empty text.

    None also where the instant is beyond Python's datetime, never in the accepted range.
    """
    iso = _iso_value(text)
    if iso is not None:
        return iso
    number = number_value(text)
    micros = None if number is None else _epoch_micros(number)
    if micros is None:
        return None
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        return None


def _boolean(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Boolean):
        return raw
    if dtype.is_numeric():
        return pl.when(raw == 1).then(True).when(raw == 0).then(False)
    lowered = _text(raw).str.to_lowercase()
    return pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)


def boolean_value(text: str) -> bool | None:
    """`_boolean` for one trimmed, non-empty text."""
    lowered = text.lower()
    if lowered in _TRUE_WORDS:
        return True
    if lowered in _FALSE_WORDS:
        return False
    return None


def parsed(column: Column, dtype: pl.DataType) -> pl.Expr:
    """The column converted to its contract type, null where a value cannot be parsed."""
    raw = pl.col(column.name)
    if column.kind is Kind.STRING:
        return _text(raw)
    if column.kind is Kind.TIMESTAMP:
        return _timestamp(raw, dtype)
    if column.kind is Kind.BOOLEAN:
        return _boolean(raw, dtype)
    number = _number(raw, dtype)
    if column.kind is Kind.INTEGER:
        whole = number.is_finite() & (number.abs() < _LARGEST_EXACT) & (number == number.round(0))
        return pl.when(whole).then(number).cast(pl.Int64)
    return number


def parsed_value(column: Column, text: str) -> object:
    """`parsed` for one trimmed, non-empty text: the typed value, or None."""
    if column.kind is Kind.STRING:
        return text
    if column.kind is Kind.TIMESTAMP:
        return timestamp_value(text)
    if column.kind is Kind.BOOLEAN:
        return boolean_value(text)
    number = number_value(text)
    if column.kind is Kind.INTEGER:
        if number is None or not (abs(number) < _LARGEST_EXACT and number.is_integer()):
            return None
        return int(number)
    return number


def _in_range(value: pl.Expr, column: Column) -> pl.Expr:
    ok = pl.lit(True)
    if column.min_value is not None:
        low = pl.lit(column.min_value)
        ok = ok & ((value > low) if column.min_exclusive else (value >= low))
    if column.max_value is not None:
        ok = ok & (value <= pl.lit(column.max_value))
    return ok


def _in_range_value(value: float, column: Column) -> bool:
    if column.min_value is not None:
        low = column.min_value
        if (value <= low) if column.min_exclusive else (value < low):
            return False
    return column.max_value is None or value <= column.max_value


def acceptable(column: Column, value: pl.Expr) -> pl.Expr:
    """True where a parsed (non-null) value meets the column's constraints."""
    if column.allowed is not None:
        return value.is_in(sorted(column.allowed))
    if column.pattern is not None:
        return value.str.contains(column.pattern)
    if column.kind is Kind.TIMESTAMP:
        return value.is_between(_EARLIEST, _LATEST, closed="left")
    if column.kind is Kind.FLOAT:
        return value.is_finite() & _in_range(value, column)
    if column.kind is Kind.INTEGER:
        nonzero = (value != 0) if column.nonzero else pl.lit(True)
        return _in_range(value.cast(pl.Float64), column) & nonzero
    if column.kind is Kind.STRING:
        short = pl.lit(True) if column.max_chars is None else (
            value.str.len_chars() <= column.max_chars)
        return short & ~value.str.contains(CONTROL_CHARACTERS)
    return pl.lit(True)


def acceptable_value(column: Column, value: object) -> bool:
    """`acceptable` for one parsed (not None) value."""
    if column.allowed is not None:
        return value in column.allowed
    if column.pattern is not None:
        return isinstance(value, str) and re.search(column.pattern, value) is not None
    if column.kind is Kind.TIMESTAMP:
        return isinstance(value, datetime) and _EARLIEST_VALUE <= value < _LATEST_VALUE
    if column.kind is Kind.FLOAT:
        return (isinstance(value, float) and math.isfinite(value)
                and _in_range_value(value, column))
    if column.kind is Kind.INTEGER:
        return (isinstance(value, int) and _in_range_value(float(value), column)
                and not (column.nonzero and value == 0))
    if column.kind is Kind.STRING:
        return (isinstance(value, str)
                and (column.max_chars is None or len(value) <= column.max_chars)
                and is_clean_text(value))
    return True


def present(column: Column) -> pl.Expr:
    """True where the raw value is not null or blank."""
    return _text(pl.col(column.name)).is_not_null()


def invalid(column: Column, dtype: pl.DataType) -> pl.Expr:
    """True where the row breaks the contract for this column."""
    value = parsed(column, dtype)
    wrong = present(column) & (value.is_null() | ~acceptable(column, value).fill_null(False))
    if column.required:
        wrong = wrong | ~present(column)
    return wrong


def checked_value(column: Column, raw: str | None) -> tuple[bool, object]:
    """`invalid` and `parsed` for one raw text: (valid, the parsed value or None)."""
    text = text_value(raw)
    if text is None:
        return not column.required, None
    value = parsed_value(column, text)
    return value is not None and acceptable_value(column, value), value
