"""Features of every user as of a cut-off, computed once per cut for all the models, as
the store keeps them (`kept`: the top categories and brands, the categories bought last...),
so models learn from what the API reads."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

import polars as pl

from features.pipeline import BatchFeatures, compute_features
from features.store.kept import kept
from training.split import up_to


class FeaturesAt:
    """`features_at(cut)`: the batch features over the events up to `cut`; the `keep`
    cuts used last stay in memory, as the models share a few cuts."""

    def __init__(self, events: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame,
                 keep: int = 3) -> None:
        self.events, self.users, self.items = events, users, items
        self._keep = keep
        self._cached: OrderedDict[datetime, BatchFeatures] = OrderedDict()

    def whole(self, cut: datetime) -> BatchFeatures:
        """The batch features up to `cut` before the store's cut (every category bought,
        not only the last few): what the priors count, over all users. Not kept."""
        return compute_features(up_to(self.events, cut), self.users, self.items, cut)

    def __call__(self, cut: datetime) -> BatchFeatures:
        if cut in self._cached:
            self._cached.move_to_end(cut)
            return self._cached[cut]
        batch = kept(compute_features(up_to(self.events, cut), self.users, self.items, cut))
        self._cached[cut] = batch
        while len(self._cached) > self._keep:
            self._cached.popitem(last=False)
        return batch
