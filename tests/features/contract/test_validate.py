from pathlib import Path

import pytest

from features.contract.validate import validate_dataset
from tests.features.contract.conftest import EVENTS_CSV, OFFERS_YAML, write_dataset


def test_a_good_data_set_is_valid(dataset: Path) -> None:
    report = validate_dataset(dataset)
    assert report.ok, report.lines()
    assert {check.path.name for check in report.checks} == {
        "events.csv", "users.csv", "items.csv", "offers.yaml"}


def _replace_cell(text: str, line: int, column: str, value: str) -> str:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("ts", "2026-13-45T10:00:00+00:00", "ISO-8601 timestamp with offset"),
        ("ts", "2026-01-05T10:00:00", "ISO-8601 timestamp with offset"),
        ("event_type", "teleport", "one of add_to_cart"),
        ("price", "-3.5", "a number >= 0"),
        ("price", "cheap", "a number >= 0"),
        ("channel", "pigeon", "one of email"),
        ("quantity", "1.5", "a whole number"),
        ("quantity", "0", "a whole number other than 0"),
        ("quantity", "1e30", "a whole number"),
        ("ts", "inf", "ISO-8601 timestamp with offset"),
        ("ts", "1e30", "ISO-8601 timestamp with offset"),
        ("propensity", "0", "a number in (0, 1]"),
        ("user_id", "", "a non-empty string"),
    ],
)
def test_each_bad_cell_is_named_by_file_row_and_column(
    tmp_path: Path, column: str, value: str, expected: str
) -> None:
    events = _replace_cell(EVENTS_CSV, line=4, column=column, value=value)
    report = validate_dataset(write_dataset(tmp_path, events=events))
    assert not report.ok
    lines = report.lines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(str(tmp_path / "events.csv") + ": row 3 (line 4)")
    assert f"column '{column}'" in lines[0]
    assert expected in lines[0]
    if value:
        assert repr(value) in lines[0]


def test_a_missing_required_column_is_reported_once(tmp_path: Path) -> None:
    lines = EVENTS_CSV.splitlines()
    header = lines[0].split(",")
    drop = header.index("ts")
    text = "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != drop)
                     for line in lines) + "\n"
    report = validate_dataset(write_dataset(tmp_path, events=text))
    assert report.lines() == [
        f"{tmp_path / 'events.csv'}: column 'ts': expected a column named 'ts', "
        "which events files must have"
    ]


def test_problems_beyond_the_limit_are_counted(tmp_path: Path) -> None:
    rows = "".join(f"e{i},u1,yesterday,view,,,,,,,,,,,\n" for i in range(30))
    events = EVENTS_CSV.splitlines()[0] + "\n" + rows
    report = validate_dataset(write_dataset(tmp_path, events=events), limit=5)
    lines = report.lines()
    assert len(lines) == 6
    assert lines[-1].endswith("... and 25 more problems")


def test_a_ragged_csv_line_is_reported_and_the_rest_still_checked(tmp_path: Path) -> None:
    events = EVENTS_CSV + "e9,u9,2026-01-05T10:00:00Z,view,extra,,,,,,,,,,,,,\n"
    events += "e10,u9,not-a-time,view,,,,,,,,,,,\n"
    report = validate_dataset(write_dataset(tmp_path, events=events))
    text = "\n".join(report.lines())
    assert "row 8 (line 9)" in text and "comma-separated fields" in text
    assert "row 9 (line 10), column 'ts'" in text


@pytest.mark.parametrize(
    ("offers", "expected"),
    [
        ("offers: [\n  - offer_id: x\n    kind: voucher\n", "a readable YAML document"),
        ("just text\n", "a list of offers"),
        (OFFERS_YAML.replace("kind: voucher", "kind: coupon"), "row 1, column 'kind'"),
        (OFFERS_YAML.replace("cost: 5", "cost: -5"), "row 1, column 'cost'"),
        (OFFERS_YAML.replace("valid_to: 2026-03-01T00:00:00+00:00",
                             "valid_to: 2025-03-01T00:00:00+00:00"),
         "valid_to must be later than valid_from"),
        (OFFERS_YAML.replace("offer_id: coffee-guide", "offer_id: voucher-5"),
         "row 2, column 'offer_id'"),
        (OFFERS_YAML.replace("    value: 0\n", ""), "row 2, column 'value': got <missing>"),
    ],
)
def test_a_malformed_offer_file_is_reported(tmp_path: Path, offers: str, expected: str) -> None:
    report = validate_dataset(write_dataset(tmp_path, offers=offers))
    assert not report.ok
    text = "\n".join(report.lines())
    assert str(tmp_path / "offers.yaml") in text
    assert expected in text


def test_a_missing_events_table_is_a_data_set_problem(tmp_path: Path) -> None:
    directory = write_dataset(tmp_path)
    (directory / "events.csv").unlink()
    report = validate_dataset(directory)
    assert not report.ok
    assert "expected the events table" in report.lines()[0]


def test_a_table_given_twice_is_a_data_set_problem(dataset: Path) -> None:
    (dataset / "events").mkdir()
    (dataset / "events" / "part-0.csv").write_text(EVENTS_CSV)
    report = validate_dataset(dataset)
    assert not report.ok
    assert "given more than once" in report.lines()[0]
