"""What agents see of the signed calls out of triage (``/webhooks`` in the console).

One row per receiver: every ``[[webhooks]]`` table and every tenant's portal API, with its
deliveries counted per status, its last error and its recent failed calls (the ones an agent
can redeliver). Scoped to the agent's tenants the way tickets are: a delivery belongs to the
tenant of its ticket, so an agent of some tenants never sees what another tenant's tickets
caused, nor a receiver that serves none of their tenants. Runs in the store's thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from triage.config import Config, redact_url
from triage.service.webhooks import RENEW_PATH, portal_receiver
from triage.store import Store

STATUSES = ("queued", "sending", "sent", "failed")
RECENT_FAILED = 20  # failed calls listed per receiver; the counts cover them all


@dataclass
class Receiver:
    name: str
    url: str  # credentials removed (they are refused at load anyway)
    events: list[str]
    tenants: list[str]  # whose tickets it gets (empty: every tenant)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    last_error: str = ""
    failed: list[dict[str, Any]] = field(default_factory=list)


def receivers(config: Config, tenants: list[str] | None) -> list[Receiver]:
    """The configured receivers an agent of ``tenants`` (None: every tenant) is concerned with."""
    out = [Receiver(h.name, redact_url(h.url), list(h.events), list(h.tenants)) for h in config.webhooks
           if tenants is None or not h.tenants or set(h.tenants) & set(tenants)]
    out += [Receiver(portal_receiver(t), redact_url(t.portal_api_url + RENEW_PATH), ["renew_invitation"], [t.slug])
            for t in config.tenants.values() if t.portal_api_url and (tenants is None or t.slug in tenants)]
    return out


def _scope(tenants: list[str] | None) -> tuple[str, list[Any]]:
    """SQL that keeps the deliveries of the agent's tenants' tickets (all of them for None)."""
    if tenants is None:
        return "1", []
    return f"t.tenant IN ({', '.join('?' * len(tenants))})", list(tenants)


def overview(store: Store, config: Config, tenants: list[str] | None) -> list[Receiver]:
    """Every receiver the agent is concerned with, plus any that still has visible deliveries
    but is no longer configured (its failed calls can still be looked at)."""
    where, args = _scope(tenants)
    found = {r.name: r for r in receivers(config, tenants)}
    base = f"FROM webhook_deliveries w LEFT JOIN tickets t ON t.id = w.ticket WHERE {where}"
    for row in store.db.query(f"SELECT w.receiver, w.status, count(*) AS n {base} GROUP BY 1, 2", args):
        receiver = found.setdefault(row["receiver"], Receiver(row["receiver"], "(no longer configured)", [], []))
        receiver.counts[row["status"]] = receiver.counts.get(row["status"], 0) + row["n"]
    for receiver in found.values():
        last = store.db.execute(f"SELECT w.last_error {base} AND w.receiver = ? AND w.last_error != '' "
                                "ORDER BY w.id DESC LIMIT 1", [*args, receiver.name]).fetchone()
        receiver.last_error = last[0] if last else ""
        receiver.failed = list(store.db.query(
            f"SELECT w.id, w.event, w.attempts, w.last_error, w.created_at, t.tenant, t.number {base} "
            "AND w.receiver = ? AND w.status = 'failed' ORDER BY w.id DESC LIMIT ?",
            [*args, receiver.name, RECENT_FAILED]))
    return list(found.values())


def owner(store: Store, delivery_id: int) -> tuple[int | None, str | None] | None:
    """The delivery's (ticket, tenant of that ticket), None when there is no such delivery: what
    decides whether an agent may touch it, and where the audit event goes."""
    row = store.db.execute("SELECT w.ticket, t.tenant FROM webhook_deliveries w LEFT JOIN tickets t ON t.id = w.ticket "
                           "WHERE w.id = ?", [delivery_id]).fetchone()
    return (row[0], row[1]) if row else None
