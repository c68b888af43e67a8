"""Column parsing as polars expressions: one definition of "valid" for validate and load.

Each contract column becomes two expressions over its raw values: the parsed value (null
where it cannot be parsed) and an `invalid` mask (a value is present but wrong, or a
required value is missing). Both work on eager and lazy frames of any input format.
"""

from __future__ import annotations

import polars as pl

from features.contract.schema import Column, Kind

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


def _text(raw: pl.Expr) -> pl.Expr:
    """Raw values as trimmed strings, with empty strings as null."""
    text = raw.cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


def _number(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_numeric():
        return raw.cast(pl.Float64)
    return _text(raw).cast(pl.Float64, strict=False)


_LARGEST_EXACT = 2.0**53  # beyond this a float is no whole number we can trust


def _epoch(seconds_or_millis: pl.Expr) -> pl.Expr:
    plausible = seconds_or_millis.is_finite() & (seconds_or_millis.abs() < 1e14)
    seconds_or_millis = pl.when(plausible).then(seconds_or_millis)
    micros = (
        pl.when(seconds_or_millis.abs() >= _EPOCH_MS_THRESHOLD)
        .then(seconds_or_millis * 1_000)
        .otherwise(seconds_or_millis * 1_000_000)
    )
    return micros.round(0).cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


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
        .str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC")
    )
    return pl.coalesce(iso, _epoch(text.cast(pl.Float64, strict=False)))


def _boolean(raw: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Boolean):
        return raw
    if dtype.is_numeric():
        return pl.when(raw == 1).then(True).when(raw == 0).then(False)
    lowered = _text(raw).str.to_lowercase()
    return pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)


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


def _in_range(value: pl.Expr, column: Column) -> pl.Expr:
    ok = pl.lit(True)
    if column.min_value is not None:
        low = pl.lit(column.min_value)
        ok = ok & ((value > low) if column.min_exclusive else (value >= low))
    if column.max_value is not None:
        ok = ok & (value <= pl.lit(column.max_value))
    return ok


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
    return pl.lit(True)


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
