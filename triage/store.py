"""SQLite storage for tickets, messages, the audit trail, the outbox and the directory.

One file, opened with sqlite-utils, readable as it is by ``sqlite-utils`` and Datasette.
SQLite transactions play the role of Mailman's queue files: an inbound message, its ticket,
its events and its outbox rows are committed together before SMTP says 250, and the outbox
rows are the outgoing queue. The database runs in WAL mode with ``synchronous=FULL`` so a
commit is on disk when it returns (a power cut loses nothing that was acknowledged).

A :class:`Store` is not thread-safe: the service gives it one thread of its own and sends
every database call there; command-line tools open their own.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from triage.core.directory import User
from triage.desk.search import fts_query

STATUSES = ("new", "open", "pending", "resolved", "closed")
OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "held_local")
FIRST_NUMBER = 1001

migrations = Migrations("triage")


def iso(when: datetime) -> str:
    """Timestamps are stored as UTC ISO 8601 text: readable in Datasette and sortable as text."""
    return when.astimezone(timezone.utc).isoformat(timespec="microseconds")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@migrations()
def m001_initial(db: Database) -> None:
    """The first schema: every table the service needs."""
    db["tickets"].create({
        "id": int, "tenant": str, "number": int, "status": str, "priority": str,
        "category": str, "intent": str, "requester": str, "trust": str, "language": str,
        "channel": str, "subject": str, "requester_address": str,
        "created_at": str, "updated_at": str,
    }, pk="id", not_null=["number", "status", "created_at", "updated_at"])
    db["tickets"].create_index(["tenant", "number"], unique=True)
    db["tickets"].create_index(["status"])

    db["messages"].create({
        "id": int, "ticket": int, "direction": str, "message_id": str, "channel": str,
        "sender": str, "recipients": str, "subject": str, "text": str, "raw_size": int,
        "raw": bytes, "at": str,
    }, pk="id", foreign_keys=[("ticket", "tickets", "id")], not_null=["direction", "message_id"])
    # Dedupe: the same Message-ID delivered twice is one inbound message.
    db.execute("CREATE UNIQUE INDEX idx_messages_inbound_message_id "
               "ON messages(message_id) WHERE direction = 'in'")
    db["messages"].create_index(["ticket"])
    db["messages"].enable_fts(["subject", "text"], create_triggers=True)

    db["events"].create({
        "id": int, "ticket": int, "message": int, "kind": str, "rules": str,
        "outcome": str, "detail": str, "at": str,
    }, pk="id", foreign_keys=[("ticket", "tickets", "id"), ("message", "messages", "id")])
    db["events"].create_index(["ticket"])

    db["outbox"].create({
        "id": int, "ticket": int, "kind": str, "mail_from": str, "recipients": str,
        "subject": str, "message_id": str, "raw": bytes, "status": str, "attempts": int,
        "next_attempt_at": str, "last_error": str, "created_at": str, "sent_at": str,
    }, pk="id", foreign_keys=[("ticket", "tickets", "id")], defaults={"attempts": 0, "last_error": ""},
        not_null=["status", "raw", "message_id"])
    db["outbox"].create_index(["status", "next_attempt_at"])

    db["participants"].create({"ticket": int, "address": str, "role": str, "added_at": str},
                              pk=("ticket", "address"), foreign_keys=[("ticket", "tickets", "id")])
    db["suppressions"].create({"address": str, "until": str, "reason": str, "created_at": str},
                              pk="address")
    db["sent_log"].create({"id": int, "address": str, "ticket": int, "at": str}, pk="id")
    db["sent_log"].create_index(["address", "at"])
    db["sent_log"].create_index(["at"])
    db["quarantine"].create({
        "id": int, "sha256": str, "raw": bytes, "envelope": str, "error": str,
        "attempts": int, "first_at": str, "last_at": str,
    }, pk="id")
    db["quarantine"].create_index(["sha256"], unique=True)
    db["directory"].create({
        "tenant": str, "email": str, "name": str, "company": str, "role": str,
        "status": str, "invitation_expires": str, "imported_at": str,
    }, pk=("tenant", "email"))
    db["directory_imports"].create({"id": int, "tenant": str, "source": str, "rows": int, "at": str},
                                   pk="id")
    db["settings"].create({"name": str, "value": str}, pk="name")


@migrations()
def m002_imap(db: Database) -> None:
    """IMAP mailboxes: how far each one has been read. A UID means something only together
    with the folder's UIDVALIDITY, so both are kept; mail that cannot be processed goes to
    the existing ``quarantine`` table."""
    db["imap_state"].create({
        "tenant": str, "mailbox": str, "uidvalidity": int, "last_uid": int, "updated_at": str,
    }, pk=("tenant", "mailbox"), not_null=["uidvalidity", "last_uid"])


@migrations()
def m003_widget(db: Database) -> None:
    """Help-widget conversations: the browser holds a random token, the database only its
    SHA-256 (a leaked database does not let anyone read or continue a conversation)."""
    db["widget_conversations"].create({
        "id": int, "token_hash": str, "tenant": str, "ticket": int, "email": str, "name": str,
        "verified": int, "created_at": str, "last_seen": str,
    }, pk="id", foreign_keys=[("ticket", "tickets", "id")], not_null=["token_hash", "tenant", "created_at"])
    db["widget_conversations"].create_index(["token_hash"], unique=True)
    db["widget_conversations"].create_index(["ticket"])


@migrations()
def m004_slack(db: Database) -> None:
    """Agents in Slack: which Slack thread shows each ticket (and how far it has been posted,
    so posting survives restarts like an outbox), agents' label corrections for ``triage
    train``, and who a ticket is assigned to."""
    db["slack_threads"].create({
        "ticket": int, "channel": str, "ts": str, "posted_at": str,
        "last_message": int,  # the last inbound message shown in the thread
        "reminded_at": str,  # the first-response reminder, sent once
    }, pk="ticket", foreign_keys=[("ticket", "tickets", "id")], not_null=["channel", "ts"])
    db["slack_threads"].create_index(["channel", "ts"], unique=True)
    db["corrections"].create({
        "id": int, "ticket": int, "label": str, "agent": str, "subject": str, "text": str,
        "channel": str, "language": str, "at": str,
    }, pk="id", foreign_keys=[("ticket", "tickets", "id")], not_null=["label", "text"])
    db["tickets"].add_column("assignee", str)


@migrations()
def m005_console_agents(db: Database) -> None:
    """Agents of the web console: an argon2 hash of the password (never the password), and
    the tenants they may see (a JSON list; ``null`` means every tenant)."""
    db["agents"].create({"email": str, "name": str, "password_hash": str, "tenants": str, "created_at": str},
                        pk="email", not_null=["name", "password_hash", "created_at"])


@migrations()
def m006_foreign_keys(db: Database) -> None:
    """The references the first schemas left implicit, so Datasette links them and SQLite
    checks them: a rate-limit row names its ticket, a Slack thread its last message shown."""
    db["sent_log"].add_foreign_key("ticket", "tickets", "id")
    db["slack_threads"].add_foreign_key("last_message", "messages", "id")


@migrations()
def m007_report_indexes(db: Database) -> None:
    """Reports (``triage/desk/reports.py``) select tickets by creation time, optionally per tenant:
    without these a report on a month of a million tickets scans the whole table. (Each
    ticket's events are then read through the existing ``events(ticket)`` index.)"""
    db["tickets"].create_index(["created_at"], if_not_exists=True)
    db["tickets"].create_index(["tenant", "created_at"], if_not_exists=True)


@migrations()
def m008_inbox_indexes(db: Database) -> None:
    """Indexes bench/scale.py showed missing at a million tickets: a tenant's tickets newest
    first (``triage tickets --tenant``), and its inbox by status, newest or most urgent first."""
    db["tickets"].create_index(["tenant", "id"])
    db["tickets"].create_index(["tenant", "status", "id"])
    db["tickets"].create_index(["tenant", "status", "priority", "id"])


@migrations()
def m009_webhooks(db: Database) -> None:
    """Signed HTTP calls (portal actions and ticket events), queued like the outbox: a row is
    written in the transaction of the decision or event it reports, and its idempotency key
    stays the same over every retry, so the receiver can act on it at most once."""
    db["webhook_deliveries"].create({
        "id": int, "receiver": str, "kind": str, "ticket": int, "event": str, "url": str,
        "body": str, "idempotency_key": str, "status": str, "attempts": int, "next_attempt_at": str,
        "last_error": str, "response": str, "created_at": str, "sent_at": str,
    }, pk="id", foreign_keys=[("ticket", "tickets", "id")], defaults={"attempts": 0, "last_error": ""},
        not_null=["receiver", "kind", "url", "body", "idempotency_key", "status"])
    db["webhook_deliveries"].create_index(["receiver", "status", "id"])
    db["webhook_deliveries"].create_index(["idempotency_key"], unique=True)


@migrations()
def m010_time_columns(db: Database) -> None:
    """Time columns named one way: ``created_at`` for when a row came to be (a message received
    or written, an event, a correction), and a name that says what happened otherwise
    (``sent_at``, ``imported_at``, ``expires_at``, ``first_failed_at``, ``last_seen_at``).
    ``RENAME COLUMN`` rewrites the indexes and the full-text triggers that name a column; the two
    ``sent_log`` indexes are made again only so their names say the new column too."""
    renamed = {  # table: {old name: new name}
        "messages": {"at": "created_at"},
        "events": {"at": "created_at"},
        "corrections": {"at": "created_at"},
        "sent_log": {"at": "sent_at"},
        "directory_imports": {"at": "imported_at"},
        "suppressions": {"until": "expires_at"},
        "quarantine": {"first_at": "first_failed_at", "last_at": "last_failed_at"},
        "widget_conversations": {"last_seen": "last_seen_at"},
    }
    for table, renames in renamed.items():
        for old, new in renames.items():
            db.execute(f"ALTER TABLE [{table}] RENAME COLUMN [{old}] TO [{new}]")
    db.execute("DROP INDEX IF EXISTS idx_sent_log_at")
    db.execute("DROP INDEX IF EXISTS idx_sent_log_address_at")
    db["sent_log"].create_index(["sent_at"])
    db["sent_log"].create_index(["address", "sent_at"])



@migrations()
def m011_console_signouts(db: Database) -> None:
    """Console sessions ended by signing out. A session cookie is signed, not stored, so deleting
    it in the browser leaves a copy (a proxy log, another tab's jar) valid until it expires; the
    session id written here is refused from then on. Rows past ``expires_at`` are useless (the
    cookie has expired by itself) and are deleted at the next sign-out."""
    db["console_signouts"].create({"sid": str, "expires_at": str}, pk="sid", not_null=["expires_at"])
    db["console_signouts"].create_index(["expires_at"])


@migrations()
def m012_relay_log(db: Database) -> None:
    """One row per message relayed to a tenant's contacts: whom it was for (the requester's
    mailbox) and which tenant, so the loop gate can cap relays per requester and per tenant
    (email.relay_limits, email.tenant_relay_limits). Rows older than the longest window are
    pruned as the sent log's are."""
    db["relay_log"].create({"id": int, "requester": str, "tenant": str, "ticket": int, "relayed_at": str},
                           pk="id", not_null=["requester", "tenant", "relayed_at"])
    db["relay_log"].create_index(["requester", "relayed_at"])
    db["relay_log"].create_index(["tenant", "relayed_at"])


def connect(path: Path | str) -> Database:
    """Open (and create or migrate) the database with the durability settings of the service."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    db = Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    # 64 MiB of page cache instead of SQLite's 2 MiB: at a million tickets the full-text index
    # and the message indexes no longer fit the default, and every insert went to the disk cache
    db.execute("PRAGMA cache_size=-65536")
    if migrations.pending(db):
        migrations.apply(db)
    return db


def _narrowed(sql: str, params: list[Any], conditions: dict[str, Any]) -> tuple[str, list[Any]]:
    """``sql`` (a WHERE clause already begun) and its parameters, with `` AND condition`` for
    each condition (one ``?`` each) whose value is given: an empty or None value does not filter."""
    for condition, value in conditions.items():
        if value:
            sql += f" AND {condition}"
            params.append(value)
    return sql, params


class Store:
    """The queries the service and the CLI need, each one small and named for what it means."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.db = connect(self.path)

    def close(self) -> None:
        self.db.close()

    def backup(self, target: Path) -> int:
        """A consistent copy of the whole database while the service keeps writing (SQLite's
        online backup API: unlike copying the file, it includes what is still in the WAL).
        Written beside the target and renamed into place, so a crash never leaves half a
        backup under the target's name. Returns the number of tickets copied."""
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        copy = sqlite3.connect(str(partial))
        try:
            self.db.conn.backup(copy)
            ok = copy.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its integrity check: {ok}")
            tickets = copy.execute("SELECT count(*) FROM tickets").fetchone()[0]
        finally:
            copy.close()
        partial.replace(target)
        return tickets

    def checkpoint(self) -> None:
        """Move what the WAL holds into the database file, so the file alone is current and the
        WAL does not grow without bound between SQLite's own automatic checkpoints."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One transaction; nested calls are savepoints (one bad message, not the batch, rolls back)."""
        with self.db.atomic() as db:
            yield db

    def _insert(self, table: str, row: dict[str, Any], or_ignore: bool = False) -> int:
        """A plain INSERT: the hot path of intake (sqlite-utils' generic insert costs more than SQLite)."""
        columns = ", ".join(row)
        marks = ", ".join("?" * len(row))
        verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
        cursor = self.db.execute(f"{verb} INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
        return cursor.lastrowid or 0

    def _one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = list(self.db.query(sql, list(params)))
        return rows[0] if rows else None

    def _scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = self.db.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    # -- settings ---------------------------------------------------------------------

    def setting(self, name: str, make: Callable[[], str]) -> str:
        """A persisted value, created with ``make()`` the first time it is asked for."""
        row = self._one("SELECT value FROM settings WHERE name = ?", [name])
        if row is not None:
            return row["value"]
        value = make()
        with self.transaction():
            self.db["settings"].insert({"name": name, "value": value}, ignore=True)
        return self._one("SELECT value FROM settings WHERE name = ?", [name])["value"]

    def random_key(self, name: str) -> bytes:
        return bytes.fromhex(self.setting(name, lambda: secrets.token_hex(32)))

    # -- tickets ------------------------------------------------------------------------

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM tickets WHERE id = ?", [ticket_id])

    def ticket_by_number(self, tenant: str | None, number: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM tickets WHERE tenant IS ? AND number = ?", [tenant, number])

    def next_number(self, tenant: str | None) -> int:
        """Human ticket numbers count per tenant from 1001 (the single writer makes this safe)."""
        last = self._scalar("SELECT max(number) FROM tickets WHERE tenant IS ?", [tenant])
        return FIRST_NUMBER if last is None else last + 1

    def create_ticket(self, row: dict[str, Any]) -> int:
        return self._insert("tickets", row)

    def update_ticket(self, ticket_id: int, changes: dict[str, Any]) -> None:
        self.db["tickets"].update(ticket_id, changes)

    def tickets(self, tenant: str | None = None, status: str | None = None,
                category: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = [], []
        for column, value in (("tenant", tenant), ("status", status), ("category", category)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM tickets" + (" WHERE " + " AND ".join(where) if where else "")
        return list(self.db.query(sql + " ORDER BY id DESC LIMIT ?", params + [limit]))

    def inbox(self, tenant: str, status: str, urgent_first: bool = False, page: int = 0,
              per_page: int = 50) -> list[dict[str, Any]]:
        """One page of a tenant's tickets in a status, newest first, or urgent ones first (then
        newest). Two index range scans instead of sorting every matching ticket."""
        where = "FROM tickets WHERE tenant = ? AND status = ?"
        offset = page * per_page
        if not urgent_first:
            return list(self.db.query(f"SELECT * {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                                      [tenant, status, per_page, offset]))
        urgent = self._scalar(f"SELECT count(*) {where} AND priority = 'urgent'", [tenant, status])
        rows = list(self.db.query(f"SELECT * {where} AND priority = 'urgent' ORDER BY id DESC LIMIT ? OFFSET ?",
                                  [tenant, status, per_page, offset])) if offset < urgent else []
        if len(rows) < per_page:
            rows += self.db.query(f"SELECT * {where} AND priority != 'urgent' ORDER BY id DESC LIMIT ? OFFSET ?",
                                  [tenant, status, per_page - len(rows), max(offset - urgent, 0)])
        return rows

    def find_tickets(self, number: int, tenant: str | None = None) -> list[dict[str, Any]]:
        """Tickets with a human number (one per tenant unless ``tenant`` narrows it)."""
        if tenant:
            return list(self.db.query("SELECT * FROM tickets WHERE number = ? AND tenant = ?", [number, tenant]))
        return list(self.db.query("SELECT * FROM tickets WHERE number = ? ORDER BY id", [number]))

    # -- participants ---------------------------------------------------------------------

    def add_participant(self, ticket_id: int, address: str, role: str, at: str) -> None:
        self._insert("participants", {"ticket": ticket_id, "address": address.lower(), "role": role,
                                      "added_at": at}, or_ignore=True)

    def is_participant(self, ticket_id: int, address: str) -> bool:
        return self._scalar("SELECT 1 FROM participants WHERE ticket = ? AND address = ?",
                            [ticket_id, address.lower()]) is not None

    # -- messages and events --------------------------------------------------------------

    def inbound(self, message_id: str) -> dict[str, Any] | None:
        """The stored inbound message with this Message-ID (dedupe)."""
        return self._one("SELECT id, ticket FROM messages WHERE message_id = ? AND direction = 'in'",
                         [message_id])

    def mailed_to(self, ticket_id: int, message_id: str) -> list[str] | None:
        """The recipients of the mail the bot sent on a ticket with this Message-ID (None: no such mail)."""
        row = self._one("SELECT recipients FROM messages WHERE ticket = ? AND direction = 'out' "
                        "AND channel = 'email' AND message_id = ?", [ticket_id, message_id])
        return [str(a).lower() for a in json.loads(row["recipients"] or "[]")] if row else None

    def inbound_messages(self, ticket_id: int) -> list[dict[str, Any]]:
        """A ticket's inbound messages, oldest first."""
        return list(self.db.query("SELECT * FROM messages WHERE ticket = ? AND direction = 'in' ORDER BY id",
                                  [ticket_id]))

    def first_inbound(self, ticket_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM messages WHERE ticket = ? AND direction = 'in' ORDER BY id LIMIT 1",
                         [ticket_id])

    def has_event(self, ticket_id: int, kinds: tuple[str, ...], outcome_contains: str = "",
                  outcome: str = "", once: str = "") -> bool:
        """Whether the audit trail has an event of these kinds (whose outcome contains a text, or
        is one; that names the agent's act ``once``, see ``Agents.reply``)."""
        marks = ", ".join("?" for _ in kinds)
        sql, params = _narrowed(f"SELECT 1 FROM events WHERE ticket = ? AND kind IN ({marks})", [ticket_id, *kinds],
                                {"instr(outcome, ?) > 0": outcome_contains, "outcome = ?": outcome,
                                 "json_extract(detail, '$.once') = ?": once})
        return bool(self._scalar(sql + " LIMIT 1", params))

    def events_of(self, kinds: tuple[str, ...], tenant: str | None = None,
                  since: str | None = None) -> list[dict[str, Any]]:
        """Every ticket's events of these kinds (a tenant's tickets' only, from ``since`` on), oldest first."""
        marks = ", ".join("?" for _ in kinds)
        sql, params = _narrowed(f"SELECT events.* FROM events JOIN tickets ON tickets.id = events.ticket "
                                f"WHERE events.kind IN ({marks})", list(kinds),
                                {"tickets.tenant = ?": tenant, "events.created_at >= ?": since})
        return [dict(r) for r in self.db.query(sql + " ORDER BY events.id", params)]

    def latest_event(self, ticket_id: int, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        """The ticket's most recent event of these kinds (say the decision in force)."""
        marks = ", ".join("?" for _ in kinds)
        return self._one(f"SELECT * FROM events WHERE ticket = ? AND kind IN ({marks}) ORDER BY id DESC LIMIT 1",
                         [ticket_id, *kinds])

    def add_correction(self, row: dict[str, Any]) -> int:
        """An agent's label for a ticket: a training example for ``triage train``."""
        return self._insert("corrections", row)

    def latest_correction(self, ticket_id: int) -> str | None:
        return self._scalar("SELECT label FROM corrections WHERE ticket = ? ORDER BY id DESC LIMIT 1", [ticket_id])

    def corrections(self) -> list[dict[str, Any]]:
        """The latest correction of every corrected ticket."""
        return list(self.db.query("SELECT label, subject, text, channel, language FROM corrections WHERE id IN "
                                  "(SELECT max(id) FROM corrections GROUP BY ticket) ORDER BY id"))

    def add_message(self, row: dict[str, Any]) -> int:
        return self._insert("messages", row)

    def add_event(self, ticket: int | None, kind: str, rules: list[str], outcome: str, at: str,
                  message: int | None = None, detail: dict[str, Any] | None = None) -> int:
        return self._insert("events", {
            "ticket": ticket, "message": message, "kind": kind,
            "rules": json.dumps(rules, ensure_ascii=False), "outcome": outcome,
            "detail": json.dumps(detail or {}, ensure_ascii=False), "created_at": at,
        })

    def set_event_detail(self, event_id: int, detail: dict[str, Any]) -> None:
        """Rewrite an event's detail: a refusal summary's count once its window has ended."""
        with self.transaction():
            self.db.execute("UPDATE events SET detail = ? WHERE id = ?",
                            [json.dumps(detail, ensure_ascii=False), event_id])

    def conversation(self, ticket_id: int) -> list[dict[str, Any]]:
        return list(self.db.query(
            "SELECT id, direction, message_id, sender, recipients, subject, text, created_at "
            "FROM messages WHERE ticket = ? ORDER BY id", [ticket_id]))

    def events(self, ticket_id: int) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM events WHERE ticket = ? ORDER BY id", [ticket_id]))

    def search(self, text: str, limit: int = 20, window: int = 1000) -> list[dict[str, Any]]:
        """Full-text search over message subjects and bodies: the best matches among the newest
        ``window`` matching messages. Ranking every match of a common word costs seconds at a
        million messages; the newest ones are found in rowid order, cheaply, and ranked."""
        query = fts_query(text)
        oldest = self._scalar("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? "
                              "ORDER BY rowid DESC LIMIT 1 OFFSET ?", [query, window - 1]) or 0
        return list(self.db.query(
            "SELECT messages.id, messages.ticket, tickets.tenant, tickets.number, messages.direction, "
            "messages.sender, messages.subject, snippet(messages_fts, 1, '[', ']', '…', 12) AS snippet "
            "FROM messages_fts JOIN messages ON messages.id = messages_fts.rowid "
            "LEFT JOIN tickets ON tickets.id = messages.ticket "
            "WHERE messages_fts MATCH ? AND messages_fts.rowid >= ? ORDER BY rank LIMIT ?", [query, oldest, limit]))

    # -- widget conversations -------------------------------------------------------------

    def widget_conversation(self, token_hash: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM widget_conversations WHERE token_hash = ?", [token_hash])

    def add_widget_conversation(self, row: dict[str, Any]) -> int:
        return self._insert("widget_conversations", row)

    def update_widget_conversation(self, conversation_id: int, changes: dict[str, Any]) -> None:
        self.db["widget_conversations"].update(conversation_id, changes)

    def widget_messages(self, ticket_id: int, after: int = 0) -> list[dict[str, Any]]:
        """What the visitor may see of a ticket: its widget lines both ways, never the relays
        to the tenant's contacts or other email (those name people the visitor must not see)."""
        return list(self.db.query(
            "SELECT id, direction, sender, text, created_at FROM messages "
            "WHERE ticket = ? AND channel = 'widget' AND id > ? ORDER BY id", [ticket_id, after]))

    def add_widget_reply(self, ticket_id: int, text: str, author: str, at: str | None = None) -> int:
        """An agent's answer in a widget conversation (from Slack or the CLI): stored as an outgoing
        widget message, which the open widget shows live. Its own transaction when called alone."""
        at = at or iso(utcnow())
        with self.transaction():
            if self.ticket(ticket_id) is None:
                raise ValueError(f"no ticket with id {ticket_id}")
            message = self.add_message({
                "ticket": ticket_id, "direction": "out", "message_id": f"<widget-reply.{secrets.token_hex(12)}@triage>",
                "channel": "widget", "sender": author, "recipients": "[]", "subject": "", "text": text,
                "raw_size": len(text.encode()), "created_at": at,
            })
            self.add_event(ticket_id, "widget-reply", [], "shown in the widget", at, message=message,
                           detail={"author": author})
            self.update_ticket(ticket_id, {"updated_at": at})
        return message

    # -- loop protection state --------------------------------------------------------

    def log_sent(self, address: str, ticket: int, at: str) -> None:
        self._insert("sent_log", {"address": address.lower(), "ticket": ticket, "sent_at": at})

    def sent_since(self, address: str, since: str) -> int:
        return self._scalar("SELECT count(*) FROM sent_log WHERE address = ? AND sent_at >= ?",
                            [address.lower(), since])

    def prune_sent_log(self, before: str) -> None:
        self.db.execute("DELETE FROM sent_log WHERE sent_at < ?", [before])
        self.db.execute("DELETE FROM relay_log WHERE relayed_at < ?", [before])

    def log_relay(self, requester: str, tenant: str, ticket: int, at: str) -> None:
        self._insert("relay_log", {"requester": requester.lower(), "tenant": tenant, "ticket": ticket,
                                   "relayed_at": at})

    def relayed_since(self, since: str, requester: str | None = None, tenant: str | None = None) -> int:
        """Messages relayed since ``since`` for one requester's mailbox, or to one tenant."""
        if requester is not None:
            return self._scalar("SELECT count(*) FROM relay_log WHERE requester = ? AND relayed_at >= ?",
                                [requester.lower(), since])
        return self._scalar("SELECT count(*) FROM relay_log WHERE tenant = ? AND relayed_at >= ?", [tenant, since])

    def suppressed_until(self, address: str, now: str) -> str | None:
        return self._scalar("SELECT expires_at FROM suppressions WHERE address = ? AND expires_at > ?",
                            [address.lower(), now])

    def suppress(self, address: str, until: str, reason: str, at: str) -> None:
        self.db["suppressions"].upsert({"address": address.lower(), "expires_at": until, "reason": reason,
                                        "created_at": at}, pk="address")

    # -- quarantine -------------------------------------------------------------------

    def quarantine(self, raw: bytes, envelope: dict[str, Any], error: str, at: str) -> None:
        """Keep mail we could not process, once per content, counting the attempts."""
        digest = hashlib.sha256(raw).hexdigest()
        self.db.execute(
            "INSERT INTO quarantine (sha256, raw, envelope, error, attempts, first_failed_at, last_failed_at) "
            "VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT(sha256) DO UPDATE SET "
            "attempts = attempts + 1, error = excluded.error, last_failed_at = excluded.last_failed_at",
            [digest, raw, json.dumps(envelope), error, at, at])

    # -- IMAP mailboxes -----------------------------------------------------------------

    def imap_state(self, tenant: str, mailbox: str) -> dict[str, Any] | None:
        """UIDVALIDITY and the last UID processed of a mailbox, or None before its first read."""
        return self._one("SELECT uidvalidity, last_uid FROM imap_state WHERE tenant = ? AND mailbox = ?",
                         [tenant, mailbox])

    def set_imap_state(self, tenant: str, mailbox: str, uidvalidity: int, last_uid: int, at: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO imap_state (tenant, mailbox, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(tenant, mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
                "last_uid = excluded.last_uid, updated_at = excluded.updated_at",
                [tenant, mailbox, uidvalidity, last_uid, at])

    def imap_event(self, kind: str, rule: str, outcome: str, at: str, detail: dict[str, Any],
                   raw: bytes | None = None) -> None:
        """An IMAP decision in the audit trail; with ``raw``, the mail is kept in quarantine too."""
        with self.transaction():
            if raw is not None:
                self.quarantine(raw, detail, outcome, at)
            self.add_event(None, kind, [rule], outcome, at, detail=detail)

    # -- outbox -----------------------------------------------------------------------

    def enqueue(self, row: dict[str, Any]) -> int:
        return self._insert("outbox", row)

    def recover_sending(self) -> list[dict[str, Any]]:
        """Rows left in ``sending`` by a crash go back to the queue (same Message-ID, same bytes)."""
        with self.transaction():
            rows = list(self.db.query("SELECT id, ticket FROM outbox WHERE status = 'sending'"))
            self.db.execute("UPDATE outbox SET status = 'queued' WHERE status = 'sending'")
        return rows

    def claim_due(self, now: str, limit: int) -> list[dict[str, Any]]:
        """Mark due rows ``sending`` in one transaction and return them."""
        with self.transaction():
            rows = list(self.db.query(
                "SELECT id, ticket, kind, mail_from, recipients, message_id, raw, attempts FROM outbox "
                "WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                [now, limit]))
            if rows:
                marks = ",".join("?" * len(rows))
                self.db.execute(f"UPDATE outbox SET status = 'sending' WHERE id IN ({marks})",
                                [r["id"] for r in rows])
        return rows

    def release(self, outbox_ids: list[int]) -> None:
        """Claimed rows that were never handed to the relay go back to the queue as they were."""
        with self.transaction():
            for outbox_id in outbox_ids:
                self.db.execute("UPDATE outbox SET status = 'queued' WHERE id = ? AND status = 'sending'",
                                [outbox_id])

    def mark_sent(self, outbox_id: int, at: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                            "last_error = '' WHERE id = ?", [at, outbox_id])

    def mark_retry(self, outbox_id: int, error: str, next_at: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE outbox SET status = 'queued', attempts = attempts + 1, last_error = ?, "
                            "next_attempt_at = ? WHERE id = ?", [error, next_at, outbox_id])

    def mark_failed(self, outbox_id: int, error: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? "
                            "WHERE id = ?", [error, outbox_id])

    def next_due(self) -> str | None:
        return self._scalar("SELECT min(next_attempt_at) FROM outbox WHERE status = 'queued'")

    def outbox_counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self.db.execute("SELECT status, count(*) FROM outbox GROUP BY status")}

    def outbox_rows(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = ("SELECT outbox.id, tickets.tenant, tickets.number, outbox.kind, outbox.recipients, "
               "outbox.subject, outbox.message_id, outbox.status, outbox.attempts, outbox.next_attempt_at, "
               "outbox.last_error, outbox.created_at, outbox.sent_at "
               "FROM outbox LEFT JOIN tickets ON tickets.id = outbox.ticket")
        params: list[Any] = []
        if status:
            sql += " WHERE outbox.status = ?"
            params.append(status)
        return list(self.db.query(sql + " ORDER BY outbox.id DESC LIMIT ?", params + [limit]))

    def last_error(self) -> str:
        """The most recent failure recorded in the audit trail (for /healthz after a restart)."""
        row = self._one("SELECT kind, outcome, detail, created_at FROM events WHERE kind IN "
                        "('delivery-retry', 'delivery-failed', 'quarantined') ORDER BY id DESC LIMIT 1")
        if row is None:
            return ""
        error = json.loads(row["detail"] or "{}").get("error") or row["outcome"]
        return f"{row['created_at'][:19]} {row['kind']}: {error}"

    # -- directory ----------------------------------------------------------------------

    def import_directory(self, tenant: str, users: list[User], source: str, at: str,
                         progress: Callable[[int], None] | None = None, chunk: int = 500) -> int:
        """Replace a tenant's directory in one transaction (a half-imported directory never shows)."""
        with self.transaction():
            self.db.execute("DELETE FROM directory WHERE tenant = ?", [tenant])
            for start in range(0, len(users), chunk):
                part = users[start:start + chunk]
                self.db["directory"].insert_all(({
                    "tenant": tenant, "email": u.email, "name": u.name, "company": u.company,
                    "role": u.role, "status": u.status,
                    "invitation_expires": u.invitation_expires.isoformat() if u.invitation_expires else "",
                    "imported_at": at} for u in part), replace=True)
                if progress:
                    progress(start + len(part))
            self.db["directory_imports"].insert({"tenant": tenant, "source": source, "rows": len(users), "imported_at": at})
        return len(users)

    def directory_version(self) -> int:
        return self._scalar("SELECT coalesce(max(id), 0) FROM directory_imports")

    def directory_tenants(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT tenant FROM directory_imports")]

    def directory_users(self, tenant: str) -> list[User]:
        return [User(r["email"], r["name"], r["company"], r["role"], r["status"],
                     date.fromisoformat(r["invitation_expires"]) if r["invitation_expires"] else None)
                for r in self.db.query("SELECT * FROM directory WHERE tenant = ? ORDER BY email", [tenant])]

