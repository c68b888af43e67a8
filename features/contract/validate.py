"""`nbo validate`: check every file of a data set against the contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from features.contract.files import read_raw, table_files
from features.contract.offers import offers_file, read_offers
from features.contract.problems import FileCheck
from features.contract.schema import TABLES, missing_table
from features.contract.tables import DEFAULT_PROBLEM_LIMIT, check_frame
from nbo.errors import DataContractError


@dataclass
class ValidationReport:
    """Per-file checks of a data set, plus problems with the set as a whole."""

    directory: Path
    checks: list[FileCheck] = field(default_factory=list)
    dataset_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.dataset_problems and all(check.ok for check in self.checks)

    def lines(self) -> list[str]:
        """The report as text lines: problems first, capped per file, then a count."""
        out = [f"{self.directory}: {problem}" for problem in self.dataset_problems]
        for check in self.checks:
            out.extend(str(problem) for problem in check.shown)
            hidden = check.problem_count - len(check.shown)
            if hidden > 0:
                out.append(f"{check.path}: ... and {hidden} more problems")
        return out


def validate_dataset(directory: Path, limit: int = DEFAULT_PROBLEM_LIMIT) -> ValidationReport:
    """Check every table file and the offer catalog in `directory`."""
    report = ValidationReport(directory)
    if not directory.is_dir():
        report.dataset_problems.append("expected a directory holding the data set's files")
        return report
    for spec in TABLES:
        try:
            paths = table_files(directory, spec.name)
        except DataContractError as error:
            report.dataset_problems.append(str(error))
            continue
        if not paths and spec.required:
            report.dataset_problems.append(missing_table(spec))
        for path in paths:
            check = FileCheck(path)
            raw = read_raw(path, check, limit)
            if raw is not None:
                check_frame(raw, spec, check, limit)
            report.checks.append(check)
    try:
        catalog = offers_file(directory)
    except DataContractError as error:
        report.dataset_problems.append(str(error))
        return report
    if catalog is None:
        report.notes.append("no offers file (offers.yaml or offers.json): offers can't be decided")
    else:
        report.checks.append(read_offers(catalog, limit)[1])
    return report
