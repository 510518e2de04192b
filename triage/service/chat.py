"""Widget conversations: which ticket a chat line joins, and the conversation's own state.

A widget conversation is a series of chat lines from one visitor in one browser. The
browser keeps a random token (in localStorage, so a reload continues the conversation);
the database keeps only its SHA-256. Every line goes through the same queue, workers
and intake path as mail (:meth:`triage.service.intake.Intake.process_chat`) and joins the
conversation's ticket, so the audit trail, the policy and the relays are the same as for
email. A line is admitted (its token decided) and queued first; the writer files it in
one transaction: stored with its ticket, its reply and the conversation row, or not at all.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from triage.config import Config
from triage.core import trust
from triage.core.parse import parse_chat
from triage.core.pipeline import Outcome
from triage.service import webhooks
from triage.service.intake import Intake
from triage.store import Store, iso

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
BROWSER_KEY = re.compile(r"^[A-Za-z0-9_-]{22,64}$")  # at least 128 random bits, as the widget makes them
SUBJECT_WORDS = 10  # a widget ticket's subject: the first words of its first line ...
SUBJECT_LENGTH = 80  # ... and at most this many characters
FEEDBACK_KIND = "kb-feedback"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def browser_token(tenant: str, email: str, browser: str) -> str:
    """The conversation token of a line posted without one: derived from the browser's own
    random key and the address. The same browser writing again as the same address
    continues its conversation even when the token was never saved (a lost answer, two tabs,
    storage refused); someone typing that address in another browser lacks the key and
    gets a conversation of their own, so an address alone never opens anyone's history."""
    digest = hashlib.sha256(f"triage-widget-token\0{tenant}\0{email}\0{browser}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def subject_of(text: str) -> str:
    """A widget ticket's subject: the first words of the first non-empty line, bounded."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    words = first.split()
    subject = " ".join(words[:SUBJECT_WORDS])
    if len(subject) > SUBJECT_LENGTH:
        subject = subject[:SUBJECT_LENGTH].rsplit(" ", 1)[0] or subject[:SUBJECT_LENGTH]
    return subject + ("…" if subject != " ".join(words) else "")


@dataclass
class ChatLine:
    """One line as the widget posted it, already checked for shape and size."""

    tenant: str
    email: str
    name: str
    user_hash: str
    text: str
    client_id: str  # the widget's id for this line: a retried POST is stored once
    token: str = ""  # the conversation to continue ("" starts one)
    user_token: str = ""  # a JWT from the portal naming the visitor (triage/core/widget_identity.py)
    browser: str = ""  # the browser's random key: a line without a token continues (see browser_token)


@dataclass
class Posted:
    """What the widget needs back: the conversation to keep and the ticket the line is on."""

    token: str
    ticket: int | None  # None while the line is still queued (the reply follows on the event stream)
    number: int | None
    verified: bool
    duplicate: bool
    queued: bool = False


class Conversations:
    """Widget conversations over the store; every method runs in the database thread."""

    def __init__(self, config: Config, store: Store, intake: Intake):
        self.config = config
        self.store = store
        self.intake = intake

    def find(self, token: str) -> dict[str, Any] | None:
        return self.store.widget_conversation(token_hash(token)) if token else None

    def admit(self, line: ChatLine, pending: dict[str, Any] | None, now: datetime) -> tuple[dict[str, Any], str, bool]:
        """The queue row for a line, the conversation's token and whether the visitor is verified.
        A token continues a conversation that is filed, or one whose first line is still queued
        (``pending``), for the same tenant and address; otherwise the line starts a new one. The
        row holds only the token's SHA-256, like the database."""
        conversation = self.find(line.token) or pending
        if conversation and (conversation["tenant"], conversation["email"]) != (line.tenant, line.email):
            conversation = None  # someone else in this browser now: their own conversation
        token = line.token if conversation else ""
        if not token:  # a browser that writes again without its token continues (browser_token)
            token = browser_token(line.tenant, line.email, line.browser) if line.browser else secrets.token_urlsafe(32)
        digest = token_hash(token)
        data = {"tenant": line.tenant, "email": line.email, "name": line.name, "user_hash": line.user_hash,
                "user_token": line.user_token, "text": line.text, "subject": subject_of(line.text),
                "client_id": line.client_id, "token_hash": digest,
                "key": f"<widget.{digest[:24]}.{line.client_id}@widget.invalid>"}
        msg = parse_chat({"channel": "widget", "tenant": line.tenant, "from": line.email, "text": line.text,
                          "user_hash": line.user_hash, "user_token": line.user_token})
        verified = trust.assess(msg, self.config.tenants[line.tenant].widget_secret, []).verified
        row = {"kind": "chat", "raw": json.dumps(data).encode(), "received_at": iso(now), "token_hash": digest}
        return row, token, verified

    def file(self, line: dict[str, Any], outcome: Outcome, now: datetime) -> Posted:
        """File an assessed line (in the writer's transaction): its ticket, its reply and the
        conversation row. The token is not known here (only its hash): the caller has it."""
        at = iso(now)
        conversation = self.store.widget_conversation(line["token_hash"])
        result = self.intake.process_chat(outcome, line["key"], conversation["ticket"] if conversation else None, now)
        assert result.ticket is not None and result.number is not None
        verified = outcome.trust.verified
        if conversation is None:
            self.store.add_widget_conversation({
                "token_hash": line["token_hash"], "tenant": line["tenant"], "ticket": result.ticket,
                "email": line["email"], "name": line["name"], "verified": int(verified), "created_at": at,
                "last_seen_at": at})
        else:
            self.store.update_widget_conversation(conversation["id"], {
                "ticket": result.ticket, "verified": int(verified), "last_seen_at": at})
        return Posted("", result.ticket, result.number, verified, result.duplicate)

    def state(self, token: str, after: int = 0, pending: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The conversation as the widget shows it: ticket number, identity and lines after
        ``after``, each answer with the articles it suggested and what the visitor said of them;
        a conversation whose first line is still queued (``pending``) has no ticket and no lines yet."""
        conversation = self.find(token)
        if conversation is None:
            if pending is None:
                return None
            return {"tenant": pending["tenant"], "ticket": None, "status": "queued", "verified": False,
                    "email": pending["email"], "messages": []}
        ticket = self.store.ticket(conversation["ticket"])
        rows = self.store.widget_messages(conversation["ticket"], after)
        replies, feedback = self._replies(conversation["ticket"]) if rows else ({}, {})
        return {
            "tenant": conversation["tenant"],
            "ticket": ticket["number"] if ticket else None,
            "status": ticket["status"] if ticket else None,
            "verified": bool(conversation["verified"]),
            "email": conversation["email"],
            "messages": [_line(row, replies.get(row["id"], {}).get("articles", []), feedback.get(row["id"]))
                         for row in rows],
        }

    def _replies(self, ticket_id: int) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
        """The bot's answers (message id -> letter and articles) and the visitor's feedback on
        their articles (message id -> "solved" or "not-solved"), from the ticket's events."""
        replies: dict[int, dict[str, Any]] = {}
        feedback: dict[int, str] = {}
        for event in self.store.events(ticket_id):
            if event["kind"] == "reply" and event["message"] is not None:
                replies[event["message"]] = json.loads(event["detail"] or "{}")
            elif event["kind"] == FEEDBACK_KIND:
                detail = json.loads(event["detail"] or "{}")
                if feedback.get(detail.get("line")) != "solved":
                    feedback[detail.get("line")] = detail.get("answer", "")
        return replies, feedback

    def feedback(self, token: str, line_id: int, article: str, solved: bool, now: datetime) -> dict[str, Any]:
        """The visitor's answer to the articles suggested with one of the bot's lines: "This
        solved it" (one article) resolves the ticket (``kb-solved``), "I still need help"
        leaves it open for an agent (``kb-not-solved``). Both are events, so reports can count
        suggestions accepted; each is recorded once per line, so repeating it grows nothing.
        Raises LookupError for an unknown conversation, line or article."""
        at = iso(now)
        with self.store.transaction():
            conversation = self.find(token)
            if conversation is None:
                raise LookupError("this conversation is not known (any more)")
            ticket = self.store.ticket(conversation["ticket"])
            assert ticket is not None
            replies, feedback = self._replies(ticket["id"])
            offered = [a["id"] for a in replies.get(line_id, {}).get("articles", [])]
            if not offered:
                raise LookupError("no articles were suggested with this line")
            if solved and article not in offered:
                raise LookupError("this article was not suggested with this line")
            answer = "solved" if solved else "not-solved"
            if feedback.get(line_id) in (answer, "solved"):
                return {"status": ticket["status"], "recorded": False}
            rule = "kb-solved" if solved else "kb-not-solved"
            self.store.add_event(ticket["id"], FEEDBACK_KIND, [rule], answer, at, message=line_id,
                                 detail={"line": line_id, "answer": answer, "article": article if solved else "",
                                         "offered": offered})
            status = ticket["status"]
            if solved and status not in ("resolved", "closed"):
                self.store.update_ticket(ticket["id"], {"status": "resolved", "updated_at": at})
                self.store.add_event(ticket["id"], "status", [rule], f"{status} -> resolved", at,
                                     detail={"article": article})
                webhooks.ticket_event(self.store, self.config, ticket["id"], "resolved", at, {"rule": rule})
                status = "resolved"
        return {"status": status, "recorded": True}

    def transcript(self, token: str, now: datetime) -> str | None:
        """Queue the conversation by mail to the visitor. Only a verified address gets it: an
        unproven one could make the bot mail a stranger. Raises PermissionError otherwise;
        returns the loop rule id when the address may get no mail now, None when queued."""
        with self.store.transaction():
            conversation = self.find(token)
            if conversation is None:
                raise LookupError("no such conversation")
            if not conversation["verified"]:
                raise PermissionError("only a visitor signed in to the portal can get the transcript by email")
            tenant = self.config.tenants[conversation["tenant"]]
            ticket = self.store.ticket(conversation["ticket"])
            assert ticket is not None
            letters = {m: r.get("letter") for m, r in self._replies(ticket["id"])[0].items()}
            lines = [{"at": row["created_at"][:16].replace("T", " "), "inbound": row["direction"] == "in",
                      "text": letters.get(row["id"]) or row["text"]}  # the bot's whole letter, not the chat size
                     for row in self.store.widget_messages(ticket["id"])]
            language = ticket["language"] or tenant.language
            subject, body = self.intake.pipeline.renderer.transcript(
                language, tenant.language, {"ticket_tag": f"[#{ticket['number']}]", "tenant": tenant.name, "lines": lines})
            return self.intake.mail_requester(ticket["id"], tenant, (conversation["name"], conversation["email"]),
                                              subject, body, language, now)


def _line(row: dict[str, Any], articles: list[dict[str, str]], feedback: str | None) -> dict[str, Any]:
    line = {"id": row["id"], "direction": row["direction"],
            "author": "you" if row["direction"] == "in" else ("triage" if row["sender"] == "triage" else "agent"),
            "text": row["text"], "at": row["created_at"]}
    if articles:
        line["articles"] = articles
        line["feedback"] = feedback or ""
    return line
