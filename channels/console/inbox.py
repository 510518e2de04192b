"""The inbox's query: filters an agent can combine, limited to the agent's tenants.

Every filter value is a bound parameter or checked against a fixed list, so the query
string of ``/tickets`` can only narrow the result. "Held" is the decision in force (the
latest decision or reclassification) holding for review with no approval since;
"overdue" is a ticket still waiting for its first answer past the first-response due
time (the same working-hours rule as the Slack reminder).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from triage.config import Config
from triage.core import hours
from triage.desk.agents import ANSWER_KINDS
from triage.desk.search import fts_query
from triage.store import STATUSES, Store

PRIORITIES = ("urgent", "normal")
CHANNELS = ("email", "widget", "phone", "slack")
SORTS = ("newest", "urgent")
FILTERS = ("tenant", "status", "label", "priority", "channel", "language", "assignee", "held", "overdue", "q",
           "sort")
LIMIT = 100
OVERDUE_SCAN = 2000  # open tickets looked at for "overdue" at most

_HELD = ("coalesce((SELECT e.outcome FROM events e WHERE e.ticket = t.id AND e.kind IN ('decision', 'reclassified') "
         "ORDER BY e.id DESC LIMIT 1), '') LIKE '%hold_for_review%' "
         "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.ticket = t.id AND e.kind = 'approved')")
_ANSWERED = ("EXISTS (SELECT 1 FROM events e WHERE e.ticket = t.id AND e.kind IN "
             f"({', '.join(repr(k) for k in ANSWER_KINDS)}))")


@dataclass
class Query:
    """What the inbox's form asked for, cleaned: unknown values are dropped, not errors."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: Any, tenants: list[str]) -> Query:
        allowed = {"tenant": tenants, "status": STATUSES, "priority": PRIORITIES, "channel": CHANNELS,
                   "sort": SORTS, "held": ("1",), "overdue": ("1",)}
        values = {}
        for name in FILTERS:
            value = str(params.get(name, "")).strip()[:200]
            if value and (name not in allowed or value in allowed[name]):
                values[name] = value
        return cls(values)

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass
class Result:
    rows: list[dict[str, Any]]
    error: str = ""  # a search that cannot run, said as it is


def due_at(config: Config, row: dict[str, Any]) -> datetime | None:
    tenant = config.tenants.get(row["tenant"] or "")
    if tenant is None:
        return None
    return hours.first_response_due(tenant.hours, tenant.timezone, datetime.fromisoformat(row["created_at"]),
                                    config.slack["first_response_hours"])


def search(store: Store, config: Config, query: Query, tenants: list[str], now: datetime) -> Result:
    """Tickets for the inbox, in the database thread."""
    if not tenants:
        return Result([])
    where = [f"t.tenant IN ({', '.join('?' * len(tenants))})"]
    params: list[Any] = list(tenants)
    for name, column in (("tenant", "t.tenant"), ("status", "t.status"), ("priority", "t.priority"),
                         ("channel", "t.channel"), ("language", "t.language")):
        if query.get(name):
            where.append(f"{column} = ?")
            params.append(query.get(name))
    label = query.get("label")
    if label:
        category, _, intent = label.partition("/")
        where.append("t.category = ?" + (" AND t.intent = ?" if intent else ""))
        params += [category] + ([intent] if intent else [])
    assignee = query.get("assignee")
    if assignee == "none":
        where.append("coalesce(t.assignee, '') = ''")
    elif assignee:
        where.append("t.assignee = ?")
        params.append(assignee)
    if query.get("held"):
        where.append(_HELD)
    if query.get("q"):
        try:
            match = fts_query(query.get("q"))
        except ValueError as e:
            return Result([], f"search: {e}")
        where.append("t.id IN (SELECT m.ticket FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                     "WHERE messages_fts MATCH ?)")
        params.append(match)
    overdue = bool(query.get("overdue"))
    if overdue:
        where.append(f"t.status IN ('new', 'open') AND NOT {_ANSWERED}")
    order = ("CASE t.priority WHEN 'urgent' THEN 0 ELSE 1 END, t.id DESC" if query.get("sort") == "urgent"
             else "t.id DESC")
    sql = (f"SELECT t.*, ({_HELD}) AS held, ({_ANSWERED}) AS answered, "
           "(SELECT substr(m.text, 1, 240) FROM messages m WHERE m.ticket = t.id AND m.direction = 'in' "
           "ORDER BY m.id DESC LIMIT 1) AS excerpt FROM tickets t WHERE " + " AND ".join(where)
           + f" ORDER BY {order} LIMIT ?")
    try:
        rows = list(store.db.query(sql, params + [OVERDUE_SCAN if overdue else LIMIT]))
    except Exception as e:  # sqlite3.OperationalError from FTS5 on a query the parser let through
        return Result([], f"search: SQLite could not run this query ({e})")
    out = []
    for row in rows:
        due = due_at(config, row) if row["status"] in ("new", "open") and not row["answered"] else None
        row["due"] = due
        row["overdue"] = due is not None and due <= now
        if overdue and not row["overdue"]:
            continue
        out.append(row)
    return Result(out[:LIMIT])


def choices(store: Store, tenants: list[str]) -> dict[str, list[str]]:
    """The category/intent pairs and languages in use, for the filter menus."""
    if not tenants:
        return {"labels": [], "languages": []}
    marks = ", ".join("?" * len(tenants))
    out = {}
    for name, expression in (("labels", "category || '/' || intent"), ("languages", "language")):
        out[name] = [r[0] for r in store.db.execute(
            f"SELECT DISTINCT {expression} FROM tickets WHERE tenant IN ({marks}) AND coalesce({expression}, '') != '' "
            "ORDER BY 1", tenants)]
    return out


def version(store: Store, tenants: list[str]) -> str:
    """Changes whenever a ticket of these tenants is created or updated: the live stream's signal."""
    if not tenants:
        return ""
    marks = ", ".join("?" * len(tenants))
    row = store.db.execute(f"SELECT count(*), max(id), max(updated_at) FROM tickets WHERE tenant IN ({marks})",
                           tenants).fetchone()
    return json.dumps(list(row))
