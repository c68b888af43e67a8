import codecs
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.contract.schema import EVENTS, USERS
from features.contract.tables import load_table
from features.pipeline import load_features
from nbo.errors import DataContractError
from tests.features.contract.conftest import EVENTS_CSV, write_dataset


def _csv_to(fmt: str, directory: Path) -> None:
    """Rewrite events.csv of `directory` as Parquet or JSON Lines with string cells."""
    frame = pl.read_csv(directory / "events.csv", infer_schema=False)
    (directory / "events.csv").unlink()
    if fmt == "parquet":
        frame.write_parquet(directory / "events.parquet")
    else:
        lines = [json.dumps({k: v for k, v in row.items() if v is not None})
                 for row in frame.iter_rows(named=True)]
        (directory / "events.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_format_loads_to_the_same_typed_events(tmp_path: Path, fmt: str) -> None:
    directory = write_dataset(tmp_path)
    if fmt != "csv":
        _csv_to(fmt, directory)
    loaded = load_table(directory, EVENTS)
    events = loaded.frame
    assert events.schema["ts"] == pl.Datetime("us", "UTC")
    assert events["ts"].to_list()[:5] == [
        datetime(2026, 1, 5, 9, 0, tzinfo=UTC),  # +01:00 offset
        datetime(2026, 1, 5, 9, 5, tzinfo=UTC),  # Z
        datetime(2026, 1, 5, 9, 10, tzinfo=UTC),  # epoch seconds
        datetime(2026, 1, 5, 9, 10, tzinfo=UTC),  # epoch milliseconds
        datetime(2026, 1, 6, 13, 0, 0, 250_000, tzinfo=UTC),  # -05:00 with fractions
    ]
    assert loaded.duplicates_dropped == 1
    assert events["event_id"].to_list() == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert events["quantity"].to_list()[2:4] == [2, -1]  # the return is kept
    assert events["source"].to_list()[0] == "tracker"  # unknown columns are kept
    assert events["propensity"].to_list()[4] == 0.25


def test_bad_rows_are_left_out_and_good_ones_kept(tmp_path: Path) -> None:
    events = EVENTS_CSV + "e7,u9,soon,view,,,,,,,,,,,\ne8,u9,2026-01-08T00:00:00Z,fly,,,,,,,,,,,\n"
    events += "e9,u9,2026-01-08T00:00:00Z,view,i1,coffee,,1.5,,in_app,,,,,\n"
    loaded = load_table(write_dataset(tmp_path, events=events), EVENTS)
    assert loaded.invalid_rows == 2
    assert loaded.frame.filter(pl.col("user_id") == "u9")["event_id"].to_list() == ["e9"]
    assert loaded.checks[0].problem_count == 2


def test_users_parse_consents_and_absent_columns_become_typed_nulls(dataset: Path) -> None:
    users = load_table(dataset, USERS).frame
    assert users["consent_email"].to_list() == [True, True, True]
    assert users["consent_sms"].to_list() == [False, False, None]
    assert users.schema["consent_push"] == pl.Boolean
    assert users["consent_push"].null_count() == 3


def test_part_files_of_a_table_are_read_together(tmp_path: Path) -> None:
    directory = write_dataset(tmp_path)
    (directory / "events.csv").unlink()
    (directory / "events").mkdir()
    lines = EVENTS_CSV.splitlines()
    (directory / "events" / "part-0.csv").write_text("\n".join(lines[:4]) + "\n")
    (directory / "events" / "part-1.csv").write_text("\n".join([lines[0], *lines[4:]]) + "\n")
    assert load_table(directory, EVENTS).frame.height == 6


def test_missing_required_table_raises_a_contract_error(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    with pytest.raises(DataContractError, match="no events file"):
        load_table(tmp_path, EVENTS)


def test_only_the_asked_columns_and_the_key_are_kept(dataset: Path) -> None:
    loaded = load_table(dataset, EVENTS, columns=("user_id", "ts", "quantity"))
    assert loaded.frame.columns == ["user_id", "ts", "quantity", "event_id"]
    assert loaded.frame.height == 6 and loaded.duplicates_dropped == 1


def _users(directory: Path, frame: pl.DataFrame | None = None, raw: bytes | None = None,
           suffix: str = "parquet") -> Path:
    """The data set with its users table replaced by `frame` (Parquet) or `raw` bytes."""
    (directory / "users.csv").unlink()
    path = directory / f"users.{suffix}"
    if frame is not None:
        frame.write_parquet(path)
    else:
        path.write_bytes(raw or b"")
    return path


def test_a_list_or_a_stray_byte_in_a_jsonl_row_is_named_and_the_rest_loads(
        tmp_path: Path) -> None:
    directory = write_dataset(tmp_path)
    raw = (b'{"user_id": "u1", "country": "FR"}\n'
           b'{"user_id": ["u2"], "country": "US"}\n'
           b'{"user_id": "u3", "country": "J\xc9"}\n'
           b'{"user_id": "u4", "country": "DE"}\n')
    path = _users(directory, raw=raw, suffix="jsonl")
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u4"]
    shown = [str(problem) for problem in loaded.checks[0].shown]
    assert shown[0].startswith(f"{path}: row 2, column 'user_id'")
    assert "not a list or an object" in shown[0]
    assert shown[1].startswith(f"{path}: row 3, column 'country'")
    assert "UTF-8" in shown[1] and "\\xc9" in shown[1]


def test_a_list_or_an_object_beside_text_in_jsonl_is_not_taken_as_its_json(
        tmp_path: Path) -> None:
    """Polars reads a key holding text in some records and a list or an object in others
    as text: the user `["u2"]` was loaded."""
    directory = write_dataset(tmp_path)
    path = _users(directory, suffix="jsonl", raw=(
        b'{"user_id": "u1", "country": "FR"}\n{"user_id": ["u2"]}\n'
        b'{"user_id": "[u3]", "country": {"code": "JP"}}\n{"user_id": "{u4}"}\n'))
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "{u4}"]  # text that starts alike
    assert [(problem.row, problem.column) for problem in loaded.checks[0].shown] == [
        (2, "user_id"), (3, "country")]
    assert str(loaded.checks[0].shown[0]).startswith(f"{path}: row 2, column 'user_id'")


def test_a_stray_byte_in_a_csv_row_is_named_and_the_rest_loads(tmp_path: Path) -> None:
    directory = write_dataset(tmp_path)
    raw = b"user_id,country\nu1,FR\nu\xff2,US\nu3,JP\n"
    path = _users(directory, raw=raw, suffix="csv")
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u3"]
    [problem] = [str(problem) for problem in loaded.checks[0].shown]
    assert problem.startswith(f"{path}: row 2 (line 3), column 'user_id'")
    assert "UTF-8" in problem and "\\xff" in problem


def test_parquet_lists_and_bytes_are_named_and_the_rest_loads(tmp_path: Path) -> None:
    directory = write_dataset(tmp_path)
    frame = pl.DataFrame({
        "user_id": ["u1", "u2", "u3"],
        "country": [b"FR", b"\xff\xfe", b"JP"],  # bytes: UTF-8 ones read as text
        "timezone": pl.Series([None, None, ["Asia/Tokyo"]], dtype=pl.List(pl.String)),
    })
    path = _users(directory, frame=frame)
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1"]
    assert loaded.frame["country"].to_list() == ["FR"]
    shown = sorted(str(problem) for problem in loaded.checks[0].shown)
    assert shown[0].startswith(f"{path}: row 2, column 'country'") and "UTF-8" in shown[0]
    assert shown[1].startswith(f"{path}: row 3, column 'timezone'")
    assert "not a list" in shown[1]
    assert loaded.invalid_rows == 2


def test_blank_lines_and_lines_of_empty_fields_are_skipped(tmp_path: Path) -> None:
    directory = write_dataset(tmp_path)
    _users(directory, raw=b"user_id,country\nu1,FR\n\nu2,US\n,\n\n", suffix="csv")
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u2"]
    assert loaded.checks[0].ok
    broken = write_dataset(tmp_path / "broken")  # the slow reader, for a broken line
    _users(broken, raw=b"user_id,country\nu1,FR\n\nu2,US,extra\n,\nu3,JP\n\n", suffix="csv")
    loaded = load_table(broken, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u3"]
    [problem] = [str(problem) for problem in loaded.checks[0].shown]
    assert "row 3 (line 4)" in problem and "2 comma-separated fields, found 3" in problem


def test_lines_of_blanks_are_skipped_by_both_readers(tmp_path: Path) -> None:
    """As a blank field is empty: a line of spaces was a row with a user id of spaces."""
    directory = write_dataset(tmp_path)
    _users(directory, raw=b"user_id,country\nu1,FR\n  \n \t, \nu2,US\n", suffix="csv")
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u2"] and loaded.checks[0].ok
    broken = write_dataset(tmp_path / "broken")
    _users(broken, raw=b"user_id,country\nu1,FR\n  \nu2,US,extra\n \t, \nu3,JP\n", suffix="csv")
    loaded = load_table(broken, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u3"]
    [problem] = [str(problem) for problem in loaded.checks[0].shown]
    assert "row 3 (line 4)" in problem


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path, suffix: str) -> None:
    """Excel's "CSV UTF-8" starts with one: the slow readers (a bad row beside) read it into
    the first column's name, or the first record, and lost every row or the first."""
    directory = write_dataset(tmp_path)
    rows = (b"user_id,country\nu1,FR\nu2,US,extra\nu3,JP\n" if suffix == "csv" else
            b'{"user_id": "u1", "country": "FR"}\n{"user_id": ["u2"]}\n'
            b'{"user_id": "u3", "country": "JP"}\n')
    _users(directory, raw=codecs.BOM_UTF8 + rows, suffix=suffix)
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u3"]
    assert [problem.row for problem in loaded.checks[0].shown] == [2]


@pytest.mark.parametrize("rows", [b"u1,coffee,tea\n", b"u1,coffee,tea\nu2,x,y,extra\n"])
def test_a_header_naming_a_column_twice_is_refused_by_both_readers(
        tmp_path: Path, rows: bytes) -> None:
    """The fast reader renamed the second `category_duplicated_0`, the first won."""
    directory = write_dataset(tmp_path)
    path = _users(directory, raw=b"user_id,country,country\n" + rows, suffix="csv")
    loaded = load_table(directory, USERS)
    assert loaded.frame.height == 0
    assert [str(problem) for problem in loaded.checks[0].shown] == [
        f"{path}: expected a UTF-8 header line naming each column once"]


def test_part_files_in_partitions_and_any_case_are_read_and_others_named(
        tmp_path: Path) -> None:
    """Files nbo does not read were skipped without a word, and their rows lost."""
    directory = write_dataset(tmp_path)
    (directory / "users.csv").unlink()
    parts = directory / "users"
    (parts / "country=FR").mkdir(parents=True)
    (parts / "part-0.csv").write_text("user_id,country\nu1,FR\n")
    (parts / "part-1.CSV").write_text("user_id,country\nu2,US\n")
    (parts / "country=FR" / "part-2.csv").write_text("user_id,country\nu3,FR\n")
    (parts / "part-3.csv.gz").write_bytes(b"\x1f\x8b")
    (parts / "_SUCCESS").write_text("")  # a writer's marks, not the table's
    (parts / ".part-0.csv.crc").write_text("")
    loaded = load_table(directory, USERS)
    assert sorted(loaded.frame["user_id"].to_list()) == ["u1", "u2", "u3"]
    problems = [str(problem) for check in loaded.checks for problem in check.shown]
    assert problems == [f"{parts / 'part-3.csv.gz'}: expected a table file nbo reads: .csv, "
                        ".parquet, .jsonl, .ndjson (compressed files are not read: decompress "
                        "them)"]


def test_linked_partitions_are_read_and_a_broken_link_is_named(tmp_path: Path) -> None:
    """Path.rglob follows no linked directory, and a broken link is no file: both were
    left out without a word."""
    directory = write_dataset(tmp_path)
    (directory / "users.csv").unlink()
    parts = directory / "users"
    parts.mkdir()
    (parts / "part-0.csv").write_text("user_id,country\nu1,FR\n")
    elsewhere = tmp_path / "elsewhere" / "country=US"
    elsewhere.mkdir(parents=True)
    (elsewhere / "part-1.csv").write_text("user_id,country\nu2,US\n")
    (parts / "country=US").symlink_to(elsewhere)
    (elsewhere / "loop").symlink_to(parts)  # walked once
    (parts / "part-2.csv").symlink_to(tmp_path / "gone.csv")
    loaded = load_table(directory, USERS)
    assert sorted(loaded.frame["user_id"].to_list()) == ["u1", "u2"]
    assert [str(problem) for check in loaded.checks for problem in check.shown] == [
        f"{parts / 'part-2.csv'}: expected a readable file (No such file or directory)"]


def test_a_stray_file_in_a_folder_named_like_a_table_is_not_the_table(
        tmp_path: Path) -> None:
    """A README in users/ beside users.csv made the table "given twice"."""
    directory = write_dataset(tmp_path)
    (directory / "users").mkdir()
    (directory / "users" / "README.md").write_text("exported nightly\n")
    assert load_table(directory, USERS).frame.height == 3


@pytest.mark.parametrize("extra", ["", "u4,DE,x,y,z\n"])  # the fast reader, the slow one
def test_columns_without_a_name_are_left_out(tmp_path: Path, extra: str) -> None:
    """A spreadsheet's trailing empty cells: the whole file was refused as naming a column
    twice."""
    directory = write_dataset(tmp_path)
    _users(directory, raw=f"user_id,country,,\nu1,FR,,\nu2,US,,\n,,x,\n{extra}".encode(),
           suffix="csv")
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u2"]
    assert "" not in loaded.frame.columns and "_duplicated_0" not in loaded.frame.columns
    assert [problem.row for problem in loaded.checks[0].shown] == ([4] if extra else [])


def test_a_stray_quote_in_a_header_loses_no_row_unsaid(tmp_path: Path) -> None:
    """Polars read a quote inside a name as opening a field to the end of the file: no
    row, and no problem said; one opening a name and never closed is a broken header."""
    directory = write_dataset(tmp_path)
    _users(directory, raw=b'user_id,country,note"\nu1,FR,a\nu2,US,b\n', suffix="csv")
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u2"] and loaded.checks[0].ok
    opened = write_dataset(tmp_path / "open")
    path = _users(opened, raw=b'"user_id,country,note\nu1,FR,a\nu2,US,b\n', suffix="csv")
    loaded = load_table(opened, USERS)
    assert [str(problem) for problem in loaded.checks[0].shown] == [
        f"{path}: expected a UTF-8 header line naming each column once"]


def test_a_naive_cut_off_is_utc_whatever_the_machine_s_zone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """astimezone reads a naive time as the machine's: the cut-off moved by its offset."""
    directory = write_dataset(tmp_path)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        naive = load_features(directory, datetime(2026, 1, 6, 12, 0))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert naive.anchor == datetime(2026, 1, 6, 12, 0, tzinfo=UTC)


def test_a_duration_in_parquet_is_named_as_any_wrong_value(tmp_path: Path) -> None:
    """Polars casts a duration to nothing, not even text: checking one ended in a
    traceback."""
    directory = write_dataset(tmp_path)
    frame = pl.DataFrame({"user_id": ["u1", "u2"], "country": ["FR", "US"],
                          "signup_ts": [None, timedelta(days=3, seconds=5)],
                          "tenure": [timedelta(days=1), None]})  # an extra column, kept
    path = _users(directory, frame=frame)
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1"]
    assert loaded.frame["tenure"].to_list() == ["P1D"]
    [problem] = loaded.checks[0].shown
    assert (problem.file, problem.row, problem.column, problem.value) == (
        path, 2, "signup_ts", "P3DT5S")


def test_part_files_whose_extra_columns_differ_in_type_load_as_text(tmp_path: Path) -> None:
    """Times with a zone in one part and without in another ended loading in a traceback
    (polars finds no type for both), after `nbo validate` had said the set was valid."""
    directory = write_dataset(tmp_path)
    (directory / "users.csv").unlink()
    (directory / "users").mkdir()
    for part, (user, login, vip) in enumerate([
            ("u1", datetime(2026, 1, 1, tzinfo=UTC), True),
            ("u2", datetime(2026, 1, 2), date(2026, 1, 2))]):
        pl.DataFrame({"user_id": [user], "last_login": [login], "vip": [vip]}).write_parquet(
            directory / "users" / f"part-{part}.parquet")
    loaded = load_table(directory, USERS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u2"]
    assert loaded.frame.schema["last_login"] == loaded.frame.schema["vip"] == pl.String
    assert loaded.frame["vip"].to_list() == ["true", "2026-01-02"]


def test_an_event_id_repeats_only_within_one_user(tmp_path: Path) -> None:
    """As the live path keeps them: two users' events that share an id are both kept."""
    header = EVENTS_CSV.splitlines()[0]
    rows = ["u1,2026-01-05T09:00:00Z,view", "u2,2026-01-05T09:01:00Z,view",
            "u1,2026-01-05T09:02:00Z,view"]
    columns = header.split(",")
    lines = [header] + [",".join({"event_id": "same", "user_id": user, "ts": ts,
                                  "event_type": kind}.get(name, "")
                                 for name in columns)
                        for user, ts, kind in (row.split(",") for row in rows)]
    directory = write_dataset(tmp_path, events="\n".join(lines) + "\n")
    loaded = load_table(directory, EVENTS)
    assert loaded.frame["user_id"].to_list() == ["u1", "u2"]
    assert loaded.duplicates_dropped == 1
