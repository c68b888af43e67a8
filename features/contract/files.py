"""Finding a table's files in a data set directory and reading them as raw frames.

A table is either one file (`events.csv`, `events.parquet`, `events.jsonl`) or a directory
of part files (`events/part-0000.parquet`, ...). CSV and JSON Lines are read as text so
that parsing happens in one place (`parse.py`); broken lines are reported, not fatal.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from features.contract.problems import FileCheck, Problem
from nbo.errors import DataContractError

SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson")
FORMATS = ("parquet", "csv", "jsonl")  # what nbo writes
ROW = "__row"  # 1-based record number within its file, kept through parsing


def table_files(directory: Path, table: str) -> list[Path]:
    """The files holding `table` in `directory`; empty when the table is absent."""
    singles = [directory / f"{table}{suffix}" for suffix in SUFFIXES]
    found = [path for path in singles if path.is_file()]
    parts_dir = directory / table
    if parts_dir.is_dir():
        parts = sorted(p for p in parts_dir.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if parts:
            found.append(parts_dir)
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise DataContractError(f"{directory}: table '{table}' is given more than once ({names})")
    if not found:
        return []
    if found[0].is_dir():
        return sorted(p for p in found[0].iterdir() if p.suffix in SUFFIXES and p.is_file())
    return found


def read_raw(path: Path, check: FileCheck, limit: int) -> pl.DataFrame | None:
    """Read a file as it is, numbering its rows in `ROW`.

    Structurally broken lines become problems in `check` and are left out.
    """
    try:
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        else:
            frame = pl.read_ndjson(path, infer_schema_length=None)
        return frame.with_row_index(ROW, offset=1)
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        if path.suffix == ".parquet":
            check.add(Problem(path, f"a readable Parquet file ({_first_line(error)})"), limit)
            return None
    reader = _read_csv_lines if path.suffix == ".csv" else _read_json_lines
    return reader(path, check, limit)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _read_csv_lines(path: Path, check: FileCheck, limit: int) -> pl.DataFrame | None:
    """Slow path for a CSV file polars refused: keep well-formed rows, report the rest."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if not header or len(set(header)) != len(header):
            check.add(Problem(path, "a header line naming each column once"), limit)
            return None
        good: list[list[str | None]] = []
        numbers: list[int] = []
        for number, row in enumerate(rows, start=1):
            if len(row) == len(header):
                good.append([value if value != "" else None for value in row])
                numbers.append(number)
            else:
                preview = ",".join(row)
                expected = f"{len(header)} comma-separated fields, found {len(row)}"
                check.add(Problem(path, expected, row=number, value=preview), limit)
                check.rows += 1
                check.invalid_rows += 1
    frame = pl.DataFrame(good, schema=dict.fromkeys(header, pl.String), orient="row")
    return frame.with_columns(pl.Series(ROW, numbers, dtype=pl.UInt32))


def _read_json_lines(path: Path, check: FileCheck, limit: int) -> pl.DataFrame | None:
    """Slow path for a JSON Lines file polars refused: keep parsable objects, report the rest."""
    records: list[dict[str, str | None]] = []
    numbers: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = (line for line in handle if line.strip())  # rows count records, as polars does
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                check.add(Problem(path, "a JSON object", row=number, value=line.strip()), limit)
                check.rows += 1
                check.invalid_rows += 1
                continue
            records.append({key: _as_text(value) for key, value in record.items()})
            numbers.append(number)
    columns = list(dict.fromkeys(key for record in records for key in record))
    frame = pl.DataFrame(
        [[record.get(column) for column in columns] for record in records],
        schema=dict.fromkeys(columns, pl.String),
        orient="row",
    )
    return frame.with_columns(pl.Series(ROW, numbers, dtype=pl.UInt32))


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Write a frame in the format its suffix names (one of FORMATS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path, statistics=False)
    elif path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_ndjson(path)
