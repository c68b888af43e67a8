"""The `nbo` command line: a thin shell over the packages that do the work."""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import orjson
import polars as pl
import redis
import typer
import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from api.auth import ApiKeys
from api.metrics import MULTIPROCESS_DIR
from decisions.catalog import OfferCatalog, offers_to_publish
from features.contract.files import FORMATS
from features.contract.offers import offers_file
from features.contract.problems import validation_message
from features.contract.schema import EVENTS
from features.contract.tables import DEFAULT_PROBLEM_LIMIT, load_table
from features.contract.validate import validate_dataset
from features.pipeline import as_utc, load_features
from features.session import SessionContext
from features.store.export import export_events
from features.store.redis_store import open_store
from models.registry import ModelRegistry
from nbo.errors import DataContractError, NboError, RedisUnavailableError
from nbo.redis_server import connect, redis_url
from nbo.settings import Settings, get_settings
from nbo.workers import ensure_free, serve_workers
from training.affinity.als import Factorization
from training.sample import MAX_TRAINING_USERS
from training.synthetic.world import generate_world
from training.train import summary
from training.train import train as run_training

app = typer.Typer(help="nbo: next-best-offer decisions for CRM teams.", no_args_is_help=True)
events_app = typer.Typer(help="The live events kept in the store.", no_args_is_help=True)
app.add_typer(events_app, name="events")
models_app = typer.Typer(help="Registered model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
ModelsDir = Annotated[Path, typer.Option("--models", file_okay=False,
                                          help="The model registry's directory.")]
console = Console(stderr=True, markup=False)  # names and messages printed as they are


@app.command()
def generate(
    out: Annotated[Path, typer.Option(file_okay=False,
                                      help="Directory to write the world into.")],
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 10_000,
    days: Annotated[int, typer.Option(min=1, help="Length of the event window in days.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 1,
    start: Annotated[str, typer.Option(help="First day of the window (UTC, YYYY-MM-DD).")] = (
        "2026-01-05"),
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = (
        "parquet"),
    activity: Annotated[float, typer.Option(
        min=0.01, help="How often users browse, relative to the default world (0.11: about 20 "
        "events per user over 50 days, for sparse data at scale).")] = 1.0,
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
                                 progress=lambda n: progress.advance(task, n), activity=activity)
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
def publish(
    directory: Annotated[Path, typer.Argument(help="The data set's directory.")],
    version: Annotated[str | None, typer.Option(
        help="Version name, without ':' (default: a UTC time).")] = None,
    as_of: Annotated[str | None, typer.Option(
        help="Cut-off (ISO 8601; default: the last event's time).")] = None,
    models: Annotated[Path | None, typer.Option(
        help="The model registry: also choose the model version the API serves.")] = None,
    model_version: Annotated[str | None, typer.Option(
        help="The model version to serve (with --models; default: the promoted one, else "
             "the newest).")] = None,
) -> None:
    """Compute every user's features and switch the store to them atomically; load the
    data set's offers (if any) into the offer catalog; with --models, promote the model
    version to serve (running APIs switch on POST /v1/models/reload)."""
    cut_off = _timestamp(as_of, "--as-of") if as_of else None
    if model_version and models is None:
        raise typer.BadParameter("needs --models, the registry it is in",
                                 param_hint="--model-version")
    began = time.perf_counter()
    with _errors_as_exit_codes():  # everything checked before anything served changes
        served = None if models is None else _model_to_serve(models, model_version)
        batch = load_features(directory, cut_off)
        computed = time.perf_counter() - began
        found = offers_file(directory)
        offers, check = offers_to_publish(found) if found else ([], None)
        report = open_store().publish(batch, version)
        if check is not None:
            catalog_version = OfferCatalog(connect()).replace_all(offers)
            console.print(f"offer catalog version {catalog_version} from {found}"
                          + ("" if check.ok else f" ({check.invalid_rows} invalid offers "
                             "left out: nbo validate lists them)"))
        if served is not None:
            registry, chosen = served
            if chosen != registry.promoted():
                registry.promote(chosen)
            console.print(f"serving model version {chosen}")
    console.print(f"features of {report.users:,} users as of {batch.anchor:%Y-%m-%d %H:%M} "
                  f"UTC computed in {computed:.1f}s, published as {report.version} in "
                  f"{report.seconds:.1f}s ({report.replayed:,} live events carried over"
                  f"{', removed ' + ', '.join(report.removed) if report.removed else ''})")


def _model_to_serve(models: Path, version: str | None) -> tuple[ModelRegistry, str]:
    """The registry and its version to serve, checksums verified: `version`, else the
    promoted one, else the newest (promoted once the rest of the publish has gone well)."""
    registry = _registry(models)
    chosen = version or registry.promoted() or next(reversed(registry.versions()), None)
    if chosen is None:
        raise NboError(f"no model version in {models}: run `nbo train DIR --models {models}`")
    registry.verify(chosen)  # promoted already maybe from another registry: this one's, whole
    return registry, chosen


def _check_settings() -> None:
    """End the command (exit 2, each problem named) on any bad NBO_ setting, the API keys'
    roles included, which only `ApiKeys` checks."""
    with _errors_as_exit_codes():
        ApiKeys(get_settings().api_keys)


@contextmanager
def _errors_as_exit_codes() -> Iterator[None]:
    """nbo's own errors end the command with their message and exit code, no traceback."""
    try:
        yield
    except NboError as error:
        console.print(f"error: {error}")
        raise typer.Exit(code=error.exit_code) from error
    except redis.RedisError as error:
        console.print(f"error: Redis did not answer ({type(error).__name__}: {error}); check "
                      "NBO_REDIS_URL, or leave it unset to use the embedded server")
        raise typer.Exit(code=RedisUnavailableError.exit_code) from error
    except OSError as error:  # a path that cannot be used (a file, not a directory; no
        # permission; a full disk): the input's fault or the machine's, told, exit 2
        console.print(f"error: {error}")
        raise typer.Exit(code=DataContractError.exit_code) from error
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        console.print(f"error: {settings_problems(error)}")
        raise typer.Exit(code=DataContractError.exit_code) from error
    except SettingsError as error:  # a variable that is not JSON where JSON is wanted
        field = re.search(r'field "(\w+)"', str(error))
        name = f"NBO_{field.group(1).upper()}" if field else "an NBO_ variable"
        console.print(f"error: {name} is not valid JSON (its value is not shown: it may "
                      "hold secrets)")
        raise typer.Exit(code=DataContractError.exit_code) from error


def settings_problems(error: ValidationError) -> str:
    """What is wrong with the settings, each problem under its NBO_ variable's name."""
    told = []
    for problem in error.errors():
        name = f"NBO_{str(problem['loc'][0]).upper()}"
        where = name + "".join(f"[{part}]" for part in problem["loc"][1:])
        message = validation_message(problem["msg"])
        told.append(message if message.startswith(name) else f"{where}: {message}")
    return "; ".join(told)


_STREAM_ID = re.compile(r"-|\d+(-\d+)?")  # where `nbo events export --after` starts


def _timestamp(text: str, hint: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise typer.BadParameter("expected an ISO 8601 time such as 2026-03-01T00:00Z",
                                 param_hint=hint) from error
    return as_utc(moment)


@events_app.command("export")
def events_export(
    directory: Annotated[Path, typer.Argument(file_okay=False,
                                              help="Where to write events/live-*.FORMAT.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = (
        "parquet"),
    after: Annotated[str, typer.Option(help="Only events logged after this id.")] = "-",
) -> None:
    """Write the live events kept in Redis as a data contract events table."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}", param_hint="--format")
    if not _STREAM_ID.fullmatch(after):
        raise typer.BadParameter("expected '-' (from the start) or a stream id such as "
                                 "1767225600000-0, as the last export printed",
                                 param_hint="--after")
    with _errors_as_exit_codes():
        report = export_events(open_store(), directory, fmt, after)
    if report.path is None:
        console.print(f"no event logged after {after}: nothing written")
        return
    console.print(f"wrote {report.events:,} events to {report.path}"
                  + (f" (last id {report.last_id}; --after {report.last_id} continues)"
                     if report.last_id else ""))


@app.command()
def train(
    directory: Annotated[Path, typer.Argument(help="The data set's directory.")],
    models: ModelsDir,
    seed: Annotated[int, typer.Option(help="Random seed; the same data and seed, the "
                                            "same metrics.")] = 0,
    factorization: Annotated[Factorization, typer.Option(
        help="Collaborative filtering for categories, brands and items: implicit's ALS, "
             "or BPR (Bayesian personalized ranking).")] = "als",
    max_users: Annotated[int, typer.Option(
        min=0, help="Train on a seeded sample of this many users when the data has more "
             "(0: every user).")] = MAX_TRAINING_USERS,
) -> None:
    """Evaluate every model on a time split, refit on all data, register a version."""
    columns = (SpinnerColumn(finished_text="done"), TextColumn("{task.description:<34}"),
               BarColumn(), TimeElapsedColumn())
    with _errors_as_exit_codes(), Progress(*columns, console=console) as progress:
        stages: list[TaskID] = []

        def next_stage(name: str) -> None:
            if stages:
                progress.update(stages[-1], total=1, completed=1)
            stages.append(progress.add_task(name, total=None))

        version = run_training(directory, _registry(models), seed, report=next_stage,
                               factorization=factorization, max_users=max_users)
        if stages:
            progress.update(stages[-1], total=1, completed=1)
    if not console.is_terminal:  # logs get the seconds the bars showed
        for stage, seconds in version.meta["timings_s"].items():
            console.print(f"{stage}: {seconds:.1f}s")
    console.print(f"registered {version.version} in {models}; promote it with "
                  f"nbo models promote {version.version} --models {models}")
    typer.echo(summary(version))


def _registry(models: Path) -> ModelRegistry:
    return ModelRegistry(models, connect())


@models_app.command("list")
def models_list(models: ModelsDir) -> None:
    """The registered versions, the promoted one marked."""
    with _errors_as_exit_codes():
        registry = _registry(models)
        promoted = registry.promoted()
    for version in registry.versions():
        typer.echo(f"{'*' if version == promoted else ' '} {version}")


@models_app.command("promote")
def models_promote(version: Annotated[str, typer.Argument()], models: ModelsDir) -> None:
    """Serve VERSION (after checking its files)."""
    with _errors_as_exit_codes():
        _registry(models).promote(version)
    console.print(f"promoted {version}")


@models_app.command("rollback")
def models_rollback(models: ModelsDir) -> None:
    """Serve the version promoted before the current one."""
    with _errors_as_exit_codes():
        version = _registry(models).rollback()
    console.print(f"rolled back to {version}")


APP = "api.app:create_app"  # the app factory every worker calls


def _exit_on_signal(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


@app.command()
def serve(
    models: Annotated[Path | None, typer.Option(
        file_okay=False, help="The model registry (default: NBO_MODELS_DIR).")] = None,
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the decision API (OpenAPI at /docs)."""
    if models is not None:
        os.environ["NBO_MODELS_DIR"] = str(models)  # read by every worker's create_app
        get_settings.cache_clear()
    _check_settings()  # a bad NBO_ value stops here, not in each worker
    with _errors_as_exit_codes():
        ensure_free(host, port)  # before starting anything
        redis_url()  # start the embedded server once, before the workers share it
    if workers == 1:
        # uvicorn shuts down gracefully on SIGTERM, then raises it again: exit then, so that
        # the embedded Redis this process started is stopped (atexit), as on Ctrl-C
        signal.signal(signal.SIGTERM, _exit_on_signal)
        uvicorn.run(APP, factory=True, host=host, port=port, log_level="warning",
                    access_log=False)
        return
    with tempfile.TemporaryDirectory(prefix="nbo-metrics-") as shared, _errors_as_exit_codes():
        os.environ[MULTIPROCESS_DIR] = shared  # every worker's metrics in one /metrics
        serve_workers(APP, host, port, workers)  # nbo/workers.py: one socket per worker


def _with_open_cart(world: Path) -> str | None:
    """The first user whose cart is still open, with its categories known, at the world's
    end: the cart journey's example."""
    events = load_table(world, EVENTS, columns=(
        "user_id", "ts", "event_type", "category", "price", "quantity")).frame
    carts = SessionContext.batch(events).filter(
        (pl.col("cart_value") > 0) & (pl.col("cart_lines").list.len() > 0))
    return str(carts["user_id"].min()) if carts.height else None


def _examples(world: Path, port: int) -> list[str]:
    users = pl.read_parquet(world / "users.parquet", columns=["user_id"])["user_id"]
    first, batch = users[0], users.head(3).to_list()
    carted = _with_open_cart(world) or first
    base = f"http://127.0.0.1:{port}"
    body = orjson.dumps({"user_ids": batch, "campaign_id": "spring"}).decode()
    return [f"curl '{base}/v1/users/{carted}/decision?journey=cart_abandoned&explain=true'",
            f"curl -X POST {base}/v1/decisions -H 'Content-Type: application/json' "
            f"-d '{body}'",
            f"curl '{base}/v1/users/{first}/blocks/offer?campaign_id=spring'",
            f"curl '{base}/v1/offers'", f"open {base}/docs"]


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the demo world.")] = Path(
        ".nbo/world"),
    models: Annotated[Path, typer.Option(help="Where to keep the model versions.")] = Path(
        ".nbo/models"),
    users: Annotated[int, typer.Option(min=1)] = 10_000,
    days: Annotated[int, typer.Option(min=50, help="Days of events (at least 50: the offer "
                                      "model trains on 49 and evaluates after).")] = 60,
    seed: int = 1,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Generate a world, validate it, train and promote models, publish the features and
    offers, then serve the API on localhost."""
    _check_settings()  # now, not after minutes of work
    with _errors_as_exit_codes():
        ensure_free("127.0.0.1", port)
    ending_today = (datetime.now(UTC).date() - timedelta(days=days)).isoformat()
    generate(out=out, users=users, days=days, seed=seed, start=ending_today)
    validate(directory=out)
    train(directory=out, models=models, seed=seed)
    publish(directory=out, version=None, as_of=None, models=models,
            model_version=_registry(models).versions()[-1])
    typer.echo("try:")
    for example in _examples(out, port):
        typer.echo(f"  {example}")
    serve(models=models, host="127.0.0.1", port=port, workers=1)


if __name__ == "__main__":
    app()
