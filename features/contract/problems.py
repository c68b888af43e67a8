"""A problem found in an input file, worded so a person can find and fix it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

_VALUE_PREVIEW = 60


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file: at a row and column, or with the file as a whole."""

    file: Path
    expected: str
    row: int | None = None  # 1-based record number, header excluded
    column: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        """`FILE: row R (line L), column 'C': got 'V', expected E`."""
        where: list[str] = []
        if self.row is not None:
            line = f" (line {self.row + 1})" if self.file.suffix.lower() == ".csv" else ""
            where.append(f"row {self.row}{line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")  # repr: escapes what no text holds
        got = ""
        if self.row is not None:
            shown = "<missing>" if self.value is None else repr(self._preview(self.value))
            got = f"got {shown}, "
        location = f" {', '.join(where)}:" if where else ""
        return f"{self.file}:{location} {got}expected {self.expected}"

    @staticmethod
    def _preview(value: str) -> str:
        return value if len(value) <= _VALUE_PREVIEW else value[:_VALUE_PREVIEW] + "..."


@dataclass
class FileCheck:
    """What checking one file found: its rows, the problems shown, and how many in all."""

    path: Path
    rows: int = 0
    invalid_rows: int = 0
    shown: list[Problem] = field(default_factory=list)  # the first `limit` problems
    problem_count: int = 0  # all problems, shown or not

    def add(self, problem: Problem, limit: int) -> None:
        self.problem_count += 1
        if len(self.shown) < limit:
            self.shown.append(problem)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


def validation_message(message: object) -> str:
    """A pydantic error's message as a person reads it: without the "Value error, " it
    puts before a validator's own words."""
    return str(message).removeprefix("Value error, ")
