"""Fixtures for end-to-end tests: a fake Slack Web API on loopback."""

from __future__ import annotations

import pytest

from tests.fakeslack import FakeSlack


@pytest.fixture
def fake():
    with FakeSlack() as fake:
        fake.precreate("general", channel_id="C0")
        yield fake
