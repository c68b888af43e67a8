import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisions.holdout import Holdout

IDS = [f"user-{i}" for i in range(20_000)]


def test_assignment_is_pinned() -> None:
    """A change here regroups every user: make it on purpose, with a new salt."""
    holdout = Holdout("nbo-holdout", 0.3, {"win_back": 0.5})
    assert [holdout.group(f"u{i}", "win_back") for i in range(8)] == [
        "journey:win_back", "global", "global", "journey:win_back", None, "journey:win_back",
        None, "global"]
    assert holdout.position("global", "u1") == pytest.approx(0.25884432029802923, abs=1e-15)


def test_assignment_is_the_same_in_another_process() -> None:
    code = ("from decisions.holdout import Holdout; "
            "print([Holdout('s', 0.5).group(f'u{i}', None) for i in range(50)])")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other == str([Holdout("s", 0.5).group(f"u{i}", None) for i in range(50)])


@pytest.mark.parametrize("share", [0.01, 0.05, 0.2, 0.5])
def test_global_share_is_within_a_point_of_the_setting(share: float) -> None:
    holdout = Holdout("nbo-holdout", share)
    held = sum(holdout.group(user_id, None) == "global" for user_id in IDS)
    assert abs(held / len(IDS) - share) < 0.01


def test_journey_groups_are_independent_of_the_global_one() -> None:
    holdout = Holdout("nbo-holdout", 0.2, {"cart_abandoned": 0.1})
    groups = [holdout.group(user_id, "cart_abandoned") for user_id in IDS]
    # the journey's group is drawn from those outside the global one: 0.8 x 0.1
    assert abs(groups.count("journey:cart_abandoned") / len(IDS) - 0.08) < 0.01
    assert abs(groups.count("global") / len(IDS) - 0.2) < 0.01
    global_places = np.array([holdout.position("global", u) for u in IDS])
    journey_places = np.array([holdout.position("cart_abandoned", u) for u in IDS])
    assert abs(np.corrcoef(global_places, journey_places)[0, 1]) < 0.03
    in_journey = journey_places < 0.1
    assert abs(in_journey[global_places < 0.2].mean() - in_journey[global_places >= 0.2].mean()
               ) < 0.02


def test_other_journeys_and_no_journey_only_see_the_global_group() -> None:
    holdout = Holdout("s", 0.0, {"win_back": 1.0})
    assert holdout.group("u1", "win_back") == "journey:win_back"
    assert holdout.group("u1", "welcome") is None
    assert holdout.group("u1", None) is None
    assert Holdout("s", 1.0, {"win_back": 1.0}).group("u1", "win_back") == "global"


def test_the_salt_reshuffles_the_groups() -> None:
    first, second = Holdout("a", 0.5), Holdout("b", 0.5)
    differ = sum(first.group(u, None) != second.group(u, None) for u in IDS[:2000])
    assert 800 < differ < 1200


def test_shares_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="must be in"):
        Holdout("s", 1.5)
    with pytest.raises(ValueError, match="win_back"):
        Holdout("s", 0.1, {"win_back": -0.1})


@given(salt=st.text(max_size=10), user_id=st.text(max_size=20),
       share=st.floats(0, 1), journey_share=st.floats(0, 1),
       journey=st.none() | st.sampled_from(["welcome", "win_back"]))
def test_groups_are_stable_and_well_formed(salt: str, user_id: str, share: float,
                                           journey_share: float, journey: str | None) -> None:
    holdout = Holdout(salt, share, {"win_back": journey_share})
    group = holdout.group(user_id, journey)
    assert group == Holdout(salt, share, {"win_back": journey_share}).group(user_id, journey)
    assert group in (None, "global", "journey:win_back")
    if group == "journey:win_back":
        assert journey == "win_back"
    assert 0 <= holdout.position("global", user_id) < 1
    if share == 0 and journey != "win_back":
        assert group is None
    if share == 1:
        assert group == "global"
