import zlib

from decisions import keys


def test_keys_are_pinned() -> None:
    slot = zlib.crc32(b"u0000042") % 1024
    assert slot == 418
    assert keys.CATALOG == "nbo:v1:offers:catalog"
    assert keys.CATALOG_VERSION == "nbo:v1:offers:version"
    assert keys.SPENT == "nbo:v1:offers:spent"
    assert keys.CHOSEN == "nbo:v1:offers:chosen"
    assert keys.DECISIONS == "nbo:v1:decisions"
    assert keys.FEEDBACK == "nbo:v1:feedback"
    assert keys.user_tag("u0000042") == "nbo:v1:{u418}"
    assert keys.given("u0000042") == "nbo:v1:{u418}:given:u0000042"
    assert keys.campaign_decision("u0000042", "spring") == (
        "nbo:v1:{u418}:campaign:spring:u0000042")
    assert keys.campaign_decision("u0000042", "spring:sale") == (
        "nbo:v1:{u418}:campaign#11:spring:sale:u0000042")
    assert keys.decision("d-1") == "nbo:v1:decision:d-1"


def test_a_users_decision_keys_share_one_cluster_hash_tag() -> None:
    user = "anna@example.com"
    tags = {key[key.index("{"):key.index("}") + 1]
            for key in (keys.given(user), keys.campaign_decision(user, "c1"))}
    assert tags == {f"{{u{zlib.crc32(user.encode()) % 1024}}}"}


def same_tag_prefix(user: str) -> str:
    """A prefix p for which user "p:<user>" shares `user`'s hash tag (1 in 1024 do)."""
    return next(f"p{n}" for n in range(100_000)
                if keys.user_tag(f"p{n}:{user}") == keys.user_tag(user))


def test_ids_with_colons_never_spell_another_pairs_campaign_key() -> None:
    prefix = same_tag_prefix("u5")
    pairs = [("u5", f"camp:{prefix}"), (f"{prefix}:u5", "camp"),
             (f"camp:{prefix}:u5", "9"), (f"{prefix}:u5", "9:camp")]
    assert len({keys.campaign_decision(user, campaign) for user, campaign in pairs}) == 4
