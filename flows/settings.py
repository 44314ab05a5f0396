"""Settings from the environment (PREPFLOW_*): where the store lives, and so on."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment-driven settings; nothing secret lives in a process definition."""

    model_config = SettingsConfigDict(env_prefix="PREPFLOW_", extra="ignore")

    database_url: str | None = None
    """Any SQLAlchemy URL; default: sqlite:///prepflow.db in the working directory."""
