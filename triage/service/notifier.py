"""Posting tickets to the agents' Slack channels, durably, like an outbox.

Nothing is queued in memory: each pass asks the database what Slack has not seen yet —
tickets without a ``slack_threads`` row, inbound messages newer than the thread's
``last_message``, tickets past their first-response due time without a reminder, mail put
in quarantine after the last one alerted — and
posts it, recording the thread only after Slack answered. So a restart or a Slack outage
loses nothing; a crash between Slack's answer and the commit can post one card twice
(at least once, never lost).

First response due: ``slack.first_response_hours`` working hours after the ticket was opened,
counted only inside the tenant's support hours (``hours.first_response_due``: an answer is not
late at night).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from triage.config import Config
from triage.core import hours
from triage.desk import slack_blocks
from triage.desk.agents import ANSWER_KINDS, Agents
from triage.service.outbox import RunDb
from triage.store import Store, iso

RULES = {
    "slack-posted": "a new ticket was posted to its tenant's agents channel",
    "slack-reminder": "no agent answered before the first-response due time: one reminder in the thread",
    "slack-post-failed": "Slack refused a ticket's card, follow-up or reminder: the ticket is retried later "
                         "with a growing pause, the others go on",
}
MAX_BACKOFF = timedelta(hours=1)
ALERTED = "slack_quarantine_alerted"  # settings row: the last quarantine event posted to Slack


class Notifier:
    """One loop: new tickets, follow-ups, reminders. :meth:`wake` after each intake commit."""

    def __init__(self, config: Config, store: Store, agents: Agents, client: AsyncWebClient, run_db: RunDb,
                 clock: Callable[[], datetime], *, interval: float = 5.0, first_response_hours: float = 4.0):
        self.config = config
        self.store = store
        self.agents = agents
        self.client = client
        self.run_db = run_db
        self.clock = clock
        self.interval = interval
        self.first_response_hours = first_response_hours
        self.channels = {t.slug: t.slack_channel for t in config.tenants.values() if t.slack_channel}
        self.last_error = ""
        self._wake = asyncio.Event()
        self._failing: dict[int, tuple[int, datetime]] = {}  # ticket -> (failures in a row, retry after)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.run_once()
            except Exception as e:  # Slack away (or a bug): the next pass retries, the task lives on
                self.last_error = f"slack: {type(e).__name__}: {e}"
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            if stop.is_set():
                return

    async def run_once(self) -> None:
        now = self.clock()
        skip = [t for t, (_, after) in self._failing.items() if after > now]
        for ticket_id, channel in await self.run_db(self._unposted, skip):
            await self._each(ticket_id, now, self._post_ticket(ticket_id, channel, now))
        for row in await self.run_db(self._follow_ups, skip):
            await self._each(row["ticket"], now, self._follow_up(row))
        for row, due in await self.run_db(self._due, now, skip):
            await self._each(row["ticket"], now, self._remind(row, due, now))
        for event_id, channel, text in await self.run_db(self._quarantine_alerts):
            await self.client.chat_postMessage(channel=channel, text=text)
            await self.run_db(self._alerted, event_id)

    async def _each(self, ticket_id: int, now: datetime, work: Awaitable[None]) -> None:
        """One ticket's Slack call: a failure of this ticket alone (``not_in_channel``, a card
        that cannot be built) pauses this ticket, doubling each time, and the pass goes on.
        Slack itself away (network, 5xx, rate limit) ends the pass: every ticket would fail."""
        try:
            await work
        except Exception as e:
            if _slack_away(e):
                raise
            failures = self._failing.get(ticket_id, (0, now))[0] + 1
            pause = min(timedelta(seconds=self.interval) * 2 ** min(failures - 1, 20), MAX_BACKOFF)
            self._failing[ticket_id] = (failures, now + pause)
            error = f"{type(e).__name__}: {e}"
            self.last_error = f"slack: ticket {ticket_id}: {error}"
            if failures == 1:  # one event per run of failures, not one per retry
                await self.run_db(self._failed, ticket_id, error, now)
        else:
            self._failing.pop(ticket_id, None)

    async def _follow_up(self, row: dict[str, Any]) -> None:
        await self.client.chat_postMessage(channel=row["channel"], thread_ts=row["ts"],
                                           text=slack_blocks.follow_up(row["sender"], row["text"]))
        await self.run_db(self._advance, row["ticket"], row["id"])

    async def _remind(self, row: dict[str, Any], due: str, now: datetime) -> None:
        await self.client.chat_postMessage(channel=row["channel"], thread_ts=row["ts"],
                                           text=slack_blocks.reminder(row["number"], due))
        await self.run_db(self._reminded, row["ticket"], due, now)

    async def _post_ticket(self, ticket_id: int, channel: str, now: datetime) -> None:
        card = await self.run_db(self.agents.card, ticket_id, now)
        text, blocks = slack_blocks.ticket_message(card)
        response = await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        await self.run_db(self._record, ticket_id, channel, response["ts"], now)

    # -- in the database thread ------------------------------------------------------------

    def _unposted(self, skip: list[int]) -> list[tuple[int, str]]:
        """Open tickets of tenants with a channel that Slack has not seen, whose decision asks
        for agents (automated mail is suppressed and stays out of the channel)."""
        if not self.channels:
            return []
        marks = ",".join("?" * len(self.channels))
        rows = self.store.db.execute(
            f"SELECT t.id, t.tenant FROM tickets t LEFT JOIN slack_threads s ON s.ticket = t.id "
            f"WHERE s.ticket IS NULL AND t.tenant IN ({marks}) AND t.status NOT IN ('resolved', 'closed') "
            f"AND t.id NOT IN ({','.join('?' * len(skip))}) "
            "AND EXISTS (SELECT 1 FROM events e WHERE e.ticket = t.id AND e.kind = 'decision' "
            "AND e.outcome LIKE '%notify_agents%') ORDER BY t.id LIMIT 50", [*self.channels, *skip]).fetchall()
        return [(r[0], self.channels[r[1]]) for r in rows]

    def _quarantine_alerts(self) -> list[tuple[int, str, str]]:
        """Quarantined mail (an ``intake-quarantined`` or ``imap-quarantined`` event) not yet
        shown to agents: its tenant's channel (by recipient), else the first channel."""
        if not self.channels:
            return []
        last = int(self.store._scalar("SELECT value FROM settings WHERE name = ?", [ALERTED]) or 0)
        out = []
        for row in self.store.db.query("SELECT id, outcome, detail, created_at FROM events WHERE kind = 'quarantined' "
                                       "AND id > ? ORDER BY id LIMIT 20", [last]):
            detail = json.loads(row["detail"] or "{}")
            slugs = [detail.get("tenant")] + [t.slug for r in detail.get("rcpt_to", [])
                                              for t in self.config.tenant_for_address(str(r))]
            channel = next((self.channels[s] for s in slugs if s in self.channels), next(iter(self.channels.values())))
            text = (f":warning: A mail from {detail.get('mail_from') or 'an unknown sender'} could not be processed "
                    f"({detail.get('attempts', 1)} attempts) and is kept in quarantine: {row['outcome']} "
                    f"(received {row['created_at'][:19]} UTC)")
            out.append((row["id"], channel, text))
        return out

    def _alerted(self, event_id: int) -> None:
        with self.store.transaction():
            self.store.db.execute("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
                                  "SET value = excluded.value", [ALERTED, str(event_id)])

    def _failed(self, ticket_id: int, error: str, now: datetime) -> None:
        with self.store.transaction():
            self.store.add_event(ticket_id, "slack-error", ["slack-post-failed"], f"not posted: {error}", iso(now),
                                 detail={"error": error})

    def _record(self, ticket_id: int, channel: str, ts: str, now: datetime) -> None:
        with self.store.transaction():
            first = self.store.db.execute("SELECT min(id) FROM messages WHERE ticket = ? AND direction = 'in'",
                                          [ticket_id]).fetchone()[0]
            self.store.db["slack_threads"].insert({"ticket": ticket_id, "channel": channel, "ts": ts,
                                                   "posted_at": iso(now), "last_message": first or 0})
            self.store.add_event(ticket_id, "slack", ["slack-posted"], "posted", iso(now),
                                 detail={"channel": channel, "ts": ts})

    def _follow_ups(self, skip: list[int]) -> list[dict[str, Any]]:
        return list(self.store.db.query(
            "SELECT m.id, m.ticket, m.sender, coalesce(m.text, '') AS text, s.channel, s.ts FROM messages m "
            "JOIN slack_threads s ON s.ticket = m.ticket WHERE m.direction = 'in' AND m.id > s.last_message "
            f"AND m.ticket NOT IN ({','.join('?' * len(skip))}) ORDER BY m.id LIMIT 50", skip))

    def _advance(self, ticket_id: int, message_id: int) -> None:
        with self.store.transaction():
            self.store.db.execute("UPDATE slack_threads SET last_message = ? WHERE ticket = ? AND last_message < ?",
                                  [message_id, ticket_id, message_id])

    def _due(self, now: datetime, skip: list[int]) -> list[tuple[dict[str, Any], str]]:
        """Threads of new/open tickets without an agent's answer and without a reminder yet."""
        rows = self.store.db.query(
            "SELECT s.ticket, s.channel, s.ts, t.tenant, t.number, t.created_at FROM slack_threads s "
            "JOIN tickets t ON t.id = s.ticket WHERE s.reminded_at IS NULL AND t.status IN ('new', 'open') "
            f"AND s.ticket NOT IN ({','.join('?' * len(skip))}) "
            "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.ticket = s.ticket AND e.kind IN "
            f"({', '.join(repr(k) for k in ANSWER_KINDS)}))",
            skip)
        out = []
        for row in rows:
            tenant = self.config.tenants.get(row["tenant"])
            if tenant is None:
                continue
            due = hours.first_response_due(tenant.hours, tenant.timezone, datetime.fromisoformat(row["created_at"]),
                                           self.first_response_hours)
            if due <= now:
                out.append((row, due.strftime("%Y-%m-%d %H:%M %Z")))
        return out

    def _reminded(self, ticket_id: int, due: str, now: datetime) -> None:
        with self.store.transaction():
            self.store.db.execute("UPDATE slack_threads SET reminded_at = ? WHERE ticket = ?", [iso(now), ticket_id])
            self.store.add_event(ticket_id, "reminder", ["slack-reminder"], f"first response was due {due}",
                                 iso(now), detail={"due": due})


def _slack_away(e: Exception) -> bool:
    """Slack (or the way to it) is down for everyone, not refusing one ticket."""
    if isinstance(e, SlackApiError):
        status = getattr(e.response, "status_code", 0) or 0
        return status >= 500 or status == 429
    return isinstance(e, (OSError, asyncio.TimeoutError, aiohttp.ClientError))
