"""Logs never show secrets and always name the incident; settings read only their own names."""

from __future__ import annotations

import json
import logging

import pytest

from bot.config import SettingsError, load_settings
from bot.logs import current_incident, setup_logging


@pytest.fixture
def log_lines(capsys):
    def lines(json_lines: bool, secrets=()) -> list[str]:
        return capsys.readouterr().err.strip().splitlines()

    yield lines
    logging.getLogger().handlers.clear()


def test_tokens_and_the_signing_secret_never_reach_the_log(log_lines):
    setup_logging(secrets=["sup3r-signing-secret"])
    log = logging.getLogger("bot.test")
    log.warning("auth with xoxb-1234-5678-abcdef failed, app token xapp-1-A1-99")
    log.warning("signature with sup3r-signing-secret did not match")
    try:
        raise RuntimeError("token=xoxb-9999-secret")
    except RuntimeError:
        log.exception("boom")
    text = "\n".join(log_lines(False))
    assert "xoxb-1234" not in text and "xapp-1-A1" not in text and "xoxb-9999" not in text
    assert "sup3r-signing-secret" not in text
    assert text.count("xox-***") >= 3


def test_every_line_names_the_incident_and_json_is_one_object_per_line(log_lines):
    setup_logging(json_lines=True)
    token = current_incident.set("INC-7")
    try:
        logging.getLogger("bot.test").info("reminder posted")
    finally:
        current_incident.reset(token)
    (line,) = log_lines(True)
    entry = json.loads(line)
    assert entry["incident"] == "INC-7" and entry["message"] == "reminder posted"
    assert entry["level"] == "INFO"


def test_generic_environment_names_are_ignored(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en_US:en")  # set on many desktops
    monkeypatch.setenv("DB", "/elsewhere.db")
    monkeypatch.setenv("CLOCK_SPEED", "3600")
    settings = load_settings()
    assert settings.language == "en" and str(settings.db) == "incident-bot.db"
    assert settings.clock_speed == 1


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INCIDENT_BOT_CLOCK_SPEED", "0", "INCIDENT_BOT_CLOCK_SPEED='0' is not valid"),
        ("INCIDENT_BOT_LANGUAGE", "fr", "use en or zh"),
        ("INCIDENT_BOT_TIMEZONE", "Mars/Olympus", "an IANA time zone"),
        ("INCIDENT_BOT_POLICY", "everyone", "lead (only the response lead"),
        ("INCIDENT_BOT_LOG_FORMAT", "xml", "INCIDENT_BOT_LOG_FORMAT='xml' is not valid"),
    ],
)
def test_a_bad_setting_names_the_variable_and_what_it_takes(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert message in str(caught.value) and name in str(caught.value)
