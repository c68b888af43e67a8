"""Configuration from `NBO_`-prefixed environment variables, built once per process."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob nbo reads from its environment; see the README for the list."""

    model_config = SettingsConfigDict(env_prefix="NBO_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Redis server to use; unset means an embedded server under data_dir.",
    )
    data_dir: Path = Field(
        default=Path(".nbo"),
        description="Where the embedded Redis server keeps its append-only file.",
    )
    redis_start_timeout_s: float = Field(default=10.0, gt=0)
    live_ttl_days: float = Field(
        default=30.0, gt=0,
        description="How long a user's live feature changes outlive their last event.",
    )
    event_log_max: int = Field(
        default=1_000_000, ge=1000,
        description="Live events kept in the Redis stream for export (older ones trimmed).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
