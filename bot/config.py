"""Settings from the environment (and an optional `.env` file), checked at start.

The variable names are an outside contract: deployments, scripts and tests outside
this repository set them, so they never change meaning. A bad value stops
the bot with one line naming the variable and what it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """Settings that cannot be used; the message names the variable."""


class Settings(BaseSettings):
    # Only the documented variable names are read: no populate_by_name, which would
    # also read generic names such as LANGUAGE or DB from the environment.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    @classmethod
    def of(cls, **fields: object) -> Settings:
        """Settings from field names (tests, embedding): `Settings.of(db=path)`."""
        aliases = {name: info.validation_alias for name, info in cls.model_fields.items()}
        return cls.model_validate({str(aliases[name]): value for name, value in fields.items()})

    slack_bot_token: str | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(None, validation_alias="SLACK_API_URL")
    db: Path = Field(Path("incident-bot.db"), validation_alias="INCIDENT_BOT_DB")
    # drills and the demo keep their own file, so rehearsals never touch live incidents
    drill_db: Path = Field(Path("incident-bot-drill.db"), validation_alias="INCIDENT_BOT_DRILL_DB")
    runbooks: Path = Field(Path("runbooks"), validation_alias="INCIDENT_BOT_RUNBOOKS")
    postmortems: Path = Field(
        Path("postmortems"),
        validation_alias="INCIDENT_BOT_POSTMORTEMS",
    )
    clock_speed: float = Field(
        1.0,
        gt=0,
        le=100_000,
        validation_alias="INCIDENT_BOT_CLOCK_SPEED",
    )
    announce_channel: str | None = Field(None, validation_alias="INCIDENT_BOT_ANNOUNCE_CHANNEL")
    timezone: str = Field("UTC", validation_alias="INCIDENT_BOT_TIMEZONE")
    postmortem_language: Literal["en", "zh"] | None = Field(
        None,
        validation_alias="INCIDENT_BOT_POSTMORTEM_LANGUAGE",
    )
    postmortem_template: Path | None = Field(
        None,
        validation_alias="INCIDENT_BOT_POSTMORTEM_TEMPLATE",
    )
    log_format: Literal["text", "json"] = Field("text", validation_alias="INCIDENT_BOT_LOG_FORMAT")
    policy: Literal["lead", "anyone"] = Field("lead", validation_alias="INCIDENT_BOT_POLICY")
    admins: str = Field("", validation_alias="INCIDENT_BOT_ADMINS")  # user ids, comma-separated
    language: Literal["en", "zh"] = Field("en", validation_alias="INCIDENT_BOT_LANGUAGE")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return value

    @field_validator("postmortem_language", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("language", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


def admin_ids(settings: Settings) -> frozenset[str]:
    return frozenset(a.strip().lstrip("@") for a in settings.admins.split(",") if a.strip())


_ENV_NAMES = {
    "db": "INCIDENT_BOT_DB",
    "drill_db": "INCIDENT_BOT_DRILL_DB",
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
    "INCIDENT_BOT_POLICY": "lead (only the response lead, the declarer or an admin may close, "
    "change severity or take the lead role) or anyone",
    "INCIDENT_BOT_POSTMORTEM_LANGUAGE": "en or zh (empty: the runbook's language)",
    "INCIDENT_BOT_TIMEZONE": "an IANA time zone such as UTC, Europe/Berlin or Asia/Shanghai",
}


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise SettingsError with one line per bad variable."""
    try:
        return Settings.of(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "settings"
            env = _ENV_NAMES.get(name, name)
            accepts = _ACCEPTS.get(env, err["msg"])
            lines.append(f"{env}={err.get('input')!r} is not valid: use {accepts}")
        raise SettingsError("\n".join(lines)) from None
