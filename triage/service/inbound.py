"""The inbound queue: what SMTP, IMAP and the widget accepted and nobody has filed yet.

Postfix answers 250 once a mail is in its queue; triage does the same. The queue is a
SQLite file of its own beside the main database (``triage.db`` → ``triage.queue.db``, WAL,
``synchronous=FULL``), written by one thread of its own, so taking mail never waits for
the writer that files tickets in the main database (each SQLite file has one write lock).
A row is deleted only after the ticket it became is committed in the main database; a
crash in between delivers it to the writer again, and the Message-ID dedupe of the intake
makes that a no-op (an ``intake-duplicate-message-id`` event, never a second ticket).

Rows that failed are tried again after a pause (``attempts``, ``last_error``,
``next_attempt_at``); after :data:`MAX_ATTEMPTS` the writer quarantines them in the main database.
Like :class:`triage.store.Store`, an :class:`Inbound` is not thread-safe: the service
gives it one thread.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from triage.store import iso

MAX_ATTEMPTS = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                      -- 'email' (raw RFC 5322 bytes) or 'chat' (a widget line as JSON)
    raw BLOB NOT NULL,
    mail_from TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '[]',
    received_at TEXT NOT NULL,
    token_hash TEXT NOT NULL DEFAULT '',     -- chat: the conversation the line belongs to
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    next_attempt_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbound_token ON inbound(token_hash) WHERE token_hash != '';
"""


def queue_path(database: Path) -> Path:
    """The queue file beside the main database: ``var/triage.db`` → ``var/triage.queue.db``."""
    return database.with_name(f"{database.stem}.queue{database.suffix or '.db'}")


@dataclass
class Queued:
    """One queued row as the dispatcher hands it to a worker and then to the writer."""

    id: int
    kind: str
    raw: bytes
    mail_from: str
    recipients: list[str]
    received_at: str
    attempts: int

    @property
    def envelope(self) -> dict[str, Any]:
        return {"mail_from": self.mail_from, "rcpt_to": self.recipients}

    @property
    def chat(self) -> dict[str, Any]:
        """A chat row's line (tenant, email, name, user_hash, text, client_id, token)."""
        return json.loads(self.raw)


class Inbound:
    """The queue file and its few queries."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        self._upgrade()

    def _upgrade(self) -> None:
        """A queue file written before the time columns were named like the main database's
        (``next_at``, see ``m010_time_columns`` in triage/store.py) may still hold mail: rename in place."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(inbound)")}
        if "next_at" in columns:
            self.conn.execute("ALTER TABLE inbound RENAME COLUMN next_at TO next_attempt_at")

    def close(self) -> None:
        self.conn.close()

    def add(self, rows: list[dict[str, Any]]) -> list[int]:
        """Group commit: every row in one transaction (one fsync); their ids once it is on disk."""
        ids = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                cursor = self.conn.execute(
                    "INSERT INTO inbound (kind, raw, mail_from, recipients, received_at, token_hash, next_attempt_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [row["kind"], row["raw"], row.get("mail_from", ""), json.dumps(row.get("recipients", [])),
                     row["received_at"], row.get("token_hash", ""), row["received_at"]])
                ids.append(int(cursor.lastrowid or 0))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return ids

    def due(self, now: datetime, skip: set[int], limit: int) -> list[Queued]:
        """The oldest rows that may be tried now, except those already being worked on."""
        rows = self.conn.execute(
            "SELECT id, kind, raw, mail_from, recipients, received_at, attempts FROM inbound "
            "WHERE next_attempt_at <= ? ORDER BY id LIMIT ?", [iso(now), limit + len(skip)]).fetchall()
        return [Queued(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows if r[0] not in skip][:limit]

    def finish(self, done: list[int], failed: dict[int, str], now: datetime, delay: float) -> None:
        """After the writer's commit: filed (or quarantined) rows go, failed ones wait ``delay`` × attempts."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("DELETE FROM inbound WHERE id = ?", [[i] for i in done])
            for row_id, error in failed.items():
                self.conn.execute(
                    "UPDATE inbound SET attempts = attempts + 1, last_error = ?, "
                    "next_attempt_at = ? WHERE id = ?", [error, iso(now + timedelta(seconds=delay)), row_id])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def depth(self) -> tuple[int, str | None]:
        """How many mails wait, and when the oldest of them arrived."""
        count, oldest = self.conn.execute("SELECT count(*), min(received_at) FROM inbound").fetchone()
        return int(count), oldest

    def pending_chat(self, token_hash: str) -> dict[str, Any] | None:
        """The first queued line of a conversation that is not filed yet (its tenant and email)."""
        row = self.conn.execute("SELECT raw FROM inbound WHERE token_hash = ? ORDER BY id LIMIT 1",
                                [token_hash]).fetchone()
        return json.loads(row[0]) if row else None
