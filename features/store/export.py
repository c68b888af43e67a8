"""`nbo events export`: the live events kept in the store, as a data contract events table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from features.contract.files import table_files, write_table
from features.contract.parse import PARSED_DTYPES
from features.contract.schema import EVENTS
from features.store.base import FeatureStore
from nbo.errors import DataContractError, NboError


@dataclass(frozen=True)
class ExportReport:
    path: Path | None  # None: no event to export, nothing written
    events: int
    first_id: str | None
    last_id: str | None  # pass as `after` to export only what came later


def export_events(store: FeatureStore, directory: Path, fmt: str = "parquet",
                  after: str = "-") -> ExportReport:
    """Write the logged events after `after` to DIRECTORY/events/live-<first id>.<fmt>.

    The file sits with the part files of an events/ table, so the directory (or a data
    set it is copied into) loads with `nbo validate`, `nbo train` and `nbo publish`. A data
    set whose events are one file (events.csv, ...) is refused before anything is written:
    an events/ folder beside it would give the table twice.
    """
    single = [path for path in table_files(directory, EVENTS.name)
              if path.parent == directory] if directory.is_dir() else []
    if single:
        raise DataContractError(
            f"{directory} holds its events as {single[0].name}: an events/ folder beside it "
            f"would give the table twice; move it to {directory / 'events' / single[0].name} "
            "(a part file), or export into another directory")
    rows: list[dict[str, object]] = []
    first = last = None
    while page := store.logged_events(after):
        first = first or page[0][0]
        for entry_id, event in page:
            rows.append(event.record())
            after = last = entry_id
    if first is None:  # a file of no event would be no table (a JSON Lines file names
        # no column), and every later empty export's name the same
        return ExportReport(None, 0, None, None)
    schema = {column.name: PARSED_DTYPES[column.kind] for column in EVENTS.columns}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    path = directory / "events" / f"live-{first.replace('-', '_')}.{fmt}"
    if path.exists():
        raise NboError(f"{path} already exists; export into another directory")
    write_table(frame, path)
    return ExportReport(path, len(rows), first, last)
