"""`nbo train`: evaluate every model on a time split, refit on all the data, register.

Each model is evaluated as it will be used: fit on the past, scored on the last weeks.
The registered artifacts are then refit with the latest data (the same procedure with
the split moved to the end of the log). What is trained so far: the category ranker,
the brand ranker, the item recommender and similar items, the offer-response model, the
send-time curves, the channel rates, churn and the contact volume.
"""

from __future__ import annotations

import io
import json
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from features.contract.offers import offers_file, read_offers
from features.contract.schema import ITEMS
from features.contract.tables import load_table
from features.pipeline import load_inputs
from models.brands import SIGNALS as BRAND_SIGNALS
from models.categories import CATEGORY_PRIORS, SIGNALS
from models.category_timing import ARTIFACT as CATEGORY_TIMING
from models.channels import ChannelModel
from models.offer_response import FEATURES
from models.registry import ModelRegistry, ModelVersion
from models.send_time import SendTimeModel
from training.affinity.als import AlsScores, Factorization
from training.affinity.brands import BrandContext, evaluate_brand_ranking, fit_brand_ranker
from training.affinity.categories import (
    evaluate_category_ranking,
    fit_category_ranker,
    oracle_correlation,
)
from training.affinity.item_evaluation import evaluate_items
from training.affinity.items import ITEM_COLUMNS, ITEM_PARAMETERS, ItemModel
from training.affinity.priors import country_priors
from training.affinity.signals import category_popularity, interest
from training.boosting import RANKER_PARAMETERS
from training.category_timing import evaluate_category_timing, fit_category_timing
from training.channels import evaluate_channels
from training.churn import FEATURES as CHURN_FEATURES
from training.churn import PARAMETERS as CHURN_PARAMETERS
from training.churn import ChurnModel, churn_frame, evaluate_churn
from training.contact_volume import ContactVolume
from training.cuts import FeaturesAt
from training.offers.evaluate import OfferExamples, check_sends, evaluate_offer_response
from training.offers.model import SETTINGS as OFFER_SETTINGS
from training.offers.model import OfferResponseModel
from training.offers.oracle import offer_value_share
from training.offers.sends import EXTRA_COLUMNS
from training.onnx_export import ranker_to_onnx
from training.price_bands import evaluate_price_bands
from training.report import render as render_report
from training.sample import MAX_TRAINING_USERS, sample_users
from training.send_time import open_delay_hours, sends_and_opens
from training.send_time_evaluation import evaluate_send_time
from training.split import TimeSplit, between

LIBRARIES = ("lightgbm", "implicit", "onnxruntime", "onnxmltools", "polars", "numpy")
Report = Callable[[str], None]


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, report: Report) -> Iterator[None]:
        report(name)
        began = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - began, 2)


def fingerprint(events: pl.DataFrame) -> dict[str, Any]:
    """What identifies the training data: size, time range and a hash of the events."""
    digest = events.select(pl.all().hash(seed=0)).sum_horizontal().hash(seed=0).sum()
    return {"events": events.height, "first": str(events["ts"].min()),
            "last": str(events["ts"].max()), "hash": f"{int(digest):016x}"}


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def _truth(truth_dir: Path) -> pl.DataFrame | None:
    truth = truth_dir / "category_affinity"
    if not truth.is_dir():
        return None
    return pl.read_parquet(truth).select("user_id", key="category", preference="preference")


def _offer_truth(truth_dir: Path) -> pl.DataFrame | None:
    truth = truth_dir / "offer_response"
    return pl.read_parquet(truth) if truth.is_dir() else None


def train(directory: Path, models: ModelRegistry, seed: int = 0,
          report: Report = lambda _: None,
          factorization: Factorization = "als",
          max_users: int = MAX_TRAINING_USERS) -> ModelVersion:
    """Stages are ordered so that models share the features of the same cut-offs;
    `factorization` is the collaborative filtering of categories, brands and items; with
    more than `max_users` users (0: no limit), a seeded sample of them trains (sample.py)."""
    timings = Timings()
    with timings.stage("load", report):
        events, users, items = load_inputs(directory, (*EXTRA_COLUMNS, "item_id"))
        catalog = load_table(directory, ITEMS, columns=ITEM_COLUMNS).frame
        found = offers_file(directory)
        offers = read_offers(found)[0] if found else []
        data = fingerprint(events)
        sample = sample_users(events, users, max_users, seed)
        events, users = sample.events, sample.users
    features = FeaturesAt(events, users, items)
    split = TimeSplit.last_days(events)
    if offers:
        check_sends(events, split)  # the offer model's longer needs, asked first
    latest = TimeSplit(split.end - (split.eval_cut - split.fit_cut), split.end, split.end)
    truth_dir = directory / "ground_truth"
    metrics: dict[str, Any] = {}
    artifacts: dict[str, bytes] = {}
    with timings.stage("evaluate categories", report):
        categories = evaluate_category_ranking(features, split, seed,
                                               factorization=factorization)
        metrics["category"] = categories.metrics
        truth = _truth(truth_dir)
        if truth is not None:
            metrics["oracle"] = {"category_spearman": oracle_correlation(categories.scores,
                                                                         truth)}
    with timings.stage("evaluate brands", report):
        brand_evaluation = evaluate_brand_ranking(features, split, seed,
                                                  factorization=factorization)
        metrics["brand"] = brand_evaluation.metrics
    with timings.stage("evaluate items", report):
        metrics["item"] = evaluate_items(features, split, catalog, categories.scores,
                                         brand_evaluation.scores, seed,
                                         factorization=factorization)
    with timings.stage("evaluate churn", report):
        metrics["churn"] = evaluate_churn(features, split, seed)[1]
    with timings.stage("evaluate send time and channels", report):
        at_eval = features(split.eval_cut)
        metrics["send_time"] = evaluate_send_time(
            events, users, at_eval, split, truth_dir if truth_dir.is_dir() else None)[1]
        metrics["channel"] = evaluate_channels(events, at_eval, split)[1]
    with timings.stage("evaluate price bands", report):
        metrics["price_band"] = evaluate_price_bands(features, split)
    with timings.stage("category timing", report):
        metrics["category_timing"] = evaluate_category_timing(
            features, users, split, truth_dir if truth_dir.is_dir() else None)[1]
        artifacts[CATEGORY_TIMING] = fit_category_timing(features, users, split.end).to_json()
    with timings.stage("fit churn", report):
        churn = ChurnModel.fit(churn_frame(features(latest.fit_cut),
                                           between(events, latest.fit_cut, split.end)), seed)
        artifacts["churn.onnx"] = churn.to_onnx()
        artifacts["churn.txt"] = churn.booster.model_to_string().encode()
    with timings.stage("fit categories", report):
        ranker = fit_category_ranker(features, latest, seed, factorization)
        artifacts["category_ranker.txt"] = ranker.model.booster_.model_to_string().encode()
        artifacts["category_ranker.onnx"] = ranker_to_onnx(ranker.model.booster_, len(SIGNALS))
        now = features(split.end)
        als = AlsScores.fit(interest(now), seed=seed, factorization=factorization)
        buffer = io.BytesIO()
        np.savez(buffer, item_factors=als.item_factors, keys=np.array(list(als.keys)))
        artifacts["category_als.npz"] = buffer.getvalue()
        artifacts["category_popularity.json"] = json.dumps(category_popularity(now),
                                                           sort_keys=True).encode()
        whole = features.whole(split.end)  # every category bought, not the kept few
        artifacts[CATEGORY_PRIORS] = json.dumps(
            {"country": country_priors(whole), "global": category_popularity(whole)},
            sort_keys=True).encode()
    with timings.stage("fit brands", report):
        brands = fit_brand_ranker(features, latest, seed, factorization)
        artifacts["brand_ranker.txt"] = brands.booster_.model_to_string().encode()
        artifacts["brand_ranker.onnx"] = ranker_to_onnx(brands.booster_, len(BRAND_SIGNALS))
        context = BrandContext.at(now, events)
        brand_als = context.als(seed, factorization)
        buffer = io.BytesIO()
        np.savez(buffer, item_factors=brand_als.item_factors,
                 keys=np.array(list(brand_als.keys)))
        artifacts["brand_als.npz"] = buffer.getvalue()
        artifacts["brand_popularity.json"] = json.dumps(
            context.popularity.to_dicts(), sort_keys=True).encode()
    with timings.stage("fit items", report):
        artifacts.update(ItemModel.fit(events, catalog, now.bands, split.end, seed,
                                       factorization).artifacts())
    with timings.stage("fit send time and channels", report):
        send_time = SendTimeModel.fit(now, open_delay_hours(sends_and_opens(events)))
        artifacts["send_time.json"] = send_time.to_json()
        artifacts["channel.json"] = ChannelModel.fit(now).to_json()
    with timings.stage("contact volume", report):
        volume = ContactVolume.fit(events)
        metrics["contact_volume"] = volume.summary()
        artifacts["contact_volume.json"] = volume.to_json()
    if offers:
        offer_examples = OfferExamples(features, offers)
        with timings.stage("evaluate offer response", report):
            evaluated, metrics["offer_response"] = evaluate_offer_response(offer_examples,
                                                                           split, seed)
            offer_truth = _offer_truth(truth_dir)
            if offer_truth is not None:
                metrics.setdefault("oracle", {}).update(offer_value_share(
                    evaluated, features(split.eval_cut), offers, offer_truth, seed))
        with timings.stage("fit offer response", report):
            response = OfferResponseModel.fit(offer_examples.before(split.end), seed)
            artifacts["offer_response.onnx"] = response.to_onnx()
            artifacts["offer_response.txt"] = response.booster.model_to_string().encode()
    meta = {
        "data": {"directory": str(directory), **data, "users": sample.of,
                 "trained_users": sample.drawn, "trained_events": events.height},
        "split": {"fit_cut": str(split.fit_cut), "eval_cut": str(split.eval_cut),
                  "end": str(split.end)},
        "seed": seed,
        "factorization": factorization,
        "schemas": {"category_ranker": list(SIGNALS), "brand_ranker": list(BRAND_SIGNALS),
                    "offer_response": list(FEATURES),
                    "churn": list(CHURN_FEATURES)},
        "parameters": {"category_ranker": RANKER_PARAMETERS, "offer_response": OFFER_SETTINGS,
                       "churn": CHURN_PARAMETERS, "items": ITEM_PARAMETERS},
        "libraries": {name: package_version(name) for name in LIBRARIES},
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "timings_s": timings.seconds,
    }
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    artifacts["report.html"] = render_report(version, metrics, send_time.global_curves,
                                             volume.open_rates).encode()
    return models.register(artifacts, meta, {"metrics": metrics}, version)


def summary(version: ModelVersion) -> str:
    """The one JSON line `nbo train` ends with."""
    return json.dumps({"version": version.version, **version.metrics,
                       "timings_s": version.meta["timings_s"]}, default=float)
