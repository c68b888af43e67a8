from datetime import UTC, datetime

from features.price_bands import PriceBands, category_bands, price_position, top_band
from features.purchases import PurchaseTally
from features.state import UserState

T = datetime(2026, 6, 1, tzinfo=UTC)
MOSTLY_MID = {"0": 1.0, "1": 3.0, "2": 1.0}


def test_a_price_is_banded_by_its_categorys_terciles() -> None:
    bands = PriceBands({"shoes": (40.0, 80.0)})
    assert [bands.band("shoes", price) for price in (10.0, 40.0, 60.0, 80.0, 200.0)] == [
        0, 0, 1, 1, 2]
    assert bands.band("hats", 10.0) is None and bands.band("shoes", None) is None


def test_the_top_band_and_the_position_follow_the_price_affinity() -> None:
    assert top_band(MOSTLY_MID) == 1 and price_position(MOSTLY_MID) == 0.0
    assert top_band({"0": 2.0, "2": 2.0}) == 0  # a tie goes to the lower band
    assert top_band({}) is None and price_position({}) == 0.0
    assert price_position({"2": 3.0}) == 0.75


def test_a_category_bought_mostly_high_is_high_for_a_mostly_mid_buyer() -> None:
    bought = {"coffee": (5, 6), "snacks": (-4, 4), "tea": (1, 1)}
    assert category_bands(MOSTLY_MID, bought, ["coffee", "snacks", "tea", "rice"]) == {
        "coffee": 2, "snacks": 0, "tea": 2,  # one line outweighs a neutral position
        "rice": 1}  # never bought: the user's top band
    leaning_low = {"0": 3.0, "1": 1.0}
    assert category_bands(leaning_low, {"tea": (1, 1)}, ["tea"]) == {"tea": 0}  # not enough
    assert category_bands({}, {}, ["rice"]) == {}  # nothing known: no band


def test_the_state_reads_the_bands_from_its_tallies_and_affinity() -> None:
    state = UserState("u1", T, counts={"price_affinity": MOSTLY_MID},
                      category_purchases={"coffee": PurchaseTally(lines=6, price_lean=5)})
    assert state.price_band(T) == 1
    assert state.category_price_bands(T, ["coffee", "rice"]) == {"coffee": 2, "rice": 1}
