"""The garbage collector tuned for serving: what exists at start-up is set aside.

A served process holds about a hundred thousand long-lived objects (models, catalog,
modules, some of them large containers). Left in the collector's oldest generation, each
full collection walks them all again: 55 ms on the serving benchmark's world, a pause
every request in flight waits for. Frozen once the app has started (`gc.freeze`), they
are never walked again. Full collections then also come ten times less often than
Python's default: a batch of 1,000 decisions holds enough live objects to trigger
several, and spent 10-20% of its time in them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FULL_COLLECTION_THRESHOLD = 100  # collections of the middle generation; Python's is 10


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Freeze what exists now and make full collections rarer, until the context ends."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold[0], threshold[1], FULL_COLLECTION_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def freeze_new_long_lived() -> None:
    """Set aside what was loaded since start-up (a model reload), if start-up's objects
    were; a request's objects frozen with them are still freed when no longer referenced."""
    if gc.get_freeze_count():
        gc.freeze()
