"""Settings from the environment (and an optional `.env` file), checked at start.

The variable names are an outside contract: deployments, scripts and tests outside
this repository set them, so they never change meaning. A bad value stops
the bot with one line naming the variable and what it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.database import is_postgres

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MIN_TOKEN = 16  # characters of INCIDENT_BOT_WEBHOOK_TOKEN: a guessable token guards nothing


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
    # a SQLite file, or postgresql://user@host:port/db for replicas (kept as text: a URL is
    # not a path)
    db: str = Field("incident-bot.db", validation_alias="INCIDENT_BOT_DB")
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
    # alerts in, pages and events out (DESIGN §4b)
    routes: Path = Field(Path("config/routes.yaml"), validation_alias="INCIDENT_BOT_ROUTES")
    webhook_token: str | None = Field(None, validation_alias="INCIDENT_BOT_WEBHOOK_TOKEN")
    pagerduty_routing_key: str | None = Field(
        None, validation_alias="INCIDENT_BOT_PAGERDUTY_ROUTING_KEY"
    )
    pagerduty_url: str = Field(PAGERDUTY_EVENTS_URL, validation_alias="INCIDENT_BOT_PAGERDUTY_URL")
    notify_urls: str = Field("", validation_alias="INCIDENT_BOT_NOTIFY_URLS")  # comma-separated
    notify_secret: str | None = Field(None, validation_alias="INCIDENT_BOT_NOTIFY_SECRET")

    @field_validator("webhook_token", "pagerduty_routing_key", "notify_secret", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook_token")
    @classmethod
    def _long_token(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < MIN_TOKEN or value != value.strip()):
            raise ValueError("too short")
        return value

    @field_validator("pagerduty_url")
    @classmethod
    def _web_url(cls, value: str) -> str:
        if not _is_web_url(value):
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("notify_urls")
    @classmethod
    def _web_urls(cls, value: str) -> str:
        if any(not _is_web_url(url) for url in _split(value)):
            raise ValueError("not a list of http(s) URLs")
        return value

    @model_validator(mode="after")
    def _secret_with_urls(self) -> Settings:
        if _split(self.notify_urls) and not self.notify_secret:
            raise ValueError(
                "INCIDENT_BOT_NOTIFY_SECRET is not set: INCIDENT_BOT_NOTIFY_URLS needs it to sign "
                "each event (X-Incident-Bot-Signature); set it to a long random string, e.g. "
                "the output of `openssl rand -hex 32`, and give the same one to the receivers"
            )
        return self

    @property
    def notify_targets(self) -> list[str]:
        """INCIDENT_BOT_NOTIFY_URLS as a list, in the order given, without repeats."""
        return list(dict.fromkeys(_split(self.notify_urls)))

    @field_validator("db", mode="before")
    @classmethod
    def _location(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

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


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _is_web_url(value: str) -> bool:
    parsed = urlsplit(value)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname) and " " not in value


def database_file(location: str) -> Path | None:
    """The SQLite file a database location names; None for a PostgreSQL URL."""
    return None if is_postgres(location) else Path(location)


def database_missing(location: str) -> bool:
    """A SQLite file that does not exist yet (a PostgreSQL database is never 'missing'
    here: connecting says whether it is there)."""
    path = database_file(location)
    return path is not None and not path.exists()


def admin_ids(settings: Settings) -> frozenset[str]:
    return frozenset(a.strip().lstrip("@") for a in settings.admins.split(",") if a.strip())


_ENV_NAMES = {
    "db": "INCIDENT_BOT_DB",
    "drill_db": "INCIDENT_BOT_DRILL_DB",
    "runbooks": "INCIDENT_BOT_RUNBOOKS",
    "postmortems": "INCIDENT_BOT_POSTMORTEMS",
    "clock_speed": "INCIDENT_BOT_CLOCK_SPEED",
    "language": "INCIDENT_BOT_LANGUAGE",
    "routes": "INCIDENT_BOT_ROUTES",
    "webhook_token": "INCIDENT_BOT_WEBHOOK_TOKEN",
    "pagerduty_routing_key": "INCIDENT_BOT_PAGERDUTY_ROUTING_KEY",
    "pagerduty_url": "INCIDENT_BOT_PAGERDUTY_URL",
    "notify_urls": "INCIDENT_BOT_NOTIFY_URLS",
    "notify_secret": "INCIDENT_BOT_NOTIFY_SECRET",
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
    "INCIDENT_BOT_WEBHOOK_TOKEN": f"a random string of at least {MIN_TOKEN} characters without "
    "spaces around it, e.g. the output of `openssl rand -hex 32` (or leave it unset: hooks off)",
    "INCIDENT_BOT_PAGERDUTY_URL": "an http(s) URL such as " + PAGERDUTY_EVENTS_URL,
    "INCIDENT_BOT_NOTIFY_URLS": "http(s) URLs separated by commas, e.g. "
    "https://status.example.com/hook,https://tracker.example.com/hook",
}
_SECRET = {"INCIDENT_BOT_WEBHOOK_TOKEN", "INCIDENT_BOT_NOTIFY_SECRET"}  # never echoed back


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise SettingsError with one line per bad variable."""
    try:
        return Settings.of(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            if not err["loc"]:  # a rule across variables: its message names them
                lines.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            name = str(err["loc"][0])
            env = _ENV_NAMES.get(name, name)
            accepts = _ACCEPTS.get(env, err["msg"])
            given = "(hidden)" if env in _SECRET else repr(err.get("input"))
            lines.append(f"{env}={given} is not valid: use {accepts}")
        raise SettingsError("\n".join(lines)) from None
