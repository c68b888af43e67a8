import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from nbo.settings import get_settings

SECRET_KEY = "supersecret-key-123"


def test_settings_come_from_nbo_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBO_REDIS_URL", "redis://localhost:6390/2")
    monkeypatch.setenv("NBO_DATA_DIR", "/tmp/somewhere")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.redis_url == "redis://localhost:6390/2"
    assert settings.data_dir == Path("/tmp/somewhere")


def test_settings_are_built_once_until_the_cache_is_cleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = get_settings()
    monkeypatch.setenv("NBO_DATA_DIR", "/tmp/elsewhere")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().data_dir == Path("/tmp/elsewhere")


def test_api_keys_are_a_json_object_of_key_to_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBO_API_KEYS", f'{{"{SECRET_KEY}": "admin", "k-2": "reader"}}')
    get_settings.cache_clear()
    # roles are checked by api/auth.py's ApiKeys, whose message names no key
    assert get_settings().api_keys == {SECRET_KEY: "admin", "k-2": "reader"}


@pytest.mark.parametrize("value", [
    f'{{"k-1": "admin", "{SECRET_KEY}": 1}}', f'{{"{SECRET_KEY}": null}}',
    f'["{SECRET_KEY}"]', f'"{SECRET_KEY}"', f'{{"{SECRET_KEY}": admin}}',
    f'{{"{SECRET_KEY}": "decide", "{SECRET_KEY}": "admin"}}',
    f'{{"{SECRET_KEY}": {{"a": 1, "a": 2}}}}',  # a role that is no text, repeats inside
])
def test_a_malformed_api_keys_never_shows_a_key(
    monkeypatch: pytest.MonkeyPatch, value: str,
) -> None:
    monkeypatch.setenv("NBO_API_KEYS", value)
    get_settings.cache_clear()
    with pytest.raises((ValidationError, SettingsError)) as info:
        get_settings()
    assert SECRET_KEY not in str(info.value)
    assert "api_keys" in str(info.value)


@pytest.mark.parametrize(("name", "value", "wanted"), [
    ("NBO_HOLDOUT_JOURNEY_SHARES", '{"cart-abandoned": 1}', "'cart-abandoned'"),
    ("NBO_HOLDOUT_JOURNEY_SHARES", '{"win_back": 1.5}', "between 0 and 1"),
    ("NBO_CONTACT_CAPS", '{"e-mail": [[7, 2]]}', "'e-mail'"),
    ("NBO_CHANNEL_COSTS", '{"SMS": 0.05}', "'SMS'"),
    ("NBO_CHANNEL_COSTS", '{"sms": -1}', ">= 0"),
    ("NBO_CHANNEL_COSTS", '{"sms": 1e999}', "finite number"),  # JSON's infinity
    ("NBO_CONTACT_CAPS", '{"*": [[60, 9]]}', "31"),  # the store keeps 31 days of sends
])
def test_a_name_a_setting_does_not_know_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, wanted: str,
) -> None:
    """A typo would otherwise never apply, silently: no holdout, no cap, no cost."""
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with pytest.raises(ValidationError) as info:
        get_settings()
    assert name in str(info.value) and wanted in str(info.value)


def test_known_names_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBO_HOLDOUT_JOURNEY_SHARES", '{"cart_abandoned": 0.5}')
    monkeypatch.setenv("NBO_CONTACT_CAPS", '{"*": [[7, 5]], "email": [[1, 1]]}')
    monkeypatch.setenv("NBO_CHANNEL_COSTS", '{"sms": 0.1}')
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.holdout_journey_shares == {"cart_abandoned": 0.5}
    assert settings.contact_caps == {"*": [(7, 5)], "email": [(1, 1)]}
    assert settings.channel_costs == {"sms": 0.1}


@pytest.mark.parametrize("name", ["NBO_OPEN_VALUE", "NBO_DEFAULT_ORDER_VALUE"])
def test_amounts_of_the_policy_are_finite(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """An infinite open value made every channel's score null in the answers."""
    monkeypatch.setenv(name, "inf")
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="finite number"):
        get_settings()


@pytest.mark.parametrize(("days", "told"), [("inf", "less than or equal to 36500"),
                                             ("1e12", "less than or equal to 36500"),
                                             ("0.000001", "greater than or equal to")])
def test_offer_memory_is_a_whole_number_of_seconds_redis_can_keep(
        monkeypatch: pytest.MonkeyPatch, days: str, told: str) -> None:
    """Under a second, decision summaries expired as written (feedback got 404s); inf
    stopped the start with an OverflowError; 1e12 days failed every log write."""
    monkeypatch.setenv("NBO_OFFER_MEMORY_DAYS", days)
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match=told):
        get_settings()


@pytest.mark.parametrize(("name", "value", "told"), [
    ("NBO_CONTACT_CAPS", '{"push": [[1, 0]]}', "push (1, 0): days and max messages"),
    ("NBO_CONTACT_CAPS", '{"*": [[-3, 1]]}', "* (-3, 1): days and max messages"),
    ("NBO_REDIS_RETRY_AFTER_S", "inf", "less than or equal to 3600"),
    ("NBO_REDIS_TIMEOUT_S", "inf", "less than or equal to 3600"),
    ("NBO_LIVE_TTL_DAYS", "1e-5", "greater than or equal to"),
    ("NBO_LIVE_TTL_DAYS", "1e12", "less than or equal to 36500"),
    ("NBO_BLOCK_TTL_S", "10000000000000000", "less than or equal to"),
    ("NBO_EXPLORATION_TOP_K", "1000000000000000000000000000000", "less than or equal to"),
])
def test_values_that_broke_the_start_or_lost_data_are_refused_at_once(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, told: str) -> None:
    """Each passed the settings and then crashed the start (a traceback), answered 500s,
    or stored keys without expiry or with none at all."""
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match=re.escape(told)):
        get_settings()


def test_a_redis_url_whose_options_redis_cannot_read_is_refused_unshown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBO_REDIS_URL", "redis://:s3cretpw@127.0.0.1:6399/0?db=x")
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="not a valid Redis URL") as info:
        get_settings()
    assert "s3cretpw" not in str(info.value)


@pytest.mark.parametrize("url", ["localhost:6379", "http://localhost:6379", "tcp://redis/0"])
def test_a_redis_url_of_another_scheme_is_told_the_schemes(
        monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("NBO_REDIS_URL", url)
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="must start with redis://, rediss:// or unix://"):
        get_settings()
