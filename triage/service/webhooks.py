"""Signed HTTP calls out of triage: portal actions and ticket-event webhooks, one mechanism.

A call is a row of ``webhook_deliveries`` written in the transaction of the decision or
event it reports (nothing is decided without its call being queued, nothing is called that
was not decided). A delivery loop then POSTs it, like the outbox sends mail: retried with
exponential backoff on connection errors, 5xx and 429 (honouring Retry-After), failed for
good on any other 4xx, and a row a crash left in ``sending`` is sent again at restart with
the same ``Idempotency-Key``, so the receiver acts on it at most once. Each receiver gets
its calls in order: only its oldest unfinished row is ever tried, so one that is down for
an hour gets everything once it is back, oldest first.

Every call carries ``X-Triage-Timestamp`` and ``X-Triage-Signature: sha256=<hex HMAC-SHA256
of "<timestamp>.<raw body>">`` keyed with the receiver's secret (from the environment only);
the timestamp is signed, so a receiver that refuses old timestamps cannot be replayed to.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from triage.config import Config, Tenant, Webhook
from triage.store import Store, iso, utcnow

RULES = {
    "portal-renewal-queued": "the invitation renewal is queued for the tenant's portal API (same transaction as the decision)",
    "portal-renewal-confirmed": "the portal confirmed the renewal (2xx): the requester is told it is done",
    "portal-renewal-failed": "the portal refused the renewal (4xx) or never answered: the ticket is held for an agent",
    "webhook-retry": "a call failed for now (connection error, 5xx, 429): tried again later with the same key",
    "webhook-failed-permanent": "the receiver answered 4xx (not 429): the call is not retried (`triage webhooks redeliver`)",
    "webhook-gave-up": "a call failed too often: not retried (`triage webhooks redeliver`)",
    "webhook-recovered": "a call left in 'sending' by a crash is queued again with the same Idempotency-Key",
}
SIGNATURE_HEADER = "X-Triage-Signature"
TIMESTAMP_HEADER = "X-Triage-Timestamp"
TOLERANCE_SECONDS = 300  # what the README tells receivers to accept (a clock skew of 5 minutes)
RENEW_PATH = "/invitations/renew"
# Agents' audit rules (triage.desk.agents) and the ticket event each one is.
AGENT_EVENTS = {"agent-escalated": "escalated", "agent-resolved": "resolved", "agent-closed": "closed",
                "agent-assigned": "assigned", "agent-note": "note", "agent-reply": "replied",
                "agent-reopened": "reopened", "agent-approved": "approved", "agent-reclassified": "reclassified",
                "agent-article-sent": "replied"}  # a help article an agent sent is an answer on the ticket

RunDb = Callable[..., Awaitable[Any]]


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 over "<timestamp>.<raw body>"."""
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def headers(secret: bytes, key: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers of one attempt: a fresh timestamp, the same Idempotency-Key every time."""
    stamp = int(now if now is not None else time.time())
    return {"Content-Type": "application/json", "Idempotency-Key": key, TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(secret, stamp, body), "User-Agent": "triage-webhooks/1"}


def portal_receiver(tenant: Tenant) -> str:
    return f"portal:{tenant.slug}"


def _body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _insert(store: Store, receiver: str, kind: str, ticket: int | None, event: str, url: str,
            payload: dict[str, Any], key: str, at: str) -> int:
    return store.db["webhook_deliveries"].insert({
        "receiver": receiver, "kind": kind, "ticket": ticket, "event": event, "url": url, "body": _body(payload),
        "idempotency_key": key, "status": "queued", "attempts": 0, "next_attempt_at": at, "last_error": "",
        "response": "", "created_at": at,
    }).last_pk


# -- queueing (in the caller's transaction, in the database thread) ---------------------------

def ticket_event(store: Store, config: Config, ticket_id: int, event: str, at: str,
                 data: dict[str, Any] | None = None) -> int:
    """Queue ``event`` of a ticket for every receiver that asked for it; returns rows queued."""
    ticket = store.ticket(ticket_id)
    if ticket is None:
        return 0
    queued = 0
    for hook in config.webhooks:
        if event not in hook.events or (hook.tenants and ticket["tenant"] not in hook.tenants):
            continue
        key = str(uuid.uuid4())
        payload = {"id": key, "event": event, "at": at, "tenant": ticket["tenant"],
                   "ticket": {"number": ticket["number"], "status": ticket["status"],
                              "priority": ticket["priority"], "category": ticket["category"],
                              "intent": ticket["intent"], "channel": ticket["channel"]},
                   "data": data or {}}
        _insert(store, hook.name, "event", ticket_id, event, hook.url, payload, key, at)
        queued += 1
    return queued


def on_filed(store: Store, config: Config, ticket_id: int, actions: list[str], reasons: list[str],
             new: bool, reopened: bool, replied: bool, relayed: bool, requester: str, at: str) -> int:
    """What a filed message calls: the portal action its decision asks for and its ticket events."""
    ticket = store.ticket(ticket_id)
    tenant = config.tenants.get((ticket or {}).get("tenant") or "")
    queued = 0
    if tenant is not None and tenant.portal_api_url and "renew_invitation" in actions and requester:
        key = str(uuid.uuid4())
        payload = {"action": "renew_invitation", "tenant": tenant.slug, "email": requester,
                   "ticket": ticket["number"], "decided_at": at, "reasons": reasons}  # type: ignore[index]
        row = _insert(store, portal_receiver(tenant), "portal", ticket_id, "renew_invitation",
                      tenant.portal_api_url + RENEW_PATH, payload, key, at)
        store.add_event(ticket_id, "portal-action", ["portal-renewal-queued"], "queued", at,
                        detail={"delivery": row, "idempotency_key": key})
        queued += 1
    # "escalated" here is the policy's escalation (an urgent message); an agent's comes from AGENT_EVENTS.
    for event, happened in (("created", new), ("reopened", reopened), ("decided", True),
                            ("held", "hold_for_review" in actions), ("escalated", "escalate" in actions),
                            ("replied", replied), ("relayed", relayed)):
        if happened:
            detail = {"actions": actions, "reasons": reasons} if event in ("decided", "escalated") else {}
            queued += ticket_event(store, config, ticket_id, event, at, detail)
    return queued


def on_agent_event(store: Store, config: Config, ticket_id: int, rule: str, at: str, agent: str,
                   **data: str) -> None:
    """What an agent's recorded action calls: its ticket event, when it is one (``data``: what
    the event adds to the agent, e.g. a reclassification's labels)."""
    event = AGENT_EVENTS.get(rule)
    if event:
        ticket_event(store, config, ticket_id, event, at, {"agent": agent, **data})


# -- delivering ----------------------------------------------------------------------------

class Temporary(Exception):
    """Try this call again later (``delay``: what Retry-After asked for, in seconds)."""

    def __init__(self, message: str, delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class Permanent(Exception):
    """The receiver will not accept this call as it is."""


@dataclass
class Answer:
    status: int
    text: str


def retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max((parsedate_to_datetime(value) - now).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def secret_for(config: Config, receiver: str) -> tuple[str, bytes]:
    """(variable name, key) of a receiver; the key is never shown anywhere."""
    if receiver.startswith("portal:"):
        tenant = config.tenants.get(receiver.partition(":")[2])
        name = tenant.portal_api_secret_env if tenant else ""
    else:
        hook = next((h for h in config.webhooks if h.name == receiver), None)
        name = hook.secret_env if hook else ""
    return name, os.environ.get(name, "").encode() if name else b""


async def post(session: aiohttp.ClientSession, url: str, body: bytes, sent_headers: dict[str, str],
               timeout: float, now: datetime) -> Answer:
    """One attempt; raises Temporary or Permanent unless the receiver answered 2xx."""
    try:
        async with session.post(url, data=body, headers=sent_headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            text = (await response.content.read(2000)).decode("utf-8", "replace")
            status = response.status
            after = retry_after(response.headers.get("Retry-After"), now)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        raise Temporary(f"{type(e).__name__}: {str(e)[:200]}") from None
    if 200 <= status < 300:
        return Answer(status, text)
    said = f"HTTP {status}: {text[:200]}"
    if status == 429 or status >= 500:
        raise Temporary(said, after)
    raise Permanent(said)


class Deliveries:
    """The delivery loop. Database calls go through ``run_db`` (the store's own thread);
    ``confirmed(row)`` and ``gave_up(row)`` run there too, inside the row's transaction."""

    def __init__(self, store: Store, config: Config, run_db: RunDb, *,
                 confirmed: Callable[[dict[str, Any]], None] = lambda row: None,
                 after_commit: Callable[[], None] = lambda: None,
                 base_delay: float = 30.0, max_delay: float = 3600.0, max_attempts: int = 20,
                 timeout: float = 15.0, clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.config = config
        self.run_db = run_db
        self.confirmed = confirmed
        self.after_commit = after_commit  # mail or a hold was queued: wake the outbox and the notifier
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.clock = clock
        self.last_error = ""
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def backoff(self, attempts: int, asked: float | None = None) -> timedelta:
        """30 s, 1 min, 2 min, … capped at an hour; a longer Retry-After (capped the same) wins."""
        delay = min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay)
        return timedelta(seconds=min(max(delay, asked or 0.0), self.max_delay))

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; rows a crash left in ``sending`` go first, same key."""
        await self.run_db(self.recover)
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    handled = await self.deliver_due(session)
                except Exception as e:  # the database failed: keep the loop alive, report it
                    self.last_error = f"webhooks: {type(e).__name__}: {e}"
                    handled = 0
                if handled:
                    continue
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), await self._idle_seconds())
                except asyncio.TimeoutError:
                    pass
                if stop.is_set():
                    break

    async def _idle_seconds(self) -> float:
        due = await self.run_db(self.store._scalar,
                                "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'queued'")
        if due is None:
            return 2.0
        return min(max((datetime.fromisoformat(due) - self.clock()).total_seconds(), 0.05), 2.0)

    async def deliver_due(self, session: aiohttp.ClientSession) -> int:
        """One pass: each receiver's oldest unfinished call, if it is due, all receivers at once."""
        rows = await self.run_db(self.claim, iso(self.clock()))
        await asyncio.gather(*(self.deliver(session, row) for row in rows))
        return len(rows)

    async def deliver(self, session: aiohttp.ClientSession, row: dict[str, Any]) -> Answer | Exception:
        """Send one claimed row and record what became of it."""
        name, secret = secret_for(self.config, row["receiver"])
        result: Answer | Exception
        if not secret:
            result = Temporary(f"the signing key variable {name or '(none)'} is not set")
        else:
            body = row["body"].encode()
            try:
                result = await post(session, row["url"], body, headers(secret, row["idempotency_key"], body),
                                    self.timeout, self.clock())
            except (Temporary, Permanent) as e:
                result = e
        await self.run_db(self.record, row, result)
        self.after_commit()
        return result

    # The methods below run in the database thread.

    def recover(self) -> None:
        at = iso(self.clock())
        with self.store.transaction():
            for row in self.store.db.query("SELECT id, ticket FROM webhook_deliveries WHERE status = 'sending'"):
                self.store.add_event(row["ticket"], "webhook-recovered", ["webhook-recovered"], "queued", at,
                                     detail={"delivery": row["id"]})
            self.store.db.execute("UPDATE webhook_deliveries SET status = 'queued' WHERE status = 'sending'")

    def claim(self, now: str) -> list[dict[str, Any]]:
        """Per receiver its oldest queued row, when due (a later one never overtakes it)."""
        with self.store.transaction():
            rows = list(self.store.db.query(
                "SELECT * FROM webhook_deliveries w WHERE status = 'queued' AND next_attempt_at <= ? AND id = "
                "(SELECT min(id) FROM webhook_deliveries o WHERE o.receiver = w.receiver "
                "AND o.status IN ('queued', 'sending'))", [now]))
            for row in rows:
                self.store.db.execute("UPDATE webhook_deliveries SET status = 'sending' WHERE id = ?", [row["id"]])
        return rows

    def record(self, row: dict[str, Any], result: Answer | Exception) -> None:
        now = self.clock()
        at = iso(now)
        attempts = row["attempts"] + 1
        with self.store.transaction():
            if isinstance(result, Answer):
                self.store.db.execute("UPDATE webhook_deliveries SET status = 'sent', attempts = ?, sent_at = ?, "
                                      "last_error = '', response = ? WHERE id = ?",
                                      [attempts, at, f"HTTP {result.status}", row["id"]])
                if row["kind"] == "portal":
                    self.store.add_event(row["ticket"], "portal-action", ["portal-renewal-confirmed"],
                                         f"HTTP {result.status}", at, detail={"delivery": row["id"]})
                    self.confirmed(row)
                return
            error = str(result)
            self.last_error = f"webhook #{row['id']} ({row['receiver']}): {error}"
            if isinstance(result, Temporary) and attempts < self.max_attempts:
                next_at = iso(now + self.backoff(attempts, result.delay))
                self.store.db.execute("UPDATE webhook_deliveries SET status = 'queued', attempts = ?, "
                                      "last_error = ?, next_attempt_at = ? WHERE id = ?",
                                      [attempts, error, next_at, row["id"]])
                self.store.add_event(row["ticket"], "webhook-retry", ["webhook-retry"], f"retry at {next_at}", at,
                                     detail={"delivery": row["id"], "error": error, "attempts": attempts})
                return
            rule = "webhook-failed-permanent" if isinstance(result, Permanent) else "webhook-gave-up"
            self.store.db.execute("UPDATE webhook_deliveries SET status = 'failed', attempts = ?, last_error = ? "
                                  "WHERE id = ?", [attempts, error, row["id"]])
            self.store.add_event(row["ticket"], "webhook-failed", [rule], "failed", at,
                                 detail={"delivery": row["id"], "error": error})
            if row["kind"] == "portal" and row["ticket"]:
                self._hold(row, error, at)

    def _hold(self, row: dict[str, Any], error: str, at: str) -> None:
        """The renewal did not happen: an agent takes the ticket over."""
        self.store.update_ticket(row["ticket"], {"status": "open", "updated_at": at})
        self.store.add_event(row["ticket"], "hold_for_review", ["portal-renewal-failed"], "held for an agent", at,
                             detail={"delivery": row["id"], "error": error})
        ticket_event(self.store, self.config, row["ticket"], "held", at, {"rule": "portal-renewal-failed"})


# -- operators ------------------------------------------------------------------------------

def counts(store: Store) -> dict[str, dict[str, int]]:
    """Deliveries per receiver and status (``triage webhooks list``)."""
    out: dict[str, dict[str, int]] = {}
    for row in store.db.query("SELECT receiver, status, count(*) AS n FROM webhook_deliveries GROUP BY 1, 2"):
        out.setdefault(row["receiver"], {})[row["status"]] = row["n"]
    return out


def health(store: Store, last_error: str) -> dict[str, Any]:
    """The ``webhooks`` field of /healthz."""
    totals: dict[str, int] = {}
    for per in counts(store).values():
        for status, n in per.items():
            totals[status] = totals.get(status, 0) + n
    if not last_error:
        row = store._one("SELECT last_error FROM webhook_deliveries WHERE last_error != '' ORDER BY id DESC LIMIT 1")
        last_error = row["last_error"] if row else ""
    return {"backlog": totals.get("queued", 0) + totals.get("sending", 0), "failed": totals.get("failed", 0),
            "last_error": last_error}


def redeliver(store: Store, delivery_id: int, at: str) -> bool:
    """A failed delivery queued again (same key: a receiver that did act on it will not twice)."""
    with store.transaction():
        cursor = store.db.execute("UPDATE webhook_deliveries SET status = 'queued', next_attempt_at = ?, "
                                  "attempts = 0 WHERE id = ? AND status = 'failed'", [at, delivery_id])
        return cursor.rowcount == 1


def ping_payload(hook: Webhook, at: str) -> dict[str, Any]:
    key = str(uuid.uuid4())
    return {"id": key, "event": "ping", "at": at, "tenant": None, "ticket": None, "data": {"receiver": hook.name}}


async def ping(hook: Webhook, timeout: float = 15.0) -> str:
    """``triage webhooks test``: a signed ``ping`` now, not queued; returns what the receiver said."""
    secret = os.environ.get(hook.secret_env, "").encode()
    if not secret:
        return f"{hook.secret_env} is not set: nothing sent"
    payload = ping_payload(hook, iso(utcnow()))
    body = _body(payload).encode()
    async with aiohttp.ClientSession() as session:
        try:
            answer = await post(session, hook.url, body, headers(secret, payload["id"], body), timeout, utcnow())
        except (Temporary, Permanent) as e:
            return f"failed: {e}"
    return f"HTTP {answer.status}: {answer.text[:200]}"
