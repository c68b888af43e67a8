"""Training examples from several cut-offs, and the offer model's scores on later sends.

Cut i (i = 0, 1, ...) lies ATTRIBUTION + (i + 1) x WINDOW before the evaluation cut: the
user is described as of the cut, and the sends of the WINDOW after it are the examples,
labelled by purchases up to WINDOW + ATTRIBUTION after the cut, so before the evaluation
cut. The evaluation uses the sends after the evaluation cut whose attribution window ends
with the log, described as of the evaluation cut.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from features.contract.offers import Offer
from features.pipeline import compute_features
from training.binary_metrics import binary_metrics
from training.offers.model import OfferResponseModel, examples
from training.offers.sends import ATTRIBUTION
from training.split import TimeSplit, up_to

WINDOW = timedelta(days=14)
MIN_HISTORY = timedelta(days=14)
MAX_CUTS = 4


def training_cuts(events: pl.DataFrame, eval_cut: datetime) -> list[datetime]:
    first = events["ts"].min()
    assert isinstance(first, datetime)
    cuts = [eval_cut - ATTRIBUTION - WINDOW * (i + 1) for i in range(MAX_CUTS)]
    usable = [cut for cut in cuts if cut - first >= MIN_HISTORY]
    if not usable:
        raise ValueError(f"too short a log: the offer model needs {MIN_HISTORY.days} days of "
                         f"history and {(WINDOW + ATTRIBUTION).days} of sends before the "
                         "evaluation window")
    return usable


def training_examples(events: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame,
                      offers: list[Offer], eval_cut: datetime) -> pl.DataFrame:
    frames = []
    for cut in training_cuts(events, eval_cut):
        batch = compute_features(up_to(events, cut), users, items, cut)
        frames.append(examples(events, users, batch, offers, cut + WINDOW + ATTRIBUTION))
    return pl.concat(frames)


def evaluate_offer_response(events: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame,
                            offers: list[Offer], split: TimeSplit,
                            seed: int = 0) -> tuple[OfferResponseModel, dict[str, float]]:
    train = training_examples(events, users, items, offers, split.eval_cut)
    model = OfferResponseModel.fit(train, seed)
    batch = compute_features(up_to(events, split.eval_cut), users, items, split.eval_cut)
    test = examples(events, users, batch, offers, split.end)
    metrics = binary_metrics(test["converted"].to_numpy(), model.predict(test))
    with_offer = test.filter(pl.col("has_offer") > 0)
    metrics |= {"training_examples": float(train.height),
                "mean_uplift": float(model.uplift(with_offer).mean()) if with_offer.height
                else float("nan")}
    return model, metrics
