from pathlib import Path

import pytest

from nbo.settings import get_settings


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
