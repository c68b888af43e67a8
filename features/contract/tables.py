"""Checking and loading the tabular parts of a data set (events, users, items)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from features.contract.files import ROW, read_raw, table_files
from features.contract.parse import PARSED_DTYPES, invalid, parsed
from features.contract.problems import FileCheck, Problem
from features.contract.schema import TableSpec, missing_table
from nbo.errors import DataContractError

DEFAULT_PROBLEM_LIMIT = 20


def check_frame(raw: pl.DataFrame, spec: TableSpec, check: FileCheck, limit: int) -> pl.Series:
    """Record the frame's problems in `check`; return which rows are valid."""
    check.rows += raw.height
    missing = [name for name in spec.required_columns if name not in raw.columns]
    for name in missing:
        expected = f"a column named '{name}', which {spec.name} files must have"
        check.add(Problem(check.path, expected, column=name), limit)
    if missing:
        check.invalid_rows += raw.height
        return pl.Series("valid", [False] * raw.height, dtype=pl.Boolean)
    columns = [column for column in spec.columns if column.name in raw.columns]
    masks = raw.select(invalid(column, raw.schema[column.name]).alias(column.name)
                       for column in columns)
    for column in columns:
        bad = masks[column.name]
        count = int(bad.sum())
        if count == 0:
            continue
        room = max(limit - len(check.shown), 0)
        examples = raw.filter(bad).head(room).select(ROW, pl.col(column.name).cast(pl.String))
        for row, value in examples.iter_rows():
            check.add(Problem(check.path, column.expectation(), row, column.name, value), limit)
        check.problem_count += count - examples.height
    valid = ~masks.select(pl.any_horizontal(pl.all())).to_series()
    check.invalid_rows += raw.height - int(valid.sum())
    return valid


def typed(raw: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """Contract columns parsed to their types (absent ones as typed nulls); extras kept."""
    return raw.with_columns(
        parsed(column, raw.schema[column.name]).alias(column.name)
        if column.name in raw.columns
        else pl.lit(None, dtype=PARSED_DTYPES[column.kind]).alias(column.name)
        for column in spec.columns
    )


@dataclass
class LoadedTable:
    """A table's valid rows from all its files, and what was left out on the way."""

    frame: pl.DataFrame
    checks: list[FileCheck] = field(default_factory=list)
    duplicates_dropped: int = 0

    @property
    def invalid_rows(self) -> int:
        return sum(check.invalid_rows for check in self.checks)


def load_table(directory: Path, spec: TableSpec, limit: int = DEFAULT_PROBLEM_LIMIT,
               columns: Sequence[str] | None = None) -> LoadedTable:
    """Load `spec`'s table from a data set: valid rows parsed, exact duplicate keys dropped.

    With `columns`, only those (and the key) are kept from each file as it is read, which
    bounds memory to the columns needed plus one file's worth of everything.
    """
    frames: list[pl.DataFrame] = []
    checks: list[FileCheck] = []
    keyed = [name for name in (spec.key, spec.key_within) if name]
    kept = list(dict.fromkeys([*(columns or ()), *keyed]))
    for path in table_files(directory, spec.name):
        check = FileCheck(path)
        checks.append(check)
        raw = read_raw(path, check, limit)
        if raw is None:
            continue
        valid = check_frame(raw, spec, check, limit)
        if valid.any():
            frame = typed(raw.filter(valid), spec).drop(ROW)
            if columns is not None:
                frame = frame.select(kept)
            frames.append(frame)
    if not checks and spec.required:
        raise DataContractError(f"{directory}: no {spec.name} file; {missing_table(spec)}")
    empty = pl.DataFrame(schema={c.name: PARSED_DTYPES[c.kind] for c in spec.columns
                                 if columns is None or c.name in kept})
    frame = _concatenated(frames, spec) if frames else empty
    before = frame.height
    if spec.key is not None:
        key = pl.col(spec.key)
        frame = frame.filter(key.is_null() | pl.struct(keyed).is_first_distinct())
    return LoadedTable(frame, checks, before - frame.height)


def _concatenated(frames: list[pl.DataFrame], spec: TableSpec) -> pl.DataFrame:
    """The files' frames as one. A column outside the contract (kept as it was read) whose
    type differs between files is taken as text in all of them: polars finds no common
    type for some (times with a zone and without, dates and booleans)."""
    contract = {column.name for column in spec.columns}
    types: dict[str, set[pl.DataType]] = {}
    for frame in frames:
        for name, dtype in frame.schema.items():
            if name not in contract:
                types.setdefault(name, set()).add(dtype)
    mixed = [name for name, found in types.items() if len(found) > 1]
    return pl.concat([frame.with_columns(pl.col(name).cast(pl.String) for name in mixed
                                         if name in frame.columns) for frame in frames],
                     how="diagonal_relaxed", rechunk=False)
