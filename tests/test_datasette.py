"""The database opens in Datasette as it is, with every table and column described and
tickets shown by their number (config/datasette.json)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from triage.store import Store

METADATA = json.loads((REPO / "config" / "datasette.json").read_text("utf-8"))


def _schema(store: Store) -> dict[str, list[str]]:
    return {t: [c.name for c in store.db[t].columns] for t in store.db.table_names()
            if not t.startswith("_") and "_fts" not in t}


def test_every_table_and_column_is_described(tmp_path):
    store = Store(tmp_path / "triage.db")
    described = METADATA["databases"]["triage"]["tables"]
    for table, columns in _schema(store).items():
        assert table in described and described[table]["description"], f"table {table} has no description"
        missing = [c for c in columns if not described[table]["columns"].get(c)]
        assert not missing, f"{table}: columns without a description: {missing}"
    assert described["tickets"]["label_column"] == "number"


async def test_datasette_serves_the_metadata_and_labels_tickets_by_number(tmp_path):
    datasette = pytest.importorskip("datasette.app")
    store = Store(tmp_path / "triage.db")
    with store.transaction():
        ticket = store.create_ticket({"tenant": "acme", "number": 1042, "status": "new", "priority": "normal",
                                      "category": "technical", "intent": "access", "requester": "external",
                                      "trust": "verified", "language": "en", "channel": "email", "subject": "Login",
                                      "requester_address": "a@b.example", "created_at": "2026-12-01T10:00:00+00:00",
                                      "updated_at": "2026-12-01T10:00:00+00:00"})
        store.add_event(ticket, "decision", ["technical-help"], "acknowledge", "2026-12-01T10:00:00+00:00")
    store.close()
    ds = datasette.Datasette([str(tmp_path / "triage.db")], metadata=METADATA)
    page = await ds.client.get("/triage/events.json?_labels=on&_shape=array")
    assert page.status_code == 200
    [row] = page.json()
    assert row["ticket"] == {"value": ticket, "label": 1042}
    tables = (await ds.client.get("/triage.json")).json()["tables"]
    assert any(t["name"] == "tickets" for t in tables)


def test_every_reference_is_a_foreign_key(tmp_path):
    store = Store(tmp_path / "triage.db")
    keys = {(fk.table, fk.column): fk.other_table for t in store.db.table_names() if "_fts" not in t
            for fk in store.db[t].foreign_keys}
    assert keys[("sent_log", "ticket")] == "tickets"
    assert keys[("slack_threads", "last_message")] == "messages"
