"""Finding a table's files in a data set directory and reading them as raw frames.

A table is either one file (`events.csv`, `events.parquet`, `events.jsonl`) or a directory
of part files (`events/part-0000.parquet`, ...). CSV and JSON Lines are read as text so
that parsing happens in one place (`parse.py`); broken lines are reported, not fatal.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from pathlib import Path

import polars as pl

from features.contract.problems import FileCheck, Problem
from features.contract.schema import SURROGATES
from nbo.errors import DataContractError

SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson")
FORMATS = ("parquet", "csv", "jsonl")  # what nbo writes
ROW = "__row"  # 1-based record number within its file, kept through parsing


def table_files(directory: Path, table: str) -> list[Path]:
    """The files holding `table` in `directory`; empty when the table is absent. A table's
    directory holds part files, in sub-directories too (partitions such as `date=.../`,
    linked ones included); hidden and `_`-prefixed ones (Spark's `_SUCCESS`, checksums) are
    not the table's, and it is the table when it holds a table file (or any file, with no
    single file beside it): its other files are then reported by `read_raw`."""
    singles = [directory / f"{table}{suffix}" for suffix in SUFFIXES]
    found = [path for path in singles if path.is_file()]
    parts = _part_files(directory / table)
    if any(map(file_format, parts)) or parts and not found:
        found.append(directory / table)
    else:
        parts = []
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise DataContractError(f"{directory}: table '{table}' is given more than once ({names})")
    return parts or found


def _part_files(parts_dir: Path) -> list[Path]:
    """Every file under `parts_dir` (links followed, each directory once), but for hidden
    and `_`-prefixed ones and those in such directories."""
    if not parts_dir.is_dir():
        return []
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for root, directories, files in os.walk(parts_dir, followlinks=True):
        place = os.stat(root)
        if (place.st_dev, place.st_ino) in seen:  # a link back up: walked already
            directories.clear()
            continue
        seen.add((place.st_dev, place.st_ino))
        directories[:] = [name for name in directories if not name.startswith((".", "_"))]
        found += [Path(root, name) for name in files if not name.startswith((".", "_"))]
    return sorted(found)


def file_format(path: Path) -> str | None:
    """The suffix (one of SUFFIXES, lower case) a table file is read by; None: not one."""
    suffix = path.suffix.lower()
    return suffix if suffix in SUFFIXES else None


def read_raw(path: Path, check: FileCheck, limit: int) -> pl.DataFrame | None:
    """Read a file as it is, numbering its rows in `ROW`.

    Structurally broken lines become problems in `check` and are left out; a file that
    cannot be read at all is one problem, and None.
    """
    suffix = file_format(path)
    if suffix is None:
        check.add(Problem(path, "a table file nbo reads: " + ", ".join(SUFFIXES)
                          + " (compressed files are not read: decompress them)"), limit)
        return None
    try:
        return _read(path, suffix, check, limit)
    except OSError as error:  # no permission, a broken link, gone meanwhile
        check.add(Problem(path, f"a readable file ({error.strerror or error})"), limit)
        return None


def _read(path: Path, suffix: str, check: FileCheck, limit: int) -> pl.DataFrame | None:
    # the path as it is, not a glob pattern (a directory named `w[1]` matched nothing)
    if suffix == ".parquet":
        try:
            # durations as their ISO 8601 text (P3DT5S), which no column takes: polars
            # casts nothing else to text, so a check could not even show one
            table = pl.read_parquet(path, glob=False).with_columns(
                pl.col(pl.Duration).dt.to_string())
        except (pl.exceptions.PolarsError, ValueError) as error:
            check.add(Problem(path, f"a readable Parquet file ({_first_line(error)})"), limit)
            return None
        return _single_values(table.with_row_index(ROW, offset=1), path, check, limit)
    header = _csv_header(path) if suffix == ".csv" else []
    if header is None:
        check.add(Problem(path, "a UTF-8 header line naming each column once"), limit)
        return None
    frame: pl.DataFrame | None
    try:
        if suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False, glob=False)
        else:
            frame = pl.read_ndjson(path.read_bytes().removeprefix(codecs.BOM_UTF8),
                                   infer_schema_length=None)
    except (pl.exceptions.PolarsError, ValueError):
        frame = None
    if frame is None or not _read_whole(frame, suffix, header):
        return (_read_csv_lines(path, header, check, limit) if suffix == ".csv"
                else _read_json_lines(path, check, limit))
    numbered = frame.with_row_index(ROW, offset=1)
    if suffix != ".csv" or not frame.width:
        return numbered
    # columns without a name (a spreadsheet's trailing empty cells) are left out; a blank
    # line (or one of empty or blank fields: polars reads a line of blanks as a first
    # field) holds nothing: skipped, its number kept for the rest
    named = [frame.columns[at] for at in _named(header)]
    return numbered.select(ROW, *named).filter(
        ~pl.all_horizontal(pl.col(named).str.strip_chars().fill_null("") == ""))


def _read_whole(frame: pl.DataFrame, suffix: str, header: list[str]) -> bool:
    """Whether polars read a CSV or JSON Lines file as the readers of single rows would:
    else they read it again, reporting each bad row."""
    if any(_is_compound(dtype) for dtype in frame.dtypes):
        return False
    if suffix != ".csv":
        return not _maybe_nested_as_text(frame)
    # polars may read a header's stray quote as opening a field to the end of the file:
    # its rows gone, unreported
    return frame.width == len(header) and not any('"' in name for name in header)


def _maybe_nested_as_text(frame: pl.DataFrame) -> bool:
    """Whether a JSON Lines frame's text may hold a list or an object: polars writes one
    as its JSON text where the same key holds text in another record (the reader of
    single records, `_read_json_lines`, tells them from text that starts alike)."""
    text = pl.col(pl.String)
    return bool(frame.select(pl.any_horizontal(
        text.str.starts_with("[") | text.str.starts_with("{")).any()).item() or False)


def _csv_header(path: Path) -> list[str] | None:
    """A CSV file's header line, or None when it has none that names each column once in
    UTF-8 (polars would rename a repeated name and read on); blank names are allowed (a
    spreadsheet's trailing empty cells): those columns are left out."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        try:
            header = next(csv.reader(handle), [])
        except csv.Error:
            return None
    names = [header[at] for at in _named(header)]
    if (not names or len(set(names)) != len(names) or not all(map(_utf8, names))
            or any("\n" in name or "\r" in name for name in names)):  # a quote never closed
        return None
    return header


def _named(header: list[str]) -> list[int]:
    """The positions of a CSV header's columns that have a name."""
    return [at for at, name in enumerate(header) if name.strip()]


SINGLE_VALUE = "a single value (text, a number, true or false), not a list or an object"
UTF8 = "UTF-8 text (these bytes are not)"


def _is_compound(dtype: pl.DataType) -> bool:
    return dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object


def _single_values(frame: pl.DataFrame, path: Path, check: FileCheck,
                   limit: int) -> pl.DataFrame:
    """A Parquet frame's columns of lists, structs or bytes as text: bytes that are UTF-8
    kept, the other values reported (file, row, column) and their rows left out."""
    if not any(_is_compound(dtype) for dtype in frame.dtypes):
        return frame
    left_out = pl.Series([False] * frame.height, dtype=pl.Boolean)
    for name, dtype in frame.schema.items():
        if not _is_compound(dtype):
            continue
        text = pl.Series(name, [_decoded(value) for value in frame[name]]
                         if dtype == pl.Binary else [None] * frame.height, dtype=pl.String)
        wrong = frame[name].is_not_null() & text.is_null()
        expected = UTF8 if dtype == pl.Binary else SINGLE_VALUE
        room = max(limit - len(check.shown), 0)
        examples = frame.filter(wrong).head(room).select(ROW, name)
        for row, value in examples.iter_rows():
            check.add(Problem(path, expected, row, name, str(value)), limit)
        check.problem_count += int(wrong.sum()) - examples.height
        frame = frame.with_columns(text.alias(name))
        left_out = left_out | wrong
    count = int(left_out.sum())
    check.rows += count
    check.invalid_rows += count
    return frame.filter(~left_out)


def _decoded(value: bytes | None) -> str | None:
    """Bytes as the UTF-8 text they hold; None when they are none (polars' own cast of
    such bytes fails the whole column, even when told not to be strict)."""
    try:
        return None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _read_csv_lines(path: Path, header: list[str], check: FileCheck,
                    limit: int) -> pl.DataFrame:
    """Slow path for a CSV file polars refused: keep well-formed rows, report the rest."""
    named = _named(header)
    names = [header[at] for at in named]
    good: list[list[str | None]] = []
    numbers: list[int] = []
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        rows = csv.reader(handle)
        next(rows)  # the header, read already
        for number, fields in enumerate(rows, start=1):
            if not any(value.strip() for value in fields):  # blank, as the fast path
                continue
            if len(fields) != len(header):
                expected = f"{len(header)} comma-separated fields, found {len(fields)}"
                _refuse(check, Problem(path, expected, number, value=",".join(fields)), limit)
                continue
            row = [fields[at] for at in named]
            if not any(value.strip() for value in row):  # its values in no named column
                continue
            wrong = next((at for at, value in enumerate(row) if not _utf8(value)), None)
            if wrong is not None:
                _refuse(check, Problem(path, UTF8, number, names[wrong], _shown(row[wrong])),
                        limit)
                continue
            good.append([value if value != "" else None for value in row])
            numbers.append(number)
    frame = pl.DataFrame(good, schema=dict.fromkeys(names, pl.String), orient="row")
    return frame.with_columns(pl.Series(ROW, numbers, dtype=pl.UInt32))


def _refuse(check: FileCheck, problem: Problem, limit: int) -> None:
    """A row left out for `problem`."""
    check.add(problem, limit)
    check.rows += 1
    check.invalid_rows += 1


def _read_json_lines(path: Path, check: FileCheck, limit: int) -> pl.DataFrame:
    """Slow path for a JSON Lines file polars refused: keep parsable objects, report the rest."""
    records: list[dict[str, str | None]] = []
    numbers: list[int] = []
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as handle:
        lines = (line for line in handle if line.strip())  # rows count records, as polars does
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError:
                _refuse(check, Problem(path, "a JSON object", number,
                                       value=_shown(line.strip())), limit)
                continue
            wrong = _first_wrong(record)
            if wrong is not None:
                key, expected = wrong
                _refuse(check, Problem(path, expected, number, _shown(key),
                                       _shown(_as_text(record[key]) or "")), limit)
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


_SURROGATE = re.compile(f"[{SURROGATES}]")


def _utf8(text: str) -> bool:
    """Whether text read with errors="surrogateescape" was all UTF-8: no stray byte (read
    as a surrogate), nor a lone surrogate a JSON escape wrote."""
    return _SURROGATE.search(text) is None


def _shown(text: str) -> str:
    """Text as a problem shows it: stray bytes as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _first_wrong(record: dict[str, object]) -> tuple[str, str] | None:
    """The first key of a JSON Lines record whose value is a list or an object, or whose
    key or value is not UTF-8, and what was expected of it."""
    for key, value in record.items():
        if isinstance(value, list | dict):
            return key, SINGLE_VALUE
        if not _utf8(key) or (isinstance(value, str) and not _utf8(value)):
            return key, UTF8
    return None


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
