from pathlib import Path

import polars as pl

from features.pipeline import load_inputs
from training.affinity.brands import bought_brands, evaluate_brand_ranking
from training.cuts import FeaturesAt
from training.split import TimeSplit
from training.synthetic.world import generate_world


def test_buyers_the_ranker_knows_nothing_of_count_as_for_the_baselines(tmp_path: Path) -> None:
    """New customers (no event before the cut) were left out of the ranker's average only:
    its lead over the baselines grew with every new customer."""
    generate_world(tmp_path, users=300, days=60, seed=8)
    events, users, items = load_inputs(tmp_path)
    split = TimeSplit.last_days(events)
    late = events.filter(pl.col("ts") > split.eval_cut)
    buyers = bought_brands(late)["user_id"].unique().sort().head(40)
    newcomers = late.filter(pl.col("user_id").is_in(buyers.implode())).with_columns(
        user_id=pl.lit("new-") + pl.col("user_id"))  # the same purchases, no history
    both = pl.concat([events, newcomers]).sort("ts", maintain_order=True)
    before = evaluate_brand_ranking(FeaturesAt(events, users, items), split).metrics
    after = evaluate_brand_ranking(FeaturesAt(both, users, items), split).metrics
    assert after["users"] == before["users"] + len(buyers)
    # the newcomers are ranked by popularity, as the popularity baseline ranks them
    for name in ("ndcg@10", "popularity_ndcg@10"):
        assert after[name] != before[name]
    added = {name: after[name] * after["users"] - before[name] * before["users"]
             for name in ("ndcg@10", "popularity_ndcg@10")}
    assert abs(added["ndcg@10"] - added["popularity_ndcg@10"]) < 1e-6
