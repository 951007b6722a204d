"""Shared fixtures: a fake clock, a store in a temp folder, a wired bot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.engine import IncidentService
from bot.runbook import Catalog, shipped_runbooks_dir
from bot.store import Store

START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "bot.db")
    yield store
    store.close()


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(shipped_runbooks_dir())


@pytest.fixture
def service(store: Store, clock: FakeClock, catalog: Catalog) -> IncidentService:
    return IncidentService(store, clock, catalog)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        db=tmp_path / "bot.db",
        runbooks=shipped_runbooks_dir(),
        postmortems=tmp_path / "postmortems",
        clock_speed=1.0,
        language="en",
    )
