"""Widget conversations: which ticket a chat line joins, and the conversation's own state.

A widget conversation is a series of chat lines from one visitor in one browser. The
browser keeps a random token (in localStorage, so a reload continues the conversation);
the database keeps only its SHA-256. Every line goes through the same queue, workers
and intake path as mail (:meth:`triage.intake.Intake.process_chat`) and joins the
conversation's ticket, so the audit trail, the policy and the relays are the same as for
email. A line is admitted (its token decided) and queued first; the writer files it in
one transaction: stored with its ticket, its reply and the conversation row, or not at all.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from triage import trust
from triage.config import Config
from triage.intake import Intake
from triage.pipeline import Outcome
from triage.parse import parse_chat
from triage.store import Store, iso

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
    user_token: str = ""  # a JWT from the portal naming the visitor (triage/widget_identity.py)


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
        token = line.token if conversation else secrets.token_urlsafe(32)
        digest = token_hash(token)
        data = {"tenant": line.tenant, "email": line.email, "name": line.name, "user_hash": line.user_hash,
                "user_token": line.user_token, "text": line.text, "client_id": line.client_id, "token_hash": digest,
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
                "last_seen": at})
        else:
            self.store.update_widget_conversation(conversation["id"], {
                "ticket": result.ticket, "verified": int(verified), "last_seen": at})
        return Posted("", result.ticket, result.number, verified, result.duplicate)

    def state(self, token: str, after: int = 0, pending: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The conversation as the widget shows it: ticket number, identity and lines after ``after``;
        a conversation whose first line is still queued (``pending``) has no ticket and no lines yet."""
        conversation = self.find(token)
        if conversation is None:
            if pending is None:
                return None
            return {"tenant": pending["tenant"], "ticket": None, "status": "queued", "verified": False,
                    "email": pending["email"], "messages": []}
        ticket = self.store.ticket(conversation["ticket"])
        return {
            "tenant": conversation["tenant"],
            "ticket": ticket["number"] if ticket else None,
            "status": ticket["status"] if ticket else None,
            "verified": bool(conversation["verified"]),
            "email": conversation["email"],
            "messages": [_line(row) for row in self.store.widget_messages(conversation["ticket"], after)],
        }

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
            lines = [{"at": row["at"][:16].replace("T", " "), "inbound": row["direction"] == "in", "text": row["text"]}
                     for row in self.store.widget_messages(ticket["id"])]
            language = ticket["language"] or tenant.language
            subject, body = self.intake.pipeline.renderer.transcript(
                language, tenant.language, {"ticket_tag": f"[#{ticket['number']}]", "tenant": tenant.name, "lines": lines})
            return self.intake.mail_requester(ticket["id"], tenant, (conversation["name"], conversation["email"]),
                                              subject, body, language, now)


def _line(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "direction": row["direction"],
            "author": "you" if row["direction"] == "in" else ("triage" if row["sender"] == "triage" else "agent"),
            "text": row["text"], "at": row["at"]}
