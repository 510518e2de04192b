"""What an agent's action does to a ticket, whatever the chat tool it came from.

Slack (``channels/slack.py``) only translates clicks, thread messages and ``/triage``
commands into calls here; the work and the audit trail live in this module, so a second
front end (a CLI, another chat tool) would reuse it unchanged. Every call runs in the
store's thread, in one transaction, and records an event with a rule id from ``RULES``.

The decision is not stored as text at intake; the card an agent sees and the reply an
agent approves are recomputed from the ticket's first inbound message by the same
pipeline, with the agent's correction (if any) in place of the classifier's label. So a
reclassification changes the decision exactly as if the classifier had said so.
"""
from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from triage.config import Config
from triage.core import relabel
from triage.core.automated import Automation
from triage.core.classify import HUMAN_LABELS, URGENT, Classification, Classifier
from triage.core.knowledge import Suggestion
from triage.core.message import Message
from triage.core.parse import parse_email
from triage.core.pipeline import Outcome, Pipeline
from triage.desk import deliveries
from triage.desk.search import QueryError
from triage.desk.train import Example
from triage.service import webhooks
from triage.service.intake import Intake
from triage.service.outbox import Unencodable, compose, envelope_address, reply_subject
from triage.store import Store, iso

RULES = {
    "agent-approved": "an agent approved what was held for review: the drafted reply goes to the requester",
    "agent-reclassified": "an agent corrected the label: the decision is recomputed and the correction kept for training",
    "agent-escalated": "an agent escalated the ticket: its priority is urgent",
    "agent-closed": "an agent closed the ticket",
    "agent-resolved": "an agent resolved the ticket",
    "agent-assigned": "an agent assigned the ticket to an agent",
    "agent-reply": "an agent's message in the ticket's thread goes to the requester on the ticket's channel",
    "agent-note": "an internal note (in Slack a thread message starting with note:): an event, never sent",
    "agent-reopened": "an agent reopened a resolved or closed ticket",
    "agent-created": "an agent filed a ticket taken by phone or in person (channel phone)",
    "agent-article-sent": "an agent sent a help article from the tenant's knowledge base to the requester",
    "agent-article-rejected": "an agent said the article the bot offered does not answer the message: kept to "
                              "teach the knowledge base what the article does not cover (triage kb learn)",
    "agent-redelivered": "an agent queued a failed webhook or portal call again (same Idempotency-Key)",
}
# Events that are an agent's answer to the requester (no reminder is due after one).
ANSWER_KINDS = ("agent-reply", "approved", "article-sent")
NOTE_PREFIX = "note:"
ONCE_KINDS = ("note", "agent-reply", "article-sent")  # the acts that must not happen twice (see reply)
MAX_ONCE = 200  # characters of an act's name kept: a Slack channel and timestamp, a console form's token
OPEN_STATUSES = ("new", "open")
DONE_STATUSES = ("resolved", "closed")


class AgentError(ValueError):
    """The action cannot be done (unknown ticket or label, nothing held): said back to the agent."""


@dataclass
class Card:
    """What agents see of a ticket: who asked, what the bot made of it, and what it drafted."""

    ticket: dict[str, Any]
    tenant_name: str
    role: str  # the requester's directory role, or internal/external/unknown
    company: str
    verified: bool
    trust_evidence: str
    label: str
    confidence: float
    reasons: list[str]
    actions: list[str]
    draft: str  # the reply the bot would send once an agent vouches for it
    excerpt: str
    held: bool  # hold_for_review was decided and nobody has approved yet
    offered: list[Suggestion] = field(default_factory=list)  # the articles the bot offered the requester
    offer_rule: str = ""  # the knowledge rule that decided that (kb-suggested, kb-not-for-category, …)
    matches: list[Suggestion] = field(default_factory=list)  # other good articles, for agents only
    rejected: set[str] = field(default_factory=set)  # offered articles an agent marked "Not the answer"

    @property
    def urgent(self) -> bool:
        return self.ticket["priority"] == "urgent" or self.label == URGENT


@dataclass
class _Corrected:
    """A classifier that keeps everything it measured but says the agent's label."""

    inner: Classifier
    label: str

    def classify(self, msg: Message, auto: Automation, default_language: str) -> Classification:
        cls = self.inner.classify(msg, auto, default_language)
        category, intent = self.label.split("/")
        return replace(cls, category=category, intent=intent, confidence=1.0,
                       priority="urgent" if self.label == URGENT else "normal", rules=[relabel.FINAL],
                       evidence=[f"agent correction: {self.label}", *cls.evidence])


class Agents:
    """Ticket actions for agents; ``intake`` lends its signer and outbox writer so replies
    are threaded and queued exactly like the bot's own."""

    def __init__(self, config: Config, store: Store, pipeline: Pipeline, intake: Intake):
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.intake = intake

    # -- reading --------------------------------------------------------------------------

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        row = self.store.ticket(ticket_id)
        if row is None:
            raise AgentError(f"no ticket with id {ticket_id}")
        return row

    def find(self, number: int, tenants: list[str]) -> dict[str, Any]:
        """A ticket by its human number; ``tenants`` (the channel's) break ties between tenants."""
        rows = self.store.find_tickets(number)
        mine = [r for r in rows if r["tenant"] in tenants] or rows
        if len(mine) != 1:
            raise AgentError(f"no ticket #{number}" if not mine else
                             f"#{number} exists for {', '.join(r['tenant'] or '?' for r in mine)}: ask in its channel")
        return mine[0]

    def outcome(self, ticket_id: int, now: datetime) -> Outcome:
        """The pipeline's result for the ticket's first message, with the latest correction applied."""
        ticket = self.ticket(ticket_id)
        first = self.store.first_inbound(ticket_id)
        if first is None:
            raise AgentError(f"ticket {ticket_id} has no inbound message")
        msg = message_of(ticket, first)
        label = self.store.latest_correction(ticket_id)
        pipeline = self.pipeline
        if label:
            pipeline = copy.copy(self.pipeline)
            pipeline.classifier = _Corrected(self.pipeline.classifier, label)  # type: ignore[assignment]
        return pipeline.run(msg, ticket["number"], now)

    def card(self, ticket_id: int, now: datetime) -> Card:
        ticket = self.ticket(ticket_id)
        out = self.outcome(ticket_id, now)
        user = out.who.user
        return Card(
            ticket=ticket, tenant_name=out.who.tenant.name if out.who.tenant else "no tenant",
            role=user.role if user else out.who.requester, company=out.who.company,
            verified=out.trust.verified, trust_evidence=out.trust.evidence, label=out.cls.label,
            confidence=out.cls.confidence, reasons=out.decision.reasons, actions=out.decision.actions,
            draft=self._draft(out, now), excerpt=(out.msg.new_text or out.msg.text).strip(),
            held=self._held(ticket_id), offered=out.suggestions.articles, offer_rule=out.suggestions.rule,
            matches=[m for m in self.pipeline.matches(out)
                     if m.article.id not in {s.article.id for s in out.suggestions.articles}],
            rejected={e["outcome"] for e in self.store.events(ticket_id) if e["kind"] == "article-rejected"})

    def _draft(self, out: Outcome, now: datetime) -> str:
        """The reply without "an agent will look at it": what approving sends."""
        if out.who.tenant is None or out.decision.suppressed:
            return ""
        decision = replace(out.decision, actions=[a for a in out.decision.actions if a != "hold_for_review"])
        return self.pipeline.draft_reply(out.msg, out.who, out.cls, decision, out.ticket, now,
                                          out.trust.verified, out.suggestions) or ""

    def _held(self, ticket_id: int) -> bool:
        """The decision in force (the latest, a reclassification replaces the first) holds for review."""
        latest = self.store.latest_event(ticket_id, ("decision", "reclassified"))
        held = latest is not None and "hold_for_review" in (latest["outcome"] or "")
        return held and not self.store.has_event(ticket_id, ("approved",))

    def search(self, text: str) -> list[dict[str, Any]]:
        """Full-text search in the syntax of triage/desk/search.py; a malformed query is said back."""
        try:
            return self.store.search(text, limit=10)
        except QueryError as e:
            raise AgentError(f"search: {e}") from None

    def stats(self) -> dict[str, dict[str, int]]:
        """Open work per tenant and status: what ``/triage stats`` shows."""
        out: dict[str, dict[str, int]] = {}
        for row in self.store.db.query("SELECT coalesce(tenant, '-') AS tenant, status, count(*) AS n "
                                       "FROM tickets GROUP BY 1, 2 ORDER BY 1, 2"):
            out.setdefault(row["tenant"], {})[row["status"]] = row["n"]
        return out

    # -- acting -----------------------------------------------------------------------------

    def approve(self, ticket_id: int, agent: str, now: datetime) -> str:
        with self.store.transaction():
            ticket = self.ticket(ticket_id)
            if not self._held(ticket_id):
                raise AgentError(f"[#{ticket['number']}] holds nothing for review")
            if any("loop-relay-rate-limit" in json.loads(e["rules"] or "[]") for e in self.store.events(ticket_id)
                   if e["kind"] == "relay-suppressed"):
                raise AgentError(f"[#{ticket['number']}]: its relay was capped (loop-relay-rate-limit), and the "
                                 "drafted reply would announce it: answer in your own words")
            draft = self._draft(self.outcome(ticket_id, now), now)
            if not draft:
                raise AgentError(f"[#{ticket['number']}] has no drafted reply to send")
            where = self._send(ticket, draft, agent, now)
            self._event(ticket_id, "approved", "agent-approved", f"sent {where}", now, agent)
        return f"approved: the drafted reply goes to the requester ({where})"

    def reclassify(self, ticket_id: int, label: str, agent: str, now: datetime) -> str:
        if label not in HUMAN_LABELS:
            raise AgentError(f"unknown label {label!r}")
        with self.store.transaction():
            ticket = self.ticket(ticket_id)
            if self.store.latest_correction(ticket_id) == label:
                raise AgentError(f"[#{ticket['number']}] is already labelled {label}")
            first = self.store.first_inbound(ticket_id) or {"subject": "", "text": ""}
            self.store.add_correction({
                "ticket": ticket_id, "label": label, "agent": agent, "subject": first["subject"] or "",
                "text": first["text"] or "", "channel": ticket["channel"], "language": ticket["language"] or "",
                "created_at": iso(now)})
            out = self.outcome(ticket_id, now)
            before = f"{ticket['category']}/{ticket['intent']}"
            self.store.update_ticket(ticket_id, {"category": out.cls.category, "intent": out.cls.intent,
                                                 "priority": out.cls.priority, "updated_at": iso(now)})
            self.store.add_event(ticket_id, "reclassified", ["agent-reclassified", *out.decision.reasons],
                                 ",".join(out.decision.actions), iso(now),
                                 detail={"agent": agent, "from": before, "to": label})
            webhooks.on_agent_event(self.store, self.config, ticket_id, "agent-reclassified", iso(now), agent,
                                    **{"from": before, "to": label})
        return f"reclassified {before} → {label}: {', '.join(out.decision.actions)}"

    def escalate(self, ticket_id: int, agent: str, now: datetime) -> str:
        return self._change(ticket_id, {"priority": "urgent"}, "escalated", "agent-escalated", agent, now)

    def close(self, ticket_id: int, agent: str, now: datetime) -> str:
        return self._change(ticket_id, {"status": "closed"}, "status", "agent-closed", agent, now)

    def resolve(self, ticket_id: int, agent: str, now: datetime) -> str:
        return self._change(ticket_id, {"status": "resolved"}, "status", "agent-resolved", agent, now)

    def assign(self, ticket_id: int, assignee: str, agent: str, now: datetime) -> str:
        return self._change(ticket_id, {"assignee": assignee}, "assigned", "agent-assigned", agent, now)

    def reopen(self, ticket_id: int, agent: str, now: datetime) -> str:
        if self.ticket(ticket_id)["status"] not in DONE_STATUSES:
            raise AgentError("only a resolved or closed ticket can be reopened")
        return self._change(ticket_id, {"status": "open"}, "status", "agent-reopened", agent, now)

    def note(self, ticket_id: int, text: str, agent: str, now: datetime, once: str = "") -> str:
        """An internal note: in the audit trail for agents, never sent to anybody. ``once``: as
        for ``reply``."""
        if not text.strip():
            raise AgentError("the note is empty")
        with self.store.transaction():
            self.ticket(ticket_id)
            if self._done(ticket_id, once):
                return "note already kept (the same note arrived twice)"
            self._event(ticket_id, "note", "agent-note", "internal", now, agent, once, text=text.strip())
        return "note kept internal"

    def reply(self, ticket_id: int, text: str, agent: str, now: datetime, once: str = "") -> str:
        """A thread message: ``note: …`` stays internal, anything else reaches the requester.

        ``once`` names the agent's act where they made it (a Slack message, a console form): the
        same act arriving again — Slack retrying an event after a restart, a double click, a
        browser resending a form — is recognised by the audit trail and not sent twice."""
        if text.strip().lower().startswith(NOTE_PREFIX):
            return self.note(ticket_id, text, agent, now, once)
        if not text.strip():
            raise AgentError("the reply is empty")
        with self.store.transaction():
            ticket = self.ticket(ticket_id)
            if self._done(ticket_id, once):
                return "already sent to the requester (the same reply arrived twice)"
            where = self._send(ticket, text.strip(), agent, now)
            self._event(ticket_id, "agent-reply", "agent-reply", f"sent {where}", now, agent, once)
            if ticket["status"] in OPEN_STATUSES:
                self.store.update_ticket(ticket_id, {"status": "pending"})
        return f"sent to the requester ({where})"

    def send_article(self, ticket_id: int, article_id: str, agent: str, now: datetime,
                     tenants: list[str] | None = None, once: str = "") -> str:
        """One help article of the ticket's tenant to the requester on the ticket's channel, in
        their language when it is translated, with a short text in that language. Any article of
        the tenant may be sent, not only those the bot offered: the agent has read the question.
        ``tenants`` (those of the Slack channel the click came from) refuses another tenant's
        ticket; ``once``: as for ``reply``."""
        with self.store.transaction():
            ticket = self.ticket(ticket_id)
            if tenants is not None and ticket["tenant"] not in tenants:
                raise AgentError(f"[#{ticket['number']}] belongs to a tenant this channel's agents do not serve")
            if self._done(ticket_id, once):
                return "article already sent to the requester (the same click arrived twice)"
            tenant = self.config.tenants.get(ticket["tenant"] or "")
            kb = self.pipeline.knowledge.get(tenant.slug) if tenant else None
            if tenant is None or kb is None:
                raise AgentError(f"[#{ticket['number']}]'s tenant has no knowledge base")
            language = ticket["language"] or tenant.language
            article = kb.article(article_id, language, tenant.language)
            if article is None:
                raise AgentError(f"no article {article_id!r} in {tenant.name}'s knowledge base")
            text = self.pipeline.renderer.article(language, tenant.language, {
                "title": article.title, "url": article.url, "ticket_tag": f"[#{ticket['number']}]",
                "tenant": tenant.name, "channel": ticket["channel"]})
            where = self._send(ticket, text, agent, now)
            self._event(ticket_id, "article-sent", "agent-article-sent", f"sent {where}", now, agent, once,
                        article=article.id, language=article.language, url=article.url)
            if ticket["status"] in OPEN_STATUSES:
                self.store.update_ticket(ticket_id, {"status": "pending"})
        return f"sent “{article.title}” to the requester ({where})"

    def reject_article(self, ticket_id: int, article_id: str, agent: str, now: datetime,
                       tenants: list[str] | None = None) -> str:
        """"Not the answer": an article the bot offered for the ticket does not answer it. Nothing
        is sent (the requester still has the article and the agent answers as usual); the event
        is what ``triage kb learn`` turns into a ``not_answered`` question of the article, so that
        a message like this one is no longer offered it. Only an article the bot offers for the
        ticket can be rejected: one it never offered teaches the bot nothing."""
        with self.store.transaction():
            ticket = self.ticket(ticket_id)
            if tenants is not None and ticket["tenant"] not in tenants:
                raise AgentError(f"[#{ticket['number']}] belongs to a tenant this channel's agents do not serve")
            offered = {s.article.id: s.article for s in self.outcome(ticket_id, now).suggestions.articles}
            if article_id not in offered:
                raise AgentError(f"[#{ticket['number']}] was not offered the article {article_id!r}")
            if self.store.has_event(ticket_id, ("article-rejected",), outcome=article_id):
                raise AgentError(f"[#{ticket['number']}]: {article_id!r} is already marked as not the answer")
            article = offered[article_id]
            self._event(ticket_id, "article-rejected", "agent-article-rejected", article.id, now, agent,
                        article=article.id, language=article.language)
        return f"marked “{article.title}” as not the answer (triage kb learn lists the message under it)"

    def create(self, tenant: str, address: str, subject: str, text: str, verified: bool, agent: str,
               now: datetime) -> dict[str, Any]:
        """A ticket taken by phone or in person: classified and decided like any message, on
        channel ``phone``; trusted only when the agent says they verified the caller."""
        address = address.strip().lower()
        if tenant not in self.config.tenants:
            raise AgentError(f"unknown tenant {tenant!r}")
        if "@" not in address or len(address) > 254 or any(c.isspace() for c in address):
            raise AgentError("the requester's email address is needed, so support can answer")
        if not text.strip():
            raise AgentError("write down what the caller asked")
        key = f"<phone.{secrets.token_hex(12)}@triage.invalid>"
        msg = Message(channel="phone", id=key, sender=address, subject=subject.strip()[:300], text=text.strip(),
                      new_text=text.strip(), tenant_hint=tenant, verified_by=agent if verified else "")
        with self.store.transaction():
            result = self.intake.process_chat(self.pipeline.assess(msg, now), key, None, now)
            assert result.ticket is not None
            self._event(result.ticket, "created", "agent-created", "verified by agent" if verified else "unverified",
                        now, agent)
        return self.ticket(result.ticket)

    # -- helpers --------------------------------------------------------------------------------

    def _change(self, ticket_id: int, changes: dict[str, Any], kind: str, rule: str, agent: str,
                now: datetime) -> str:
        with self.store.transaction():
            ticket = self.ticket(ticket_id)
            if all(ticket.get(k) == v for k, v in changes.items()):  # a repeated click or command: nothing to do
                raise AgentError(f"[#{ticket['number']}] already has "
                                 + ", ".join(f"{k} {v}" for k, v in changes.items()))
            self.store.update_ticket(ticket_id, {**changes, "updated_at": iso(now)})
            said = ", ".join(f"{k} {ticket.get(k) or '-'} → {v}" for k, v in changes.items())
            self._event(ticket_id, kind, rule, said, now, agent)
        return said

    def _event(self, ticket_id: int, kind: str, rule: str, outcome: str, now: datetime, agent: str,
               once: str = "", **detail: Any) -> None:
        detail = {"agent": agent, **({"once": once[:MAX_ONCE]} if once else {}), **detail}
        self.store.add_event(ticket_id, kind, [rule], outcome, iso(now), detail=detail)
        webhooks.on_agent_event(self.store, self.config, ticket_id, rule, iso(now), agent)  # issue 14

    def _done(self, ticket_id: int, once: str) -> bool:
        """Whether the act named ``once`` is already in the ticket's audit trail."""
        return bool(once) and self.store.has_event(ticket_id, ONCE_KINDS, once=once[:MAX_ONCE])

    def _send(self, ticket: dict[str, Any], body: str, agent: str, now: datetime) -> str:
        """To the requester on the ticket's own channel; returns where it went."""
        if ticket["channel"] == "widget":
            self.store.add_widget_reply(ticket["id"], body, agent, iso(now))
            return "widget"
        if ticket["channel"] not in ("email", "phone") or not ticket["requester_address"]:
            raise AgentError(f"[#{ticket['number']}] has no address to answer on {ticket['channel']}")
        self._email(ticket, body, now)
        return f"email to {ticket['requester_address']}"

    def _email(self, ticket: dict[str, Any], body: str, now: datetime) -> None:
        """A threaded answer: In-Reply-To the requester's last mail, the [#N] tag, a signed Message-ID.
        Written by a person, so no Auto-Submitted header (RFC 3834)."""
        tenant = self.config.tenants.get(ticket["tenant"] or "")
        if tenant is None:
            raise AgentError(f"[#{ticket['number']}] has no tenant to answer for")
        inbound = self.store.inbound_messages(ticket["id"])
        last = inbound[-1] if inbound else {"message_id": "", "recipients": "[]"}
        sender = self.intake.sender(tenant, json.loads(last["recipients"] or "[]"), ticket["language"] or tenant.language)
        subject = reply_subject(ticket["subject"] or "", ticket["number"])
        message_id = self.intake.signer.new_id(ticket["id"])
        to = ticket["requester_address"]
        try:
            rcpt = envelope_address(to)
            raw = compose(sender=sender, to=[("", to)], subject=subject, body=body, message_id=message_id, now=now,
                          auto_submitted="", in_reply_to=last["message_id"],
                          references=[m["message_id"] for m in inbound[:-1]][-5:])
        except Unencodable as e:  # said to the agent, who answers another way; nothing half-queued
            raise AgentError(f"[#{ticket['number']}] cannot be answered by mail: {e}") from None
        self.intake.queue(ticket["id"], "reply", [rcpt], subject, message_id, raw, body, sender[1], iso(now))


def redeliver(store: Store, delivery_id: int, agent: str, now: datetime, tenants: list[str] | None = None) -> str:
    """A failed signed call queued again, for the console's button and ``triage webhooks
    redeliver``: the same key, so a receiver that did act on it will not twice. Not a method of
    :class:`Agents` because it needs no pipeline (the CLI runs it without loading one).
    ``tenants`` (the console agent's; None: every tenant) refuses another tenant's delivery as
    if it did not exist."""
    with store.transaction():
        found = deliveries.owner(store, delivery_id)
        if found is None or (tenants is not None and found[1] not in tenants):
            raise AgentError(f"no delivery {delivery_id}")
        if not webhooks.redeliver(store, delivery_id, iso(now)):
            raise AgentError(f"delivery {delivery_id} is not a failed delivery")
        ticket = found[0]
        store.add_event(ticket, "webhook-redelivered", ["agent-redelivered"], "queued", iso(now),
                        detail={"agent": agent, "delivery": delivery_id})
    return f"delivery {delivery_id} queued again (same Idempotency-Key)"


def corrections(store: Store) -> list[Example]:
    """Agents' corrections as labelled examples for ``triage train`` (the latest per ticket)."""
    rows = store.corrections()
    return [Example(r["label"], r["subject"] or "", r["text"], r["channel"] or "email", r["language"] or "")
            for r in rows]


def message_of(ticket: dict[str, Any], row: dict[str, Any]) -> Message:
    """The stored inbound message as the pipeline saw it: re-parsed from the raw mail for email."""
    if row.get("raw"):
        return parse_email(row["raw"], json.loads(row["recipients"] or "[]"))
    text = row["text"] or ""
    channel = row["channel"] or ticket["channel"]
    vouched = channel == "phone" and ticket["trust"] == "verified"  # the agent's check, kept in the ticket
    return Message(channel=channel, id=row["message_id"], sender=row["sender"] or "",
                   recipients=json.loads(row["recipients"] or "[]"), subject=row["subject"] or "", text=text,
                   new_text=text, tenant_hint=ticket["tenant"], verified_by="agent" if vouched else "")
