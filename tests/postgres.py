"""PostgreSQL for tests: a database of their own, created for the run and dropped after.

The server is the one on 127.0.0.1:5432 (trust authentication), or
`INCIDENT_BOT_TEST_POSTGRES` (an admin URL). Without one the PostgreSQL tests skip,
and the run says so once; with `INCIDENT_BOT_REQUIRE_POSTGRES=1` (CI) they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_URL = os.environ.get(
    "INCIDENT_BOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRED = os.environ.get("INCIDENT_BOT_REQUIRE_POSTGRES") == "1"
_reason: list[str] = []  # why PostgreSQL tests were skipped, said once at the end


def unavailable() -> str | None:
    """Why the test server cannot be used, or None."""
    try:
        import psycopg

        with psycopg.connect(ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # no driver, no server, no permission
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return None


def skip_or_fail() -> None:
    why = unavailable()
    if why is None:
        return
    if REQUIRED:
        pytest.fail(f"PostgreSQL is required here but {ADMIN_URL} is not reachable: {why}")
    if not _reason:
        _reason.append(f"PostgreSQL tests skipped: no server at {ADMIN_URL} ({why})")
    pytest.skip(_reason[0])


@contextmanager
def fresh_database() -> Iterator[str]:
    """CREATE DATABASE test_…; yields its URL; DROP DATABASE after, connections and all."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty(url: str) -> None:
    """Every table of the bot emptied (the schema stays): a clean start for the next test."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename != 'incident_bot_schema'"
            )
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def skipped_line() -> str | None:
    return _reason[0] if _reason else None
