"""Training examples from several cut-offs, and the offer model's scores on later sends.

Cut i (i = 0, 1, ...) lies ATTRIBUTION + (i + 1) x WINDOW before the evaluation cut: the
user is described as of the cut, and the sends of the WINDOW after it are the examples,
labelled by purchases up to WINDOW + ATTRIBUTION after the cut, so before the evaluation
cut. The evaluation uses the sends after the evaluation cut whose attribution window ends
with the log, described as of the evaluation cut.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from features.contract.offers import Offer
from features.contract.schema import EventType
from nbo.errors import DataContractError
from training.binary_metrics import binary_metrics
from training.cuts import FeaturesAt
from training.offers.model import OfferResponseModel, examples
from training.offers.sends import ATTRIBUTION
from training.split import TimeSplit

WINDOW = timedelta(days=14)
MIN_HISTORY = timedelta(days=14)
MAX_CUTS = 4


def training_cuts(events: pl.DataFrame, eval_cut: datetime) -> list[datetime]:
    """The cuts whose examples train the model evaluated from `eval_cut`; a log too short
    for any is a `DataContractError` (train.py asks first, before any model is fit)."""
    first, last = events["ts"].min(), events["ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    cuts = [eval_cut - ATTRIBUTION - WINDOW * (i + 1) for i in range(MAX_CUTS)]
    usable = [cut for cut in cuts if cut - first >= MIN_HISTORY]
    if not usable:
        needed = MIN_HISTORY + WINDOW + ATTRIBUTION + (last - eval_cut)
        raise DataContractError(
            f"the events span {(last - first) / timedelta(days=1):.1f} days, from "
            f"{first:%Y-%m-%d} to {last:%Y-%m-%d}; the offer model needs at least "
            f"{needed / timedelta(days=1):g}: {MIN_HISTORY.days} days of history, "
            f"{WINDOW.days} of sends, {ATTRIBUTION.days} to attribute their purchases, then "
            "the evaluation window")
    return usable


def check_sends(events: pl.DataFrame, split: TimeSplit) -> None:
    """The offer model learns from the messages sent in its training cuts' windows and is
    scored on those after the evaluation cut: a log without any there (campaigns paused,
    sends not logged) is refused before any model is fit."""
    sent = events.filter((pl.col("event_type") == EventType.MESSAGE_SENT.value)
                         & pl.col("channel").is_not_null())["ts"]
    learned = any(((sent > cut) & (sent <= cut + WINDOW)).any()
                  for cut in training_cuts(events, split.eval_cut))
    scored = ((sent > split.eval_cut) & (sent <= split.end - ATTRIBUTION)).any()
    cut, last = f"{split.eval_cut:%Y-%m-%d %H:%M}", f"{split.end - ATTRIBUTION:%Y-%m-%d %H:%M}"
    missing = [] if learned else [f"before {cut} UTC to learn from"]
    if not scored:
        missing.append(f"between {'then' if missing else cut} and {last} UTC to score on")
    if missing:
        raise DataContractError(
            f"an offers file is given, but no message with a channel was sent "
            f"{' nor '.join(missing)}: the offer model learns from sends (message_sent "
            "events) and the purchases they bring; log them, or train without the offers file")


class OfferExamples:
    """The examples of each training cut, built once: the evaluation's cuts and those of
    the final refit (the same procedure ending with the log) are mostly the same."""

    def __init__(self, features: FeaturesAt, offers: list[Offer]) -> None:
        self.features, self.offers = features, offers
        self._by_cut: dict[datetime, pl.DataFrame] = {}

    def at(self, cut: datetime) -> pl.DataFrame:
        if cut not in self._by_cut:
            features = self.features
            self._by_cut[cut] = examples(features.events, features.users, features(cut),
                                         self.offers, cut + WINDOW + ATTRIBUTION)
        return self._by_cut[cut]

    def before(self, eval_cut: datetime) -> pl.DataFrame:
        """Every example whose label window ends by `eval_cut`."""
        return pl.concat([self.at(cut) for cut in training_cuts(self.features.events,
                                                                eval_cut)])


def evaluate_offer_response(examples_at: OfferExamples, split: TimeSplit,
                            seed: int = 0) -> tuple[OfferResponseModel, dict[str, Any]]:
    train = examples_at.before(split.eval_cut)
    model = OfferResponseModel.fit(train, seed)
    features = examples_at.features
    test = examples(features.events, features.users, features(split.eval_cut),
                    examples_at.offers, split.end)
    metrics = binary_metrics(test["converted"].to_numpy(), model.predict(test))
    with_offer = test.filter(pl.col("has_offer") > 0)
    metrics |= {"training_examples": float(train.height),
                "mean_uplift": float(model.uplift(with_offer).mean()) if with_offer.height
                else float("nan")}
    return model, metrics
