from pathlib import Path

import pytest

from features.contract.offers import Offer, read_offers
from features.contract.validate import validate_dataset
from tests.features.contract.conftest import EVENTS_CSV, OFFERS_YAML, USERS_CSV, write_dataset


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
        ("price", "-3.5", "a number from 0 to 1,000,000,000"),
        ("price", "cheap", "a number from 0 to 1,000,000,000"),
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
         "row 1, column 'valid_to': got '2025-03-01 00:00:00+00:00', expected a time later "
         "than valid_from (2026-01-01T00:00:00+00:00)"),
        (OFFERS_YAML.replace("offer_id: coffee-guide", "offer_id: voucher-5"),
         "row 2, column 'offer_id'"),
        (OFFERS_YAML.replace("    value: 0\n", ""), "row 2, column 'value': got <missing>"),
        (OFFERS_YAML.replace("max_per_user: 2", "max_per_usr: 2"),
         "row 1, column 'max_per_usr': got '2', expected a known field (did you mean "
         "'max_per_user'?); the fields accepted here are offer_id, kind, value, cost"),
        (OFFERS_YAML.replace("cost: 5", "cost: .inf"),
         "row 1, column 'cost': got 'inf', expected input should be a finite number"),
        (OFFERS_YAML.replace("value: 0", "value: .nan"), "row 2, column 'value': got 'nan'"),
        (OFFERS_YAML.replace("min_order_value: 15", "min_order_value: -.inf"),
         "row 1, column 'min_order_value': got '-inf', expected input should be a finite"),
        (OFFERS_YAML + "    eligibility: {segments: [buyer, 'contry:FR']}\n",
         "row 2, column 'eligibility.segments.1': got 'contry:FR', expected a segment nbo "
         "gives users: buyer, prospect, app or country:XX"),
        (OFFERS_YAML + "    eligibility: {segmets: [buyer]}\n",
         "row 2, column 'eligibility.segmets': got \"['buyer']\", expected a known field (did "
         "you mean 'segments'?); the fields accepted here are lifecycle_stages, segments"),
    ],
)
def test_a_malformed_offer_file_is_reported(tmp_path: Path, offers: str, expected: str) -> None:
    report = validate_dataset(write_dataset(tmp_path, offers=offers))
    assert not report.ok
    text = "\n".join(report.lines())
    assert str(tmp_path / "offers.yaml") in text
    assert expected in text


def test_an_offer_with_a_typo_is_left_out_and_the_others_are_read(tmp_path: Path) -> None:
    """A typo'd field would publish a laxer offer than meant (no cap, no budget): the offer
    is reported and left out, as any invalid offer, and the valid ones are published."""
    text = OFFERS_YAML.replace("max_per_user: 2", "max_per_user: 2\n    budjet: 100")
    offers, check = read_offers(write_dataset(tmp_path, offers=text) / "offers.yaml")
    assert [offer.offer_id for offer in offers] == ["coffee-guide"]
    assert type(offers[0]) is Offer  # as the catalog reads it back, so the two compare equal
    assert (check.rows, check.invalid_rows, check.problem_count) == (2, 1, 1)


def test_segments_of_every_form_the_engine_gives_are_accepted(tmp_path: Path) -> None:
    segments = "[buyer, prospect, app, 'country:FR', 'country:JP']"
    text = OFFERS_YAML + f"    eligibility: {{segments: {segments}}}\n"
    offers, check = read_offers(write_dataset(tmp_path, offers=text) / "offers.yaml")
    assert check.ok, [str(problem) for problem in check.shown]
    assert offers[1].eligibility.segments == ["buyer", "prospect", "app", "country:FR",
                                              "country:JP"]


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("user_id", "u" * 129, "a non-empty string of at most 128 characters, without control "
     "characters"),
    ("category", "x" * 257, "a non-empty string of at most 256 characters"),
    ("brand", "ka\x00lo", "without control characters"),
])
def test_absurd_and_broken_text_is_a_bad_cell(tmp_path: Path, column: str, value: str,
                                              expected: str) -> None:
    events = _replace_cell(EVENTS_CSV, line=4, column=column, value=value)
    report = validate_dataset(write_dataset(tmp_path, events=events))
    lines = report.lines()
    assert len(lines) == 1, lines
    assert f"row 3 (line 4), column '{column}'" in lines[0] and expected in lines[0]


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


@pytest.mark.parametrize("zone", ["Factory", "localtime"])
def test_a_zone_that_names_no_place_is_refused(tmp_path: Path, zone: str) -> None:
    """The system lists them, but the batch pass cannot compute local hours in them."""
    users = _replace_cell(USERS_CSV, line=2, column="timezone", value=zone)
    report = validate_dataset(write_dataset(tmp_path, users=users))
    assert not report.ok
    assert any("column 'timezone'" in line and repr(zone) in line for line in report.lines())


def test_offer_amounts_are_numbers_as_written_in_yaml(tmp_path: Path) -> None:
    """`1e4` is a number (YAML 1.1 wants a dot, and read it as text, which the strict
    amounts refused); `no` and a quoted number are not."""
    text = OFFERS_YAML.replace("min_order_value: 15", "min_order_value: 1.5e1\n    budget: 1e4")
    offers, check = read_offers(write_dataset(tmp_path, offers=text) / "offers.yaml")
    assert check.ok, [str(problem) for problem in check.shown]
    voucher = next(offer for offer in offers if offer.offer_id == "voucher-5")
    assert (voucher.min_order_value, voucher.budget) == (15.0, 10_000.0)
    for wrong in ("budget: no", 'budget: "100"'):
        text = OFFERS_YAML.replace("max_per_user: 2", f"max_per_user: 2\n    {wrong}")
        offers, check = read_offers(write_dataset(tmp_path / wrong[-3:], offers=text)
                                    / "offers.yaml")
        assert [offer.offer_id for offer in offers] == ["coffee-guide"], wrong


def test_leading_zeros_and_colons_do_not_change_a_yaml_number(tmp_path: Path) -> None:
    """YAML 1.1 read `010` as octal 8 and `1:30` as 90 (base 60), silently: YAML 1.2 (and
    JSON) reads the first as ten, and the second is text, which an amount refuses."""
    text = OFFERS_YAML.replace("max_per_user: 2", "max_per_user: 010\n    budget: 0100")
    offers, check = read_offers(write_dataset(tmp_path, offers=text) / "offers.yaml")
    assert check.ok, [str(problem) for problem in check.shown]
    voucher = next(offer for offer in offers if offer.offer_id == "voucher-5")
    assert (voucher.max_per_user, voucher.budget) == (10, 100.0)
    text = OFFERS_YAML.replace("max_per_user: 2", "max_per_user: 0o10\n    budget: 0x10")
    offers, check = read_offers(write_dataset(tmp_path / "prefixed", offers=text)
                                / "offers.yaml")
    voucher = next(offer for offer in offers if offer.offer_id == "voucher-5")
    assert check.ok and (voucher.max_per_user, voucher.budget) == (8, 16.0)  # YAML 1.2's
    for wrong in ("1:30", "1_000"):
        text = OFFERS_YAML.replace("min_order_value: 15", f"min_order_value: {wrong}")
        offers, check = read_offers(write_dataset(tmp_path / wrong[-2:], offers=text)
                                    / "offers.yaml")
        assert [offer.offer_id for offer in offers] == ["coffee-guide"], wrong
        assert any("min_order_value" in str(problem) for problem in check.shown), wrong
