"""Events arriving one by one (the API's POST /v1/events), checked by the same contract
declaration and parsing expressions as files, so "valid" means the same thing everywhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl

from features.contract.files import ROW
from features.contract.problems import FileCheck, Problem
from features.contract.schema import EVENTS
from features.contract.tables import check_frame, typed
from features.event import Event

CONTRACT_NAMES = frozenset(column.name for column in EVENTS.columns)


@dataclass(frozen=True)
class CheckedEvents:
    events: list[tuple[int, Event]]  # (position in the request, event), valid ones only
    problems: dict[int, list[Problem]]  # position -> what is wrong with that item


def _raw(value: object) -> str | None:
    """A JSON value as the contract's text form (what a CSV cell would hold)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()  # a list or object: reported as not the right type


def check_events(items: Sequence[Mapping[str, object]], source: str = "request") -> CheckedEvents:
    """Each item checked against the events contract; positions count from 0."""
    problems: dict[int, list[Problem]] = {}
    for position, item in enumerate(items):
        unknown = sorted(set(item) - CONTRACT_NAMES)
        if unknown:
            problems[position] = [Problem(Path(source), "a column of the events contract "
                                          "(docs/data.md)", position, name, None)
                                  for name in unknown]
    rows = [{name: _raw(item.get(name)) for name in CONTRACT_NAMES} | {ROW: position}
            for position, item in enumerate(items)]
    raw = pl.DataFrame(rows, schema={**{name: pl.String for name in sorted(CONTRACT_NAMES)},
                                     ROW: pl.Int64})
    check = FileCheck(Path(source))
    valid = check_frame(raw, EVENTS, check, limit=len(items) * len(CONTRACT_NAMES) + 1)
    for problem in check.shown:
        if problem.row is not None:
            problems.setdefault(problem.row, []).append(problem)
    parsed = typed(raw.filter(valid), EVENTS)
    events = [(int(row[ROW]), Event.from_row(row)) for row in parsed.iter_rows(named=True)
              if int(row[ROW]) not in problems]
    return CheckedEvents(events, problems)
