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
    assert keys.decision("d-1") == "nbo:v1:decision:d-1"


def test_a_users_decision_keys_share_one_cluster_hash_tag() -> None:
    user = "anna@example.com"
    tags = {key[key.index("{"):key.index("}") + 1]
            for key in (keys.given(user), keys.campaign_decision(user, "c1"))}
    assert tags == {f"{{u{zlib.crc32(user.encode()) % 1024}}}"}
