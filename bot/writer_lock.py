"""One writer per SQLite file: a second `serve` (or drill) on the same file refuses to start.

Two processes carrying out the same journal would run acknowledged commands
twice and open channels twice. The lock is an OS lock (`flock`) on a file
beside the database, so it dies with its process: no stale lock after a crash
or SIGKILL. The lock file says who holds it, for the refusal message. Readers
(`postmortem`, `backup`, `report`, `validate`) never take it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import IO

from bot.clock import utc_now


class DatabaseInUse(Exception):
    """Another process writes this database; the message names it."""


class WriterLock:
    def __init__(self, handle: IO[str], path: Path) -> None:
        self._handle = handle
        self.path = path

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def hold_writer_lock(db: Path, what: str = "serve") -> WriterLock:
    """Take the database's writer lock for this process, or raise DatabaseInUse."""
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = _describe(handle.read())
        handle.close()
        raise DatabaseInUse(
            f"{db} is in use by {holder}; stop it first, or set INCIDENT_BOT_DB to another "
            "file (one process writes a SQLite database; replicas need PostgreSQL)"
        ) from None
    handle.seek(0)
    handle.truncate()
    started = utc_now().strftime("%Y-%m-%d %H:%M UTC")
    record = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": started}
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    return WriterLock(handle, path)


def _describe(text: str) -> str:
    try:
        record = json.loads(text)
        return (
            f"incident-bot {record['what']} (pid {record['pid']} on {record['host']}, "
            f"since {record['since']})"
        )
    except (ValueError, KeyError, TypeError):
        return "another incident-bot process"
