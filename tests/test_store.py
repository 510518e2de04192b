"""The SQLite store: schema and migrations, durability settings, dedupe, numbering, outbox
state changes, search, quarantine and the directory."""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from triage.core.directory import User
from triage.store import FIRST_NUMBER, Store, migrations


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "var" / "triage.db")
    yield s
    s.close()


def ticket(store: Store, tenant: str | None, number: int) -> int:
    return store.create_ticket({"tenant": tenant, "number": number, "status": "new", "created_at": "t",
                                "updated_at": "t"})


def test_schema_is_created_and_migrations_recorded_once(tmp_path):
    path = tmp_path / "triage.db"
    Store(path).close()
    again = Store(path)  # opening twice applies nothing twice
    names = set(again.db.table_names())
    assert {"tickets", "messages", "events", "outbox", "participants", "suppressions", "sent_log",
            "quarantine", "directory", "settings", "messages_fts"} <= names
    applied = list(again.db.query("SELECT name FROM _sqlite_migrations"))
    assert [r["name"] for r in applied] == [m.name for m in migrations._migrations]
    again.close()


def test_durable_settings(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_numbers_count_per_tenant_from_1001(store):
    assert store.next_number("acme") == FIRST_NUMBER
    ticket(store, "acme", FIRST_NUMBER)
    assert store.next_number("acme") == FIRST_NUMBER + 1
    assert store.next_number("zenith") == FIRST_NUMBER
    assert store.next_number(None) == FIRST_NUMBER  # mail no tenant owns has its own series
    with pytest.raises(sqlite3.IntegrityError):
        ticket(store, "acme", FIRST_NUMBER)


def test_inbound_message_id_is_unique(store):
    t = ticket(store, "acme", 1001)
    row = {"ticket": t, "direction": "in", "message_id": "<a@x>", "text": "", "created_at": "t"}
    store.add_message(row)
    assert store.inbound("<a@x>")["ticket"] == t
    with pytest.raises(sqlite3.IntegrityError):
        store.add_message(row)
    store.add_message({**row, "direction": "out"})  # only inbound Message-IDs are deduplicated


def test_a_failed_savepoint_leaves_the_rest_of_the_transaction(store):
    with store.transaction():
        ticket(store, "acme", 1001)
        with pytest.raises(RuntimeError):
            with store.transaction():
                ticket(store, "acme", 1002)
                raise RuntimeError("one bad message")
    assert [r["number"] for r in store.tickets()] == [1001]


def test_search_treats_input_as_words(store):
    t = ticket(store, "acme", 1001)
    store.add_message({"ticket": t, "direction": "in", "message_id": "<a@x>", "subject": "Login",
                       "text": "Пароль не работает, \"error\" 500", "created_at": "t"})
    assert store.search("пароль")[0]["number"] == 1001
    assert store.search('"error" -500')[0]["number"] == 1001  # quotes and dashes are not FTS syntax
    assert store.search("nothing-like-this") == []


def test_outbox_claim_send_retry_fail_and_recover(store):
    t = ticket(store, "acme", 1001)
    base = {"ticket": t, "kind": "reply", "mail_from": "b@x", "recipients": json.dumps(["s@y"]),
            "subject": "s", "raw": b"raw", "status": "queued", "attempts": 0, "created_at": "t"}
    a = store.enqueue({**base, "message_id": "<1@x>", "next_attempt_at": "2026-01-01T00:00:00"})
    b = store.enqueue({**base, "message_id": "<2@x>", "next_attempt_at": "2026-01-01T00:00:01"})
    c = store.enqueue({**base, "message_id": "<3@x>", "next_attempt_at": "2099-01-01T00:00:00"})
    claimed = store.claim_due("2026-06-01T00:00:00", 10)
    assert [r["id"] for r in claimed] == [a, b]  # not yet due rows stay queued
    assert store.outbox_counts() == {"sending": 2, "queued": 1}
    store.mark_sent(a, "2026-06-01T00:00:02")
    assert store.recover_sending() == [{"id": b, "ticket": t}]  # a crash left b in 'sending'
    store.mark_retry(b, "451 busy", "2026-06-01T00:05:00")
    store.mark_failed(c, "550 no such user")
    rows = {r["id"]: r for r in store.outbox_rows()}
    assert (rows[a]["status"], rows[b]["status"], rows[c]["status"]) == ("sent", "queued", "failed")
    assert rows[b]["attempts"] == 1 and rows[b]["last_error"] == "451 busy"
    assert store.next_due() == "2026-06-01T00:05:00"


def test_quarantine_keeps_one_row_per_content(store):
    for _ in range(2):
        with store.transaction():
            store.quarantine(b"broken", {"mail_from": "x@y"}, "ValueError: boom", "t")
    row = next(store.db.query("SELECT * FROM quarantine"))
    assert row["attempts"] == 2 and row["raw"] == b"broken" and row["error"] == "ValueError: boom"


def test_directory_import_replaces_and_counts_versions(store):
    users = [User("a@x.example", "A", "X", "external_user", "invited", date(2026, 1, 2)),
             User("b@x.example", "B", "X", "external_admin", "active", None)]
    seen: list[int] = []
    assert store.import_directory("acme", users, "first.csv", "t", progress=seen.append) == 2
    assert seen == [2]
    assert store.directory_users("acme") == users
    store.import_directory("acme", users[1:], "second.csv", "t")
    assert [u.email for u in store.directory_users("acme")] == ["b@x.example"]
    assert store.directory_version() == 2 and store.directory_tenants() == ["acme"]


def test_settings_are_created_once(store):
    key = store.random_key("k")
    assert len(key) == 32 and store.random_key("k") == key


def test_database_opens_in_sqlite_utils_as_it_is(store):
    ticket(store, "acme", 1001)
    # the command installed beside this interpreter (a dependency), whether or not .venv/bin is on PATH
    command = shutil.which("sqlite-utils", path=str(Path(sys.executable).parent)) or "sqlite-utils"
    out = subprocess.run([command, "tables", str(store.path), "--counts"], capture_output=True,
                         text=True, check=True)
    assert '"table": "tickets", "count": 1' in out.stdout


def test_backup_while_writing_holds_what_the_wal_holds(tmp_path):
    """A plain file copy of a live WAL database misses recent commits; the backup API does not."""
    store = Store(tmp_path / "live.db")
    store.db.execute("PRAGMA wal_autocheckpoint=0")  # as between two checkpoints of a busy service
    for n in range(5):
        with store.transaction():
            store.create_ticket({"tenant": "acme", "number": 1001 + n, "status": "new", "priority": "normal",
                                 "category": "technical", "intent": "access", "requester": "external",
                                 "trust": "verified", "language": "en", "channel": "email", "subject": f"s{n}",
                                 "requester_address": "a@b.example", "created_at": "2026-12-01T10:00:00+00:00",
                                 "updated_at": "2026-12-01T10:00:00+00:00"})
    shutil.copyfile(tmp_path / "live.db", tmp_path / "filecopy.db")
    naive = sqlite3.connect(tmp_path / "filecopy.db")
    try:
        copied = naive.execute("SELECT count(*) FROM tickets").fetchone()[0]
    except sqlite3.DatabaseError:
        copied = 0
    naive.close()
    assert copied < 5  # the failure the backup command exists for
    assert store.backup(tmp_path / "backup.db") == 5
    assert not (tmp_path / "backup.db.partial").exists()
    copy = sqlite3.connect(tmp_path / "backup.db")
    assert copy.execute("SELECT count(*) FROM tickets").fetchone()[0] == 5
    copy.close()
    store.checkpoint()
    assert (tmp_path / "live.db-wal").stat().st_size == 0
    store.close()


def test_time_columns_migration_keeps_the_data_of_a_database_made_by_the_previous_schema(tmp_path):
    """m010 renames every bare ``at`` (and ``until``, ``first_at``, ``last_seen``…) in a database
    that the previous release wrote: the rows stay, under the new names, and the full-text index,
    its triggers and the rate-limit indexes keep working."""
    from sqlite_utils import Database

    path = tmp_path / "triage.db"
    old = Database(path)
    migrations.apply(old, stop_before="m010_time_columns")
    when = "2026-12-01T10:00:00.000000+00:00"
    old["tickets"].insert({"id": 1, "tenant": "acme", "number": 1001, "status": "new", "created_at": when,
                           "updated_at": when})
    old["messages"].insert({"id": 1, "ticket": 1, "direction": "in", "message_id": "<a@x>", "subject": "Login",
                            "text": "Passwort vergessen", "at": when})
    old["events"].insert({"ticket": 1, "message": 1, "kind": "decision", "rules": "[]", "at": when})
    old["corrections"].insert({"ticket": 1, "label": "technical/access", "text": "x", "at": when})
    old["sent_log"].insert({"address": "tom@x.example", "ticket": 1, "at": when})
    old["suppressions"].insert({"address": "tom@x.example", "until": "2026-12-04", "created_at": when})
    old["quarantine"].insert({"sha256": "00", "raw": b"x", "first_at": when, "last_at": "2026-12-02"})
    old["directory_imports"].insert({"tenant": "acme", "source": "users.csv", "rows": 3, "at": when})
    old["widget_conversations"].insert({"token_hash": "h", "tenant": "acme", "ticket": 1, "created_at": when,
                                        "last_seen": "2026-12-02"})
    old.close()

    store = Store(path)  # applies the pending m010
    one = lambda sql: dict(next(store.db.query(sql)))  # noqa: E731 - a one-line reader
    assert one("SELECT created_at FROM messages") == {"created_at": when}
    assert one("SELECT created_at FROM events") == {"created_at": when}
    assert one("SELECT created_at FROM corrections") == {"created_at": when}
    assert one("SELECT sent_at FROM sent_log") == {"sent_at": when}
    assert one("SELECT expires_at FROM suppressions") == {"expires_at": "2026-12-04"}
    assert one("SELECT first_failed_at, last_failed_at FROM quarantine") == {
        "first_failed_at": when, "last_failed_at": "2026-12-02"}
    assert one("SELECT imported_at FROM directory_imports") == {"imported_at": when}
    assert one("SELECT last_seen_at FROM widget_conversations") == {"last_seen_at": "2026-12-02"}
    # the queries of the store read the renamed columns
    assert store.conversation(1)[0]["created_at"] == when
    assert store.sent_since("tom@x.example", "2026-12-01") == 1
    assert store.suppressed_until("tom@x.example", "2026-12-03") == "2026-12-04"
    # the full-text index found the old row, and its triggers index a row written after the rename
    assert [r["id"] for r in store.search("passwort")] == [1]
    store.add_message({"ticket": 1, "direction": "in", "message_id": "<b@x>", "subject": "", "text": "Passwort",
                       "created_at": when})
    assert len(store.search("passwort")) == 2
    plan = " ".join(r[3] for r in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT count(*) FROM sent_log WHERE address = ? AND sent_at >= ?", ["a", "b"]))
    assert "idx_sent_log_address_sent_at" in plan
    no_bare = [(t, c.name) for t in store.db.table_names() for c in store.db[t].columns
               if c.name in ("at", "until", "first_at", "last_at", "last_seen")]
    assert no_bare == []
    store.close()


def test_a_queue_file_of_the_previous_schema_keeps_its_mail_under_next_attempt_at(tmp_path):
    """The inbound queue (its own file, no migration table) may hold mail across an upgrade."""
    from datetime import datetime, timezone

    from triage.service.inbound import Inbound

    path = tmp_path / "triage.queue.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE inbound (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, raw BLOB NOT NULL, "
                      "mail_from TEXT NOT NULL DEFAULT '', recipients TEXT NOT NULL DEFAULT '[]', "
                      "received_at TEXT NOT NULL, token_hash TEXT NOT NULL DEFAULT '', "
                      "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', "
                      "next_at TEXT NOT NULL);"
                      "INSERT INTO inbound (kind, raw, received_at, next_at) VALUES "
                      "('email', x'00', '2026-12-01T10:00:00+00:00', '2026-12-01T10:00:00+00:00');")
    old.commit()
    old.close()
    queue = Inbound(path)
    [row] = queue.due(datetime(2026, 12, 1, 11, tzinfo=timezone.utc), set(), 10)
    assert row.raw == b"\x00" and row.received_at == "2026-12-01T10:00:00+00:00"
    assert queue.due(datetime(2026, 12, 1, 9, tzinfo=timezone.utc), set(), 10) == []  # next_attempt_at counts
    queue.close()
