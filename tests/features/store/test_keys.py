import zlib

from features.store import keys


def test_keys_are_pinned() -> None:
    bucket = keys.bucket_of("u0000042", 40)
    assert bucket == zlib.crc32(b"u0000042") % 40 == 2
    assert keys.CURRENT == "nbo:v1:features:current"
    assert keys.VERSIONS == "nbo:v1:features:versions"
    assert keys.EVENTS == "nbo:v1:events"
    assert keys.meta("20260301T000000Z") == "nbo:v1:features:meta:20260301T000000Z"
    assert keys.profiles("V", bucket) == "nbo:v1:{b2}:profiles:V"
    assert keys.live("V", bucket, "u0000042") == "nbo:v1:{b2}:live:V:u0000042"
    assert keys.seen("V", bucket, "u0000042") == "nbo:v1:{b2}:seen:V:u0000042"
    assert keys.version_pattern("V") == "nbo:v1:{b*}:*:V:*"


def test_a_users_keys_share_one_cluster_hash_tag() -> None:
    bucket = keys.bucket_of("anna@example.com", 7)
    tags = {key[key.index("{"):key.index("}") + 1] for key in (
        keys.profiles("V", bucket), keys.live("V", bucket, "anna@example.com"),
        keys.seen("V", bucket, "anna@example.com"))}
    assert tags == {f"{{b{bucket}}}"}
