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
