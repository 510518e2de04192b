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
    row = {"ticket": t, "direction": "in", "message_id": "<a@x>", "text": "", "at": "t"}
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
                       "text": "Пароль не работает, \"error\" 500", "at": "t"})
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
