"""Each user's earlier orders against their last one, with nbo's own cut-off features.

nbo's TimeSplit cuts every user at one moment, but here each user is to be judged on
their own last order. The converter puts every last order in the same final week, so
each user is cut just before the local midnight that starts the day of their last order:
at most 7 distinct cuts, one `compute_features` pass each (training.cuts.FeaturesAt),
instead of one pass per user. Everything up to the cut is history; what follows is the
last order (and, rarely, an earlier order of the same day, which then counts with it).
A global cut would either drop the users whose last order came before it or mix several
orders into some users' evaluation window; one cut per user would cost 593 passes.

The category ranker is fit as `nbo train` fits it (training.affinity.categories), on
nbo's TimeSplit ending at the earliest cut: features 14 days before it, labels from those
14 days. So no fit input or label comes from any user's evaluation window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from features.contract.schema import EventType
from features.pipeline import BatchFeatures
from training.cuts import FeaturesAt
from training.split import TimeSplit, between, up_to

LABEL_DAYS = 14.0  # nbo train's label window
JUST_BEFORE = timedelta(microseconds=1)  # a cut includes its own instant (training.split)


@dataclass(frozen=True)
class Cut:
    """One cut-off and the users whose last order is on its day."""

    batch: BatchFeatures  # every user's features at the cut
    users: list[str]
    before: pl.DataFrame  # these users' events up to the cut
    after: pl.DataFrame  # these users' events after it: their last order


@dataclass(frozen=True)
class LastOrderSplit:
    cuts: pl.DataFrame  # (user_id, cut)
    fit: TimeSplit  # the ranker's fit: fit_cut, eval_cut = the earliest cut, end

    @classmethod
    def of(cls, events: pl.DataFrame) -> LastOrderSplit:
        last = (events.filter(pl.col("event_type") == EventType.PURCHASE.value)
                .group_by("user_id").agg(last=pl.col("ts").max()))
        cuts = last.select("user_id", cut=pl.col("last").dt.truncate("1d") - JUST_BEFORE
                           ).sort("user_id")
        first, end = cuts["cut"].min(), events["ts"].max()
        if not isinstance(first, datetime) or not isinstance(end, datetime):
            raise ValueError("no purchases to split")
        return cls(cuts, TimeSplit(first - timedelta(days=LABEL_DAYS), first, end))

    def walk(self, features: FeaturesAt) -> Iterator[Cut]:
        """The cuts in time order, with the features and events of their users."""
        for (cut,), group in self.cuts.sort("cut", "user_id").group_by(
                "cut", maintain_order=True):
            assert isinstance(cut, datetime)
            users = group["user_id"].to_list()
            mine = features.events.filter(pl.col("user_id").is_in(users))
            yield Cut(features(cut), users, up_to(mine, cut), between(mine, cut, self.fit.end))
