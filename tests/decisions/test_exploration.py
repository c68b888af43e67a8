import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from decisions.exploration import METHODS, Exploration, Method, pick_probability

SEEDS = range(4000)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def first_picks(policy: Exploration, values: np.ndarray,
                spread: np.ndarray | None) -> tuple[Counter[int], dict[int, list[float]]]:
    """How often each candidate comes first over SEEDS, and the propensities reported."""
    counts: Counter[int] = Counter()
    reported: dict[int, list[float]] = defaultdict(list)
    for seed in SEEDS:
        order, propensity = policy.arrange(values, spread, 1, rng(seed))
        counts[int(order[0])] += 1
        reported[int(order[0])].append(float(propensity[0]))
    return counts, reported


def test_greedy_ranks_by_value_ties_by_lower_index() -> None:
    order, propensity = Exploration("none").arrange(np.array([1.0, 3.0, 2.0, 3.0]), None, 3,
                                                    rng())
    assert order.tolist() == [1, 3, 2]
    assert propensity.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("method", METHODS)
def test_edges(method: Method) -> None:
    policy = Exploration(method)
    order, propensity = policy.arrange(np.array([]), None, 5, rng())
    assert order.shape == propensity.shape == (0,)
    assert order.dtype == np.intp and propensity.dtype == np.float64
    values = np.array([0.2, 0.9, 0.5])
    order, _ = policy.arrange(values, np.full(3, 0.1), 10, rng())
    assert sorted(order.tolist()) == [0, 1, 2]
    assert policy.arrange(values, None, 0, rng())[0].size == 0


def test_epsilon_greedy_first_pick_frequencies_match_the_propensities() -> None:
    policy = Exploration("epsilon_greedy", epsilon=0.3, top_k=3)
    values = np.array([1.0, 5.0, 4.0, 3.0, 2.0])
    counts, reported = first_picks(policy, values, None)
    expected = {1: 0.8, 2: 0.1, 3: 0.1}  # best: 0.7 + 0.3 / 3; the next two: 0.3 / 3
    assert set(counts) == set(expected)
    for index, probability in expected.items():
        assert reported[index] == pytest.approx([probability] * counts[index])
        assert abs(counts[index] / len(SEEDS) - probability) < 0.02


def test_epsilon_greedy_propensities_are_conditional_on_the_earlier_picks() -> None:
    policy = Exploration("epsilon_greedy", epsilon=0.5, top_k=2)
    order, propensity = policy.arrange(np.array([3.0, 2.0, 1.0]), None, 3, rng(7))
    for position, index in enumerate(order):
        remaining = sorted(set(range(3)) - set(order[:position].tolist()))
        k = min(2, len(remaining))
        best = remaining[0]  # values fall with the index
        assert propensity[position] == pytest.approx(0.5 * (index == best) + 0.5 / k)
    assert propensity[-1] == 1.0  # the last one left is certain


def test_thompson_matches_the_exact_probability_for_two_candidates() -> None:
    policy = Exploration("thompson")
    values, spread = np.array([0.3, 0.0]), np.array([1.0, 1.0])
    exact = 0.5 * (1 + math.erf(0.3 / math.sqrt(2) / math.sqrt(2)))  # P(N(0.3, 2) > 0)
    counts, reported = first_picks(policy, values, spread)
    assert abs(counts[0] / len(SEEDS) - exact) < 0.025
    assert abs(float(np.mean(reported[0])) - exact) < 0.01
    assert abs(float(np.mean(reported[1])) - (1 - exact)) < 0.01


def test_thompson_first_pick_frequencies_match_the_propensities() -> None:
    policy = Exploration("thompson")
    values, spread = np.array([1.0, 0.6, 0.0, -2.0]), np.array([0.5, 1.0, 1.5, 0.1])
    counts, reported = first_picks(policy, values, spread)
    for index in range(len(values)):
        frequency = counts[index] / len(SEEDS)
        mean_reported = float(np.mean(reported[index])) if reported[index] else 0.0
        assert abs(frequency - mean_reported) < 0.03, index


@pytest.mark.parametrize(("values", "spread"), [
    ([5.0, 4.0, 3.0, 2.0, 1.0], [2.5, 2.0, 1.5, 1.0, 0.5]),  # the engine's: half the value
    ([1.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 1.0]),  # points among draws, a tie of points
])
def test_thompson_propensities_are_the_probabilities_of_the_picks(
        values: list[float], spread: list[float]) -> None:
    """Estimated from 256 shared draws with a +1 floor, a rarely picked offer was logged at
    13 times its probability: importance weights of policies favouring it fell as much."""
    means, sds = np.array(values), np.array(spread)
    draws = rng(7).standard_normal((2_000_000, len(values))) * sds + means
    frequency = np.bincount(draws.argmax(axis=1), minlength=len(values)) / len(draws)
    everyone = np.ones(len(values), dtype=bool)
    for pick, observed in enumerate(frequency):
        exact = pick_probability(means, sds, pick, everyone)
        assert abs(exact - observed) <= 4 * math.sqrt(observed / len(draws)) + 1e-9, pick
    assert sum(pick_probability(means, sds, pick, everyone) for pick in range(len(values))) == (
        pytest.approx(1.0, abs=1e-6))


def test_a_rare_thompson_pick_logs_its_own_small_probability() -> None:
    values, spread = np.array([5.0, 4.0, 3.0, 2.0, 1.0]), np.array([2.5, 2.0, 1.5, 1.0, 0.5])
    policy = Exploration("thompson", top_k=5)
    logged = next(propensity[0] for seed in range(200_000)
                  for order, propensity in [policy.arrange(values, spread, 1, rng(seed))]
                  if order[0] == 4)
    assert logged == pytest.approx(pick_probability(values, spread, 4, np.ones(5, bool)))
    assert logged < 0.001  # 1 / 257 at least before


def test_thompson_without_spread_is_greedy() -> None:
    values = np.array([0.5, 2.0, 1.0])
    for spread in (None, np.zeros(3)):
        order, propensity = Exploration("thompson").arrange(values, spread, 3, rng())
        assert order.tolist() == [1, 2, 0] and propensity.tolist() == [1.0, 1.0, 1.0]


def test_of_equal_draws_without_spread_the_first_wins() -> None:
    """As np.argmax picks: the probabilities of the picks still sum to one."""
    values, spread, among = np.array([1.0, 1.0, 0.5]), np.zeros(3), np.ones(3, bool)
    chances = [pick_probability(values, spread, pick, among) for pick in range(3)]
    assert chances == [1.0, 0.0, 0.0]


def test_thompson_arranges_hundreds_of_candidates() -> None:
    values = rng(1).normal(size=300)
    order, propensity = Exploration("thompson").arrange(values, np.full(300, 0.5), 250, rng(2))
    assert len(set(order.tolist())) == 250
    assert ((propensity > 0) & (propensity <= 1)).all()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        Exploration(epsilon=1.5)
    with pytest.raises(ValueError, match="finite"):
        Exploration().arrange(np.array([1.0, np.nan]), None, 1, rng())
    with pytest.raises(ValueError, match="spread"):
        Exploration("thompson").arrange(np.array([1.0, 2.0]), np.array([1.0, -1.0]), 1, rng())


finite = st.floats(-100, 100, allow_nan=False)
candidates = st.integers(0, 30).flatmap(lambda size: st.tuples(
    arrays(np.float64, size, elements=finite),
    arrays(np.float64, size, elements=st.floats(0, 5, allow_nan=False))))


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(METHODS), epsilon=st.floats(0, 1), top_k=st.integers(1, 8),
       data=candidates, n=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_arrangements_are_valid_and_deterministic(
        method: Method, epsilon: float, top_k: int, data: tuple[np.ndarray, np.ndarray], n: int,
        seed: int) -> None:
    values, spread = data
    policy = Exploration(method, epsilon, top_k)
    order, propensity = policy.arrange(values, spread, n, rng(seed))
    assert len(order) == len(propensity) == min(n, len(values))
    assert len(set(order.tolist())) == len(order)
    assert ((order >= 0) & (order < len(values))).all()
    assert ((propensity > 0) & (propensity <= 1)).all()
    again = policy.arrange(values, spread, n, rng(seed))
    assert order.tolist() == again[0].tolist() and propensity.tolist() == again[1].tolist()


@given(values=arrays(np.float64, st.integers(0, 30), elements=finite), n=st.integers(0, 40),
       seed=st.integers(0, 2**32 - 1))
def test_epsilon_zero_is_greedy(values: np.ndarray, n: int, seed: int) -> None:
    explored = Exploration("epsilon_greedy", epsilon=0.0).arrange(values, None, n, rng(seed))
    greedy = Exploration("none").arrange(values, None, n, rng(seed))
    assert explored[0].tolist() == greedy[0].tolist()
    assert explored[1].tolist() == greedy[1].tolist() == [1.0] * len(greedy[0])


@pytest.mark.parametrize(("exploration", "reach"), [
    (Exploration("none"), 3), (Exploration("epsilon_greedy", 0.1, top_k=5), 7),
    (Exploration("epsilon_greedy", 0.0, top_k=5), 3), (Exploration("thompson", top_k=5), 7)])
def test_the_reach_is_every_candidate_a_policy_can_show(exploration: Exploration,
                                                        reach: int) -> None:
    assert exploration.top_shown(3) == reach and exploration.top_shown(0) == 0
    values = np.linspace(1.0, 0.1, 12)
    spread = np.full(12, 2.0)  # wide enough for Thompson to show any it may
    shown: set[int] = set()
    for seed in range(300):
        shown |= set(exploration.arrange(values, spread, 3, np.random.default_rng(seed))[0])
    assert max(shown) == reach - 1  # the reach-th best is shown sometimes, none below it


@pytest.mark.parametrize("above", [0.0, 3.0, 8.0])
def test_a_narrow_competitor_is_integrated_exactly(above: float) -> None:
    """A competitor a millionth as spread as the pick is a step its chance of being beaten
    takes at its value: a fixed grid stepped over it (2% off 8 standard deviations up)."""
    values, spread = np.array([0.0, above]), np.array([1.0, 1e-6])
    everyone = np.ones(2, dtype=bool)
    exact = 0.5 * math.erfc(above / math.sqrt(2))  # P(N(0, 1) > above)
    assert pick_probability(values, spread, 0, everyone) == pytest.approx(exact, rel=1e-6)
    assert pick_probability(values, spread, 1, everyone) == pytest.approx(1 - exact, rel=1e-6)
