"""The expected uplift is the mean of what the generator draws for users with given traits."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from training.synthetic.catalog import build_catalog
from training.synthetic.offers import build_offers
from training.synthetic.population import (
    RESPONSE_TYPES,
    _offer_uplift,
    expected_offer_uplift,
)


def test_the_expected_uplift_is_the_mean_of_the_drawn_ones() -> None:
    rng = np.random.default_rng(5)
    catalog = build_catalog(rng)
    offers = build_offers(catalog, datetime(2026, 1, 1, tzinfo=UTC), 60, 1000)
    traits = 6  # users with their own tastes, sensitivity and response type
    preference = rng.dirichlet(np.ones(catalog.n_categories), traits)
    sensitivity = np.array([0.05, 0.3, 0.5, 0.7, 0.95, 0.5])
    response = np.array([RESPONSE_TYPES.index(name) for name in
                         ("persuadable",) * 5 + ("sure_thing",)])
    draws = 40_000  # users sharing each set of traits, drawn independently
    drawn = _offer_uplift(rng, offers, np.repeat(preference, draws, axis=0),
                          np.repeat(sensitivity, draws), np.repeat(response, draws))
    mean = drawn.reshape(traits, draws, len(offers)).mean(axis=1)
    expected = expected_offer_uplift(offers, preference, sensitivity, response)
    assert expected.shape == (traits, len(offers))
    # within 4 standard errors: an uplift is at most 0.3, so its sd at most 0.15
    np.testing.assert_allclose(mean, expected, rtol=0, atol=4 * 0.15 / np.sqrt(draws))
    assert not expected[-1].any()  # a sure thing converts anyway: no offer adds anything
    assert expected[:5].min() > 0  # every persuadable user may react to every offer
