"""One inbound mail, one transaction: its ticket, its events, its replies and relays.

This is the single entry point every delivery path calls (as in Zulip's email gateway).
It runs in the store's thread and does all its writing inside the transaction the caller
opened, so either everything about a message is on disk or nothing is, and the SMTP
listener can say 250 exactly when it is. Deciding stays in the pipeline and policy;
here the decision is carried out: threading, ticket rows, the audit trail, bounce
suppressions, and outbox rows that passed the loop gate.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from triage.config import Config, Tenant
from triage.directory import Directory
from triage.identify import find_tenant
from triage.loops import Gate, acknowledged_before, is_system_address
from triage.message import Message
from triage.outbox import Unencodable, compose, reply_subject
from triage.parse import parse_email
from triage.pipeline import Outcome, Pipeline
from triage.store import Store, iso
from triage.chat import chat_thread
from triage.threading import Signer, Thread, find_thread

RULES = {
    "intake-duplicate-message-id": "a Message-ID already stored: the delivery is ignored (no second ticket)",
    "intake-quarantined": "the message could not be processed: kept in quarantine, SMTP answered 451",
    "ticket-reopened": "a person wrote again on a resolved ticket: it is open again",
    "ticket-requester-replied": "the requester answered a pending ticket: it is open again",
    "intake-no-contacts": "the decision relays to the company, but the tenant has no contacts configured",
}


@dataclass
class Delivery:
    """One mail as the SMTP listener received it."""

    raw: bytes
    mail_from: str
    recipients: list[str]
    received_at: datetime

    @property
    def envelope(self) -> dict[str, Any]:
        return {"mail_from": self.mail_from, "rcpt_to": self.recipients}


@dataclass
class Result:
    """What became of a delivery (the listener answers 250 with the ticket number)."""

    ticket: int | None  # the ticket's row id
    number: int | None  # its human number
    duplicate: bool = False
    queued: int = 0  # outbox rows waiting for the relay


def dedupe_key(msg: Message, raw: bytes) -> str:
    """The Message-ID, or for mail without one a stable id from its content."""
    return msg.id or f"<sha256.{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.invalid>"


class Intake:
    def __init__(self, config: Config, store: Store, pipeline: Pipeline, signer: Signer, gate: Gate,
                 hold_local: bool):
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.signer = signer
        self.gate = gate
        self.hold_local = hold_local  # no relay configured: outbox rows stay 'held_local'
        self._directory_version = 0
        self._pruned: datetime | None = None
        self.refresh_directory()

    def refresh_directory(self) -> None:
        """Directories imported with ``triage directory import`` replace the tenants' CSV files."""
        version = self.store.directory_version()
        if version == self._directory_version:
            return
        for slug in self.store.directory_tenants():
            if slug in self.config.tenants:
                self.config.tenants[slug].directory = Directory(self.store.directory_users(slug))
        self._directory_version = version

    def _prune(self, now: datetime | None) -> None:
        """Forget sent-mail counts older than the longest rate-limit window, once an hour."""
        if now is None or (self._pruned and now - self._pruned < timedelta(hours=1)):
            return
        self.store.prune_sent_log(iso(now - self.gate.longest_window))
        self._pruned = now

    def process_batch(self, deliveries: list[Delivery]) -> list[Result | Exception]:
        """Group commit: many deliveries, one transaction, one fsync. Each delivery has its own
        savepoint, so a message that fails is quarantined without undoing the others."""
        results: list[Result | Exception] = []
        with self.store.transaction():
            self.refresh_directory()
            self._prune(deliveries[0].received_at if deliveries else None)
            for delivery in deliveries:
                try:
                    with self.store.transaction():
                        results.append(self.process(delivery))
                except Exception as e:  # any failure: quarantine the raw mail, answer 451
                    error = f"{type(e).__name__}: {e}"
                    at = iso(delivery.received_at)
                    self.store.quarantine(delivery.raw, delivery.envelope, error, at)
                    self.store.add_event(None, "quarantined", ["intake-quarantined"], error, at,
                                         detail=delivery.envelope)
                    results.append(e)
        return results

    def process(self, delivery: Delivery) -> Result:
        """Everything about one message; the caller's transaction commits it."""
        # As the final delivery agent we record the envelope sender (RFC 5321 4.4): a null
        # Return-Path is how bounces are recognised.
        raw = f"Return-Path: <{delivery.mail_from}>\r\n".encode() + delivery.raw
        msg = parse_email(raw, delivery.recipients)
        return self._file(msg, dedupe_key(msg, delivery.raw), delivery.received_at, raw, delivery.recipients,
                          lambda slug: find_thread(msg, slug, self.signer, self.store,
                                                   self.config.email["from_address"]))

    def process_chat(self, msg: Message, key: str, ticket_id: int | None, now: datetime) -> Result:
        """A chat line already parsed (the widget) takes the same path as mail; it joins the
        ticket of its conversation (``ticket_id``, None for the first line) instead of
        threading by headers, and its reply is shown in the chat instead of mailed."""
        return self._file(msg, key, now, None, [], lambda slug: chat_thread(self.store, ticket_id))

    def _file(self, msg: Message, key: str, now: datetime, raw: bytes | None, recipients: list[str],
              thread_of: Callable[[str | None], Thread]) -> Result:
        """Dedupe, thread, decide, and record one message with its replies and relays."""
        at = iso(now)
        seen = self.store.inbound(key)
        if seen is not None:
            self.store.add_event(seen["ticket"], "duplicate", ["intake-duplicate-message-id"], "ignored", at,
                                 message=seen["id"], detail={"message_id": key})
            row = self.store.ticket(seen["ticket"]) if seen["ticket"] else None
            return Result(seen["ticket"], row["number"] if row else None, duplicate=True)

        tenant = find_tenant(msg, self.config, [])
        slug = tenant.slug if tenant else None
        thread = thread_of(slug)
        number = thread.ticket["number"] if thread.ticket else self.store.next_number(slug)
        outcome = self.pipeline.run(msg, number, now)
        automated = bool(outcome.automation.kind)
        if thread.ticket is None:
            ticket_id = self.store.create_ticket(self._ticket_row(msg, outcome, slug, number, at))
        else:
            ticket_id = thread.ticket["id"]
            self._follow_up(thread.ticket, automated, at)
        message = self.store.add_message({
            "ticket": ticket_id, "direction": "in", "message_id": key, "channel": msg.channel,
            "sender": msg.sender, "recipients": json.dumps(msg.recipients), "subject": msg.subject,
            "text": msg.text, "raw_size": len(raw) if raw is not None else len(msg.text.encode()), "raw": raw,
            "at": at,
        })
        self.store.add_event(ticket_id, "thread", thread.rules, "joined" if thread.ticket else "new ticket",
                             at, message=message, detail={"number": number})
        self.store.add_event(ticket_id, "decision", outcome.decision.reasons,
                             ",".join(outcome.decision.actions), at, message=message,
                             detail=_decision_detail(outcome))
        if not automated and msg.sender:
            self._participants(ticket_id, msg, new=thread.ticket is None or thread.add_participant, at=at)
        if "thread-bounced-message" in thread.rules:  # only a bounce of mail the bot really sent
            self._bounce(ticket_id, msg, outcome, recipients, now, at)
        queued = 0
        if outcome.reply and tenant is not None and msg.channel == "widget":
            self._chat_reply(ticket_id, outcome, thread.ticket is not None, at)
        elif outcome.reply and tenant is not None:
            queued += self._reply(ticket_id, number, tenant, msg, outcome, key, automated,
                                  thread.ticket is not None, now)
        if outcome.relay and tenant is not None:
            queued += self._relay(ticket_id, tenant, msg, outcome, key, now)
        return Result(ticket_id, number, queued=queued)

    # -- tickets ----------------------------------------------------------------------

    @staticmethod
    def _ticket_row(msg: Message, outcome: Outcome, slug: str | None, number: int, at: str) -> dict[str, Any]:
        return {
            "tenant": slug, "number": number, "status": "new", "priority": outcome.cls.priority,
            "category": outcome.cls.category, "intent": outcome.cls.intent,
            "requester": outcome.who.requester, "trust": outcome.trust.label,
            "language": outcome.cls.language, "channel": msg.channel, "subject": msg.subject,
            "requester_address": msg.sender, "created_at": at, "updated_at": at,
        }

    def _follow_up(self, ticket: dict[str, Any], automated: bool, at: str) -> None:
        """A person writing again reopens a resolved or pending ticket; an auto-reply does not."""
        changes: dict[str, Any] = {"updated_at": at}
        rule = {"resolved": "ticket-reopened", "pending": "ticket-requester-replied"}.get(ticket["status"])
        if rule and not automated:
            changes["status"] = "open"
            self.store.add_event(ticket["id"], "status", [rule], f"{ticket['status']} -> open", at)
        self.store.update_ticket(ticket["id"], changes)

    def _participants(self, ticket_id: int, msg: Message, new: bool, at: str) -> None:
        """The requester and the people they copied may continue the ticket by its [#N] tag."""
        if new:
            self.store.add_participant(ticket_id, msg.sender, "requester", at)
        own = self.config.own_addresses
        for address in msg.recipients:
            if address not in own and address != msg.sender and not is_system_address(address):
                self.store.add_participant(ticket_id, address, "copied", at)

    def _bounce(self, ticket_id: int, msg: Message, outcome: Outcome, recipients: list[str], now: datetime,
                at: str) -> None:
        """A hard bounce of the bot's own mail silences automatic mail to that address. The
        caller checks that it returns a Message-ID the bot signed: a forged bounce must not
        be able to silence replies to a supplier of the sender's choosing."""
        auto = outcome.automation
        if auto.kind != "bounce" or not auto.permanent:
            return
        if self.config.email["from_address"] not in [r.lower() for r in recipients]:
            return
        until = self.gate.bounce_until(now)
        for address in auto.failed_recipients:
            if address in self.config.own_addresses:
                continue
            self.store.suppress(address, until, f"hard bounce {msg.id}", at)
            self.store.add_event(ticket_id, "suppression", ["loop-hard-bounce-recorded"],
                                 f"{address} until {until}", at)

    # -- outgoing chat and mail ---------------------------------------------------------

    def _chat_reply(self, ticket_id: int, outcome: Outcome, follow_up: bool, at: str) -> None:
        """A chat ticket is answered in the chat: an outgoing widget message sized for a chat
        window, never a mail (the visitor's address may be unproven). A follow-up that only needs an
        acknowledgement gets none, as in mail: one ack per ticket is enough."""
        if acknowledged_before(outcome.decision.actions, follow_up):
            self.store.add_event(ticket_id, "reply-suppressed", ["loop-followup-acknowledged"], "not shown", at)
            return
        assert outcome.reply is not None
        text = outcome.chat or outcome.reply
        message = self.store.add_message({
            "ticket": ticket_id, "direction": "out", "message_id": self.signer.new_id(ticket_id),
            "channel": "widget", "sender": "triage", "recipients": "[]", "subject": "", "text": text,
            "raw_size": len(text.encode()), "at": at,
        })
        # The chat shows the short answer and the articles as links; the letter stays for the transcript.
        articles = [{"id": s.article.id, "title": s.article.title, "url": s.article.url}
                    for s in outcome.suggestions.articles]
        self.store.add_event(ticket_id, "reply", [], "shown in the widget", at, message=message,
                             detail={"letter": outcome.reply, "articles": articles})

    def mail_requester(self, ticket_id: int, tenant: Tenant, to: tuple[str, str], subject: str, body: str,
                       now: datetime) -> str | None:
        """Queue a mail the requester asked for (the widget transcript); the rule id when the loop gate refuses."""
        at = iso(now)
        refused = self.gate.check_relay(to[1], self.store, now)
        if refused:
            self.store.add_event(ticket_id, "mail-suppressed", [refused], "not sent", at, detail={"to": to[1]})
            return refused
        sender = support_sender(tenant, [])
        message_id = self.signer.new_id(ticket_id)
        try:
            raw = compose(sender=sender, to=[to], subject=subject, body=body, message_id=message_id, now=now,
                          auto_submitted="auto-generated")
        except Unencodable as e:
            self.store.add_event(ticket_id, "mail-suppressed", ["outbox-unencodable-address"], str(e), at)
            return "outbox-unencodable-address"
        self.store.log_sent(to[1], ticket_id, at)
        self.queue(ticket_id, "transcript", [to[1]], subject, message_id, raw, body, sender[1], at)
        return None

    # -- outgoing mail ------------------------------------------------------------------

    def _from(self, tenant: Tenant, msg: Message) -> tuple[str, str]:
        return support_sender(tenant, msg.recipients)

    def queue(self, ticket_id: int, kind: str, recipients: list[str], subject: str, message_id: str,
              raw: bytes, body: str, sender: str, at: str) -> None:
        """One outgoing mail: its outbox row, its outgoing message and the event, in the caller's
        transaction (agents' replies from Slack use it too)."""
        status = "held_local" if self.hold_local else "queued"
        self.store.enqueue({
            "ticket": ticket_id, "kind": kind, "mail_from": self.config.email["from_address"],
            "recipients": json.dumps(recipients), "subject": subject, "message_id": message_id,
            "raw": raw, "status": status, "attempts": 0, "next_attempt_at": at, "last_error": "",
            "created_at": at,
        })
        self.store.add_message({
            "ticket": ticket_id, "direction": "out", "message_id": message_id, "channel": "email",
            "sender": sender, "recipients": json.dumps(recipients), "subject": subject, "text": body,
            "raw_size": len(raw), "at": at,
        })
        self.store.add_event(ticket_id, kind, ["outbox-held-local"] if self.hold_local else [], status, at,
                             detail={"message_id": message_id, "to": recipients})

    def _reply(self, ticket_id: int, number: int, tenant: Tenant, msg: Message, outcome: Outcome,
               in_reply_to: str, automated: bool, follow_up: bool, now: datetime) -> int:
        at = iso(now)
        ack_only = acknowledged_before(outcome.decision.actions, follow_up)
        refused = self.gate.check_reply(msg.sender, automated, self.store, now, followup_ack_only=ack_only)
        if refused:
            self.store.add_event(ticket_id, "reply-suppressed", [refused], "not sent", at,
                                 detail={"to": msg.sender})
            return 0
        assert outcome.reply is not None
        sender = self._from(tenant, msg)
        subject = reply_subject(msg.subject, number)
        message_id = self.signer.new_id(ticket_id)
        try:
            raw = compose(sender=sender, to=[(msg.sender_name, msg.sender)], subject=subject, body=outcome.reply,
                          message_id=message_id, now=now, auto_submitted="auto-replied",
                          in_reply_to=in_reply_to, references=msg.references)
        except Unencodable as e:  # the ticket stands; an agent answers another way
            self.store.add_event(ticket_id, "reply-suppressed", ["outbox-unencodable-address"], str(e), at,
                                 detail={"to": msg.sender})
            return 0
        self.store.log_sent(msg.sender, ticket_id, at)
        self.queue(ticket_id, "reply", [msg.sender], subject, message_id, raw, outcome.reply, sender[1], at)
        return 0 if self.hold_local else 1

    def _relay(self, ticket_id: int, tenant: Tenant, msg: Message, outcome: Outcome, in_reply_to: str,
               now: datetime) -> int:
        """Forward to the tenant's contacts for the topic, Reply-To the supplier (contacts answer directly)."""
        at = iso(now)
        contacts = []
        for contact in tenant.contacts_for(outcome.decision.relay_topic):
            refused = self.gate.check_relay(contact.email, self.store, now)
            if refused:
                self.store.add_event(ticket_id, "relay-suppressed", [refused], "not sent", at,
                                     detail={"to": contact.email})
            else:
                contacts.append(contact)
        if not tenant.contacts:
            self.store.add_event(ticket_id, "relay-suppressed", ["intake-no-contacts"], "not sent", at)
        if not contacts:
            return 0
        assert outcome.relay is not None and outcome.relay_subject is not None
        sender = self._from(tenant, msg)
        queued = 0
        # One mail per contact: with several in To:, a contact's reply-all would show the
        # supplier (Reply-To) the other contacts' names and addresses.
        for contact in contacts:
            message_id = self.signer.new_id(ticket_id)
            try:
                raw = compose(sender=sender, to=[(contact.name, contact.email)], subject=outcome.relay_subject,
                              body=outcome.relay, message_id=message_id, now=now, auto_submitted="auto-generated",
                              in_reply_to=in_reply_to, reply_to=(msg.sender_name, msg.sender))
            except Unencodable as e:
                self.store.add_event(ticket_id, "relay-suppressed", ["outbox-unencodable-address"], str(e), at)
                continue
            self.store.add_participant(ticket_id, contact.email, "contact", at)
            self.queue(ticket_id, "relay", [contact.email], outcome.relay_subject, message_id, raw,
                       outcome.relay, sender[1], at)
            queued += 0 if self.hold_local else 1
        return queued


def support_sender(tenant: Tenant, recipients: list[str]) -> tuple[str, str]:
    """(name, address) of mail from support: the support address the person wrote to (so
    their answer threads back), else the tenant's first one."""
    address = next((r for r in recipients if r in tenant.support_addresses), tenant.support_addresses[0])
    return f"{tenant.name} supplier portal support", address


def _decision_detail(outcome: Outcome) -> dict[str, Any]:
    line = outcome.contract()
    return {k: line[k] for k in ("category", "intent", "requester", "trust", "language", "priority",
                                 "confidence", "evidence", "failed_recipients", "error", "articles") if k in line}
