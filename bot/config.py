"""Settings from the environment (and an optional `.env` file), checked at start.

The variable names are an outside contract (DESIGN.md §4). A bad value stops
the bot with one line naming the variable and what it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """Settings that cannot be used; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: str | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(None, validation_alias="SLACK_API_URL")
    db: Path = Field(
        Path("incident-bot.db"), validation_alias=AliasChoices("INCIDENT_BOT_DB", "db")
    )
    runbooks: Path = Field(
        Path("runbooks"), validation_alias=AliasChoices("INCIDENT_BOT_RUNBOOKS", "runbooks")
    )
    postmortems: Path = Field(
        Path("postmortems"),
        validation_alias=AliasChoices("INCIDENT_BOT_POSTMORTEMS", "postmortems"),
    )
    clock_speed: float = Field(
        1.0,
        gt=0,
        le=100_000,
        validation_alias=AliasChoices("INCIDENT_BOT_CLOCK_SPEED", "clock_speed"),
    )
    announce_channel: str | None = Field(
        None, validation_alias=AliasChoices("INCIDENT_BOT_ANNOUNCE_CHANNEL", "announce_channel")
    )
    language: Literal["en", "zh"] = Field(
        "en", validation_alias=AliasChoices("INCIDENT_BOT_LANGUAGE", "language")
    )

    @field_validator("language", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


_ENV_NAMES = {
    "db": "INCIDENT_BOT_DB",
    "runbooks": "INCIDENT_BOT_RUNBOOKS",
    "postmortems": "INCIDENT_BOT_POSTMORTEMS",
    "clock_speed": "INCIDENT_BOT_CLOCK_SPEED",
    "language": "INCIDENT_BOT_LANGUAGE",
}
_ACCEPTS = {
    "INCIDENT_BOT_CLOCK_SPEED": (
        "a number greater than 0 (up to 100000), e.g. 60 for 1 real second = 1 bot minute"
    ),
    "INCIDENT_BOT_LANGUAGE": "en or zh",
}


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise SettingsError with one line per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "settings"
            env = _ENV_NAMES.get(name, name)
            accepts = _ACCEPTS.get(env, err["msg"])
            lines.append(f"{env}={err.get('input')!r} is not valid: use {accepts}")
        raise SettingsError("\n".join(lines)) from None
