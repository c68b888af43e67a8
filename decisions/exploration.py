"""Exploration: which candidates to show, in order, and the propensity of each pick.

A purely greedy policy never learns about offers it ranks low, and its logs cannot evaluate
any other policy. Epsilon-greedy and Thompson sampling show something else now and then,
and log the probability of every pick so new policies can be evaluated off-policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

Method = Literal["none", "epsilon_greedy", "thompson"]
METHODS: tuple[Method, ...] = ("none", "epsilon_greedy", "thompson")

Arrangement = tuple[NDArray[np.intp], NDArray[np.float64]]


@dataclass(frozen=True)
class Exploration:
    method: Method = "epsilon_greedy"
    epsilon: float = 0.05
    top_k: int = 5  # exploration picks among this many of the best remaining

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"exploration method {self.method!r}: use one of {METHODS}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"exploration epsilon {self.epsilon}: must be in [0, 1]")
        if self.top_k < 1:
            raise ValueError(f"top_k {self.top_k}: must be >= 1")

    def top_shown(self, n: int) -> int:
        """How many of the best candidates n picks can show: n greedily, n + top_k - 1 when
        exploring (epsilon-greedy, or Thompson sampling over that many of the best)."""
        explores = self.method == "thompson" or (self.method == "epsilon_greedy"
                                                 and self.epsilon > 0)
        return n + self.top_k - 1 if explores and n > 0 else max(n, 0)

    def arrange(self, values: np.ndarray, spread: np.ndarray | None, n: int,
                rng: np.random.Generator) -> Arrangement:
        """The indices of the n candidates to show, in order, and for each the propensity: the
        probability that the policy picks it at its position given the ones picked before.

        `values` are the candidates' expected values, `spread` their uncertainty (standard
        deviations, for Thompson sampling). Deterministic given `rng`.
        """
        values = _finite(values, "values")
        count = min(max(n, 0), values.size)
        if self.method == "epsilon_greedy":
            return self._epsilon_greedy(values, count, rng)
        if self.method == "thompson" and spread is not None:
            spread = _finite(spread, "spread")
            if spread.shape != values.shape or (spread < 0).any():
                raise ValueError(f"spread: expected {values.size} values >= 0, one per "
                                 f"candidate, got shape {spread.shape}")
            if count and spread.any():  # over the best candidates, as epsilon-greedy explores
                top = np.argsort(-values, kind="stable")[:self.top_shown(count)]
                picks, propensities = self._thompson(values[top], spread[top], count, rng)
                return top[picks], propensities
        return _greedy(values, count)

    def _epsilon_greedy(self, values: NDArray[np.float64], count: int,
                        rng: np.random.Generator) -> Arrangement:
        """Best remaining with probability 1 - epsilon, else uniform among the top k remaining."""
        remaining = np.argsort(-values, kind="stable").tolist()  # best first, ties: lower index
        picks: list[int] = []
        propensities: list[float] = []
        for _ in range(count):
            k = min(self.top_k, len(remaining))
            explore = rng.random() < self.epsilon
            rank = int(rng.integers(k)) if explore else 0
            propensities.append((1.0 - self.epsilon) * (rank == 0) + self.epsilon / k)
            picks.append(remaining.pop(rank))
        return np.array(picks, dtype=np.intp), np.array(propensities, dtype=np.float64)

    @staticmethod
    def _thompson(values: NDArray[np.float64], spread: NDArray[np.float64], count: int,
                  rng: np.random.Generator) -> Arrangement:
        """At each position the argmax of one fresh draw among the remaining candidates;
        the propensity is the exact probability of that pick (`pick_probability`)."""
        picks = np.empty(count, dtype=np.intp)
        propensities = np.empty(count, dtype=np.float64)
        remaining = np.ones(values.size, dtype=bool)
        for position in range(count):
            shown = rng.standard_normal(values.size)
            shown *= spread
            shown += values
            shown[~remaining] = -np.inf  # values are finite, so a taken one never wins
            pick = int(np.argmax(shown))
            picks[position] = pick
            # drawn, it had a chance above 0, however small the integral finds it (and at
            # most 1, whatever its rounding)
            propensities[position] = min(max(
                pick_probability(values, spread, pick, remaining), _TINY), 1.0)
            remaining[pick] = False
        return picks, propensities


def pick_probability(values: NDArray[np.float64], spread: NDArray[np.float64], pick: int,
                     among: NDArray[np.bool_]) -> float:
    """The probability that `pick`'s draw, N(value, spread), is the largest of those of the
    candidates `among` (each drawn independently; one without spread is its value, and of
    equal ones the first wins, as np.argmax picks): one integral over `pick`'s draw of its
    density times the chance every other one draws less."""
    others = among.copy()
    others[pick] = False
    fixed, varying = others & (spread == 0), others & (spread > 0)
    mean, sd = values[pick], spread[pick]
    # a spread near the smallest floats overflows a ratio to an infinity, which ndtr reads
    # as a certainty (0 or 1), as the draw is
    with np.errstate(over="ignore", divide="ignore"):
        if sd == 0:  # a point: every other draw below it (a fixed one equal to it, after it)
            beaten = np.flatnonzero(fixed)
            ahead = (values[beaten] > mean) | ((values[beaten] == mean) & (beaten < pick))
            return float(0.0 if ahead.any() else
                         np.prod(ndtr((mean - values[varying]) / spread[varying])))
        floor = values[fixed].max(initial=-np.inf)  # the draw must pass every fixed one
        start = max(-_REACH, (floor - mean) / sd)
        if start >= _REACH:
            return 0.0
        # Gauss-Legendre over pieces a standard deviation long, cut finer around the step a
        # narrower competitor's chance makes, where a fixed grid would step over it
        narrow = varying & (spread < sd)
        cuts = ((values[narrow] - mean)[:, None] + spread[narrow][:, None] * _AROUND) / sd
        edges = np.unique(np.clip(np.concatenate([_UNITS, cuts.ravel(), [start]]),
                                  start, _REACH))
        half, middle = np.diff(edges) / 2, (edges[:-1] + edges[1:]) / 2
        t = (middle[:, None] + half[:, None] * _NODES).ravel()
        weight = (half[:, None] * _WEIGHTS).ravel()
        below = ndtr(((mean + sd * t)[:, None] - values[varying]) / spread[varying]).prod(
            axis=1)
    return float((weight * np.exp(-t * t / 2) * below).sum() / np.sqrt(2 * np.pi))


_REACH = 10.0  # standard deviations of the pick's draw integrated over
_UNITS = np.arange(-_REACH, _REACH + 1.0)
_AROUND = np.array([-8.0, -4.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_TINY = float(np.finfo(np.float64).tiny)


def _greedy(values: NDArray[np.float64], count: int) -> Arrangement:
    """The best `count` by value, ties by lower index, each picked with certainty."""
    picks = np.argsort(-values, kind="stable")[:count].astype(np.intp)
    return picks, np.ones(count, dtype=np.float64)


def _finite(array: np.ndarray, name: str) -> NDArray[np.float64]:
    """`array` as a 1-d float64 array, refusing NaN and infinities, which break the argmax."""
    result = np.asarray(array, dtype=np.float64)
    if result.ndim != 1 or not np.isfinite(result).all():
        raise ValueError(f"{name}: expected a 1-d array of finite numbers; drop ineligible "
                         "candidates before arranging them")
    return result
