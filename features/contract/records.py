"""Events arriving one by one (the API's POST /v1/events), checked by the same contract
declaration as files, value by value with the per-value twins of the file parser
(`parse.py`), so "valid" means the same thing everywhere at a fraction of a polars query."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from features.contract.files import SINGLE_VALUE
from features.contract.parse import checked_value
from features.contract.problems import Problem
from features.contract.schema import EVENTS, TableSpec
from features.event import Event


@dataclass(frozen=True)
class CheckedEvents:
    events: list[tuple[int, Event]]  # (position in the request, event), valid ones only
    problems: dict[int, list[Problem]]  # position -> what is wrong with that item

    def until(self, latest: datetime, source: str = "request") -> CheckedEvents:
        """The events at `latest` or before; a later one (a client's clock far ahead, a
        made-up date) becomes a problem of its own, since it would date the user's history
        in the future."""
        later = {position: [Problem(Path(source), f"a time no later than {latest.isoformat()} "
                                    "(now, give or take a few minutes): an event cannot come "
                                    "from the future", position, "ts", event.ts.isoformat())]
                 for position, event in self.events if event.ts > latest}
        if not later:
            return self
        return CheckedEvents([(position, event) for position, event in self.events
                              if position not in later], self.problems | later)


@dataclass(frozen=True)
class CheckedRecords:
    records: list[tuple[int, dict[str, object]]]  # (position, parsed columns given)
    problems: dict[int, list[Problem]]  # position -> what is wrong with that item


def raw_text(value: object) -> str | None:
    """A JSON value as the contract's text form (what a CSV cell would hold)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    try:
        return orjson.dumps(value).decode()  # a list or object: its JSON text
    except TypeError:  # an integer beyond 64 bits, or nesting beyond orjson's 254 levels
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except RecursionError:  # deeper than this stack takes (the body's parse did)
            return "<nested too deeply to show>"


def check_records(items: Sequence[object], spec: TableSpec,
                  source: str = "request") -> CheckedRecords:
    """Each item checked against `spec` and parsed; positions count from 0.

    An item's problems come as the file validator reports them: unknown keys (sorted),
    then each wrong column in the order the contract declares them. An item that is not an
    object (a JSON Lines file's line that is not one) is one problem of its own.
    """
    names = frozenset(column.name for column in spec.columns)
    columns = [(column.name, column.required, column) for column in spec.columns]
    path = Path(source)
    records: list[tuple[int, dict[str, object]]] = []
    problems: dict[int, list[Problem]] = {}
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            expected = f"an object of the {spec.name} contract's columns (docs/data.md)"
            problems[position] = [Problem(path, expected, position, None, raw_text(item))]
            continue
        found = [] if names.issuperset(item) else [
            Problem(path, f"a column of the {spec.name} contract (docs/data.md)", position, name,
                    raw_text(item[name])) for name in sorted(set(item) - names)]
        record: dict[str, object] = {}
        for name, required, column in columns:
            given = item.get(name)
            if given is None and not required:
                continue  # absent: nothing to check (`checked_value` would say valid, None)
            raw = given if type(given) is str else raw_text(given)
            if isinstance(given, Mapping | list):  # as the files refuse it
                found.append(Problem(path, SINGLE_VALUE, position, name, raw))
                continue
            valid, value = checked_value(column, raw)
            if valid:
                record[name] = value
            else:
                found.append(Problem(path, column.expectation(), position, name, raw))
        if found:
            problems[position] = found
        else:
            records.append((position, record))
    return CheckedRecords(records, problems)


def check_events(items: Sequence[object], source: str = "request") -> CheckedEvents:
    """Each item checked against the events contract; positions count from 0."""
    checked = check_records(items, EVENTS, source)
    return CheckedEvents([(position, Event.from_row(record))
                          for position, record in checked.records], checked.problems)
