"""The `nbo` command line: a thin shell over the packages that do the work."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from features.contract.tables import DEFAULT_PROBLEM_LIMIT
from features.contract.validate import validate_dataset
from training.synthetic.world import FORMATS, generate_world

app = typer.Typer(help="nbo: next-best-offer decisions for CRM teams.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory to write the world into.")],
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 10_000,
    days: Annotated[int, typer.Option(min=1, help="Length of the event window in days.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 1,
    start: Annotated[str, typer.Option(help="First day of the window (UTC, YYYY-MM-DD).")] = (
        "2026-01-05"),
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = (
        "parquet"),
) -> None:
    """Generate a synthetic CRM world and its ground truth."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        first_day = date.fromisoformat(start)
    except ValueError as error:
        raise typer.BadParameter("expected a date as YYYY-MM-DD", param_hint="--start") from error
    began = time.perf_counter()
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("simulating users", total=users)
        summary = generate_world(out, users, days, seed, first_day, fmt,
                                 progress=lambda n: progress.advance(task, n))
    elapsed = time.perf_counter() - began
    console.print(f"wrote {summary.users:,} users, {summary.events:,} events over "
                  f"{summary.days} days to {out} in {elapsed:.1f}s")


@app.command()
def validate(
    directory: Annotated[Path, typer.Argument(help="The data set's directory.")],
    max_problems: Annotated[int, typer.Option(min=1, help="Problems shown per file.")] = (
        DEFAULT_PROBLEM_LIMIT),
) -> None:
    """Check a data set against the data contract: exit 0 if valid, 2 if not."""
    report = validate_dataset(directory, max_problems)
    for line in report.lines():
        typer.echo(line)
    for note in report.notes:
        console.print(f"note: {note}")
    for check in report.checks:
        status = "ok" if check.ok else f"{check.problem_count} problems"
        console.print(f"{check.path}: {check.rows:,} rows, {status}")
    if not report.ok:
        raise typer.Exit(code=2)
    console.print(f"{directory}: valid")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the demo world.")] = Path(
        ".nbo/world"),
    users: Annotated[int, typer.Option(min=1)] = 10_000,
    days: Annotated[int, typer.Option(min=1)] = 60,
    seed: int = 1,
) -> None:
    """Generate a world and validate it (training and serving join as they land)."""
    generate(out=out, users=users, days=days, seed=seed)
    validate(directory=out)


if __name__ == "__main__":
    app()
