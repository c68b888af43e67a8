"""The offer model's user columns: training (batch) reads what serving (one user's state)
reads, for users at the edges of the features."""

from __future__ import annotations

import pytest

from features.contract.schema import EventType
from features.event import Event
from models.offer_response import USER_COLUMNS, user_columns
from tests.features.test_state import at, batch_of
from training.offers.design import user_context

SHOES = {"category": "shoes", "price": 120.0}
EDGES = {
    "a price interest decayed to nothing": [
        at(6000, EventType.PURCHASE, **SHOES), at(10, EventType.VIEW, category="tea")],
    "returns outweighing a band's purchases": [
        at(60, EventType.PURCHASE, **SHOES), at(1, EventType.PURCHASE, quantity=-1, **SHOES),
        at(1, EventType.PURCHASE, quantity=-1, **SHOES),
        at(2, EventType.PURCHASE, category="tea", price=3.0)],
    "no price at all": [at(3, EventType.VIEW, category="tea")],
}


@pytest.mark.parametrize("events", EDGES.values(), ids=EDGES.keys())
def test_training_reads_the_user_columns_serving_reads(events: list[Event]) -> None:
    batch = batch_of(*events)
    state = batch.state("u1")
    assert state is not None
    trained = user_context(batch).row(0, named=True)
    assert [trained[name] for name in USER_COLUMNS] == pytest.approx(
        user_columns(state, batch.anchor), rel=1e-9, abs=1e-12)
