"""One inbound mail, one transaction: its ticket, its events, its replies and relays.

This is the single entry point every delivery path reaches (as in Zulip's email gateway).
In the service a worker process has already assessed the mail (:mod:`triage.service.workers`);
here, in the store's thread and inside the transaction the caller opened, the writer
threads it, numbers it, renders what it gets and files it, so either everything about a
message is on disk or nothing is. Deciding stays in the pipeline and policy; here the
decision is carried out: threading, ticket rows, the audit trail, bounce suppressions,
and outbox rows that passed the loop gate.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from triage.config import Config, Tenant
from triage.core.directory import Directory
from triage.core.domains import base_address
from triage.core.identify import find_tenant
from triage.core.message import Message
from triage.core.parse import parse_chat, parse_email
from triage.core.pipeline import Drafts, Outcome, Pipeline
from triage.core.threading import Signer, Thread, chat_thread, find_thread, returned_ids
from triage.service import webhooks
from triage.service.loops import Gate, acknowledged_before, is_system_address
from triage.service.outbox import Unencodable, compose, envelope_address, reply_subject
from triage.store import Store, iso

RULES = {
    "intake-duplicate-message-id": "a Message-ID already stored: the delivery is ignored (no second ticket)",
    "intake-quarantined": "the message failed three times (pipeline error or a worker died): kept in quarantine "
                          "with its error, an agent is alerted; the sender, already answered 250, is not asked again",
    "intake-retry": "the message could not be processed this time: it stays queued and is tried again",
    "ticket-reopened": "a person wrote again on a resolved ticket: it is open again",
    "ticket-requester-replied": "the requester answered a pending ticket: it is open again",
    "intake-no-contacts": "the decision relays to the company, but the tenant has no contacts configured",
    "intake-bounce-not-a-recipient": "a bounce names an address the returned mail was not sent to: "
                                     "it is not suppressed (a forged bounce silences nobody)",
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
    held: int = 0  # outbox rows kept (no relay configured): only `triage outbox` shows them


def dedupe_key(msg: Message, raw: bytes) -> str:
    """The Message-ID, or for mail without one a stable id from its content."""
    return msg.id or f"<sha256.{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.invalid>"


def read_mail(raw: bytes, mail_from: str, recipients: list[str]) -> tuple[Message, bytes, str]:
    """The mail as stored and parsed, and its dedupe key. As the final delivery agent we record
    the envelope sender (RFC 5321 4.4): a null Return-Path is how bounces are recognised."""
    stored = f"Return-Path: <{mail_from}>\r\n".encode() + raw
    msg = parse_email(stored, recipients)
    return msg, stored, dedupe_key(msg, raw)


def read_chat(line: bytes) -> tuple[Message, str]:
    """A queued widget line (see :meth:`triage.service.chat.Conversations.queue_row`) and its dedupe key."""
    data = json.loads(line)
    msg = parse_chat({"id": data["client_id"], "channel": "widget", "tenant": data["tenant"], "from": data["email"],
                      "name": data["name"], "user_hash": data["user_hash"],
                      "user_token": data.get("user_token", ""), "text": data["text"]})
    msg.subject = data.get("subject", "")  # the first words of the line (triage.service.chat.subject_of)
    return msg, data["key"]


class Intake:
    def __init__(self, config: Config, store: Store, pipeline: Pipeline | Drafts, signer: Signer, gate: Gate,
                 hold_local: bool):
        self.config = config
        self.store = store
        self.pipeline = pipeline  # the service's writer has the render stage only (Drafts): no classifier
        self.signer = signer
        self.gate = gate
        self.hold_local = hold_local  # no relay configured: outbox rows stay 'held_local'
        self.directory_version = 0
        self._pruned: datetime | None = None
        self.refresh_directory()

    def refresh_directory(self) -> None:
        """Directories imported with ``triage directory import`` replace the tenants' CSV files."""
        version = self.store.directory_version()
        if version == self.directory_version:
            return
        for slug in self.store.directory_tenants():
            if slug in self.config.tenants:
                self.config.tenants[slug].directory = Directory(self.store.directory_users(slug))
        self.directory_version = version

    def _prune(self, now: datetime) -> None:
        """Forget sent-mail counts older than the longest rate-limit window, once an hour."""
        if self._pruned and now - self._pruned < timedelta(hours=1):
            return
        self.store.prune_sent_log(iso(now - self.gate.longest_window))
        self._pruned = now

    def prepare(self, now: datetime) -> None:
        """At the start of each batch's transaction: current directories, pruned send counts."""
        self.refresh_directory()
        self._prune(now)

    def process_batch(self, deliveries: list[Delivery]) -> list[Result | Exception]:
        """Many deliveries assessed in this process, one transaction. Each has its own
        savepoint: one that fails is rolled back alone and returned as its exception."""
        results: list[Result | Exception] = []
        with self.store.transaction():
            if deliveries:
                self.prepare(deliveries[0].received_at)
            for delivery in deliveries:
                try:
                    with self.store.transaction():
                        results.append(self.process(delivery))
                except Exception as e:  # the caller decides: retry, quarantine
                    results.append(e)
        return results

    def quarantine(self, raw: bytes, envelope: dict[str, Any], error: str, attempts: int, at: str) -> None:
        """Give up on a mail: keep it with its error and alert the agents (an event without a ticket)."""
        self.store.quarantine(raw, envelope, error, at)
        self.store.add_event(None, "quarantined", ["intake-quarantined"], error, at,
                             detail={**envelope, "attempts": attempts, "error": error})

    def process(self, delivery: Delivery) -> Result:
        """Everything about one message, assessed in this process (tools and tests without
        workers); the caller's transaction commits it."""
        assert isinstance(self.pipeline, Pipeline)
        msg, raw, key = read_mail(delivery.raw, delivery.mail_from, delivery.recipients)
        return self.file(self.pipeline.assess(msg, delivery.received_at), key, delivery.received_at, raw,
                         delivery.recipients)

    def file(self, outcome: Outcome, key: str, now: datetime, raw: bytes, recipients: list[str]) -> Result:
        """An assessed mail (see :func:`triage.service.workers.assess`); the caller's transaction commits it."""
        msg = outcome.msg
        return self._file(outcome, key, now, raw, recipients,
                          lambda slug: find_thread(msg, slug, self.signer, self.store,
                                                   self.config.email["from_address"]))

    def process_chat(self, outcome: Outcome, key: str, ticket_id: int | None, now: datetime) -> Result:
        """An assessed chat line (the widget) takes the same path as mail; it joins the
        ticket of its conversation (``ticket_id``, None for the first line) instead of
        threading by headers, and its reply is shown in the chat instead of mailed."""
        return self._file(outcome, key, now, None, [], lambda slug: chat_thread(self.store, ticket_id))

    def _file(self, assessed: Outcome, key: str, now: datetime, raw: bytes | None, recipients: list[str],
              thread_of: Callable[[str | None], Thread]) -> Result:
        """Dedupe, thread, number, render, and record one message with its replies and relays."""
        msg = assessed.msg
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
        outcome = self.pipeline.complete(assessed, number, now)  # rendered only when it gets a reply or relay
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
            "created_at": at,
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
        written = 0  # mails put in the outbox
        capped = self.gate.check_relay_rate(msg.sender, tenant.slug, self.store, now) \
            if outcome.relay and tenant is not None else None
        if capped:  # the reply would announce a relay that does not go
            for kind in ("relay-suppressed", "reply-suppressed"):
                self.store.add_event(ticket_id, kind, [capped], "not sent", at, detail={"requester": msg.sender})
        elif outcome.reply and tenant is not None and msg.channel == "widget":
            self._chat_reply(ticket_id, outcome, thread.ticket is not None, at)
        elif outcome.reply and tenant is not None:
            written += self._reply(ticket_id, number, tenant, msg, outcome, key, automated,
                                   thread.ticket is not None, now)
        if outcome.relay and tenant is not None and not capped:
            written += self._relay(ticket_id, tenant, msg, outcome, key, now)
        # webhooks (issue 14): the portal action and ticket events, in this same transaction
        webhooks.on_filed(self.store, self.config, ticket_id, outcome.decision.actions, outcome.decision.reasons,
                          new=thread.ticket is None, reopened=(thread.ticket or {}).get("status") == "resolved"
                          and not automated, replied=bool(outcome.reply and tenant and not capped),
                          relayed=bool(outcome.relay and tenant and not capped),
                          requester=msg.sender if outcome.trust.verified else "", at=at)
        if self.hold_local:
            return Result(ticket_id, number, held=written)
        return Result(ticket_id, number, queued=written)

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
        for address in msg.recipients:
            if not self.config.is_own_address(address) and address != msg.sender and not is_system_address(address):
                self.store.add_participant(ticket_id, address, "copied", at)

    def _bounce(self, ticket_id: int, msg: Message, outcome: Outcome, recipients: list[str], now: datetime,
                at: str) -> None:
        """A hard bounce of the bot's own mail silences automatic mail to that address. The
        caller checks that it returns a Message-ID the bot signed; here only the recipients
        of the mails it returns (as the outbox sent them) may be suppressed, and only those
        the DSN names: anyone who once got an acknowledgement holds a signed Message-ID, and
        must not be able to silence a supplier of their choosing with it."""
        auto = outcome.automation
        if auto.kind != "bounce" or not auto.permanent:
            return
        if self.config.email["from_address"] not in [r.lower() for r in recipients]:
            return
        mailed: set[str] = set()
        for message_id in returned_ids(msg):
            if self.signer.verify(message_id) == ticket_id:
                mailed.update(self.store.mailed_to(ticket_id, message_id) or [])
        until = self.gate.bounce_until(now)
        for address in auto.failed_recipients:
            if self.config.is_own_address(address):
                continue
            if address not in mailed:
                self.store.add_event(ticket_id, "suppression", ["intake-bounce-not-a-recipient"], "ignored", at,
                                     detail={"address": address, "returned_to": sorted(mailed)})
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
            "raw_size": len(text.encode()), "created_at": at,
        })
        # The chat shows the short answer and the articles as links; the letter stays for the transcript.
        articles = [{"id": s.article.id, "title": s.article.title, "url": s.article.url}
                    for s in outcome.suggestions.articles]
        self.store.add_event(ticket_id, "reply", [], "shown in the widget", at, message=message,
                             detail={"letter": outcome.reply, "articles": articles})

    def mail_requester(self, ticket_id: int, tenant: Tenant, to: tuple[str, str], subject: str, body: str,
                       language: str, now: datetime) -> str | None:
        """Queue a mail the requester asked for (the widget transcript); the rule id when the loop gate refuses."""
        at = iso(now)
        refused = self.gate.check_relay(to[1], self.store, now)
        if refused:
            self.store.add_event(ticket_id, "mail-suppressed", [refused], "not sent", at, detail={"to": to[1]})
            return refused
        sender = self.sender(tenant, [], language)
        message_id = self.signer.new_id(ticket_id)
        try:
            rcpt = envelope_address(to[1])
            raw = compose(sender=sender, to=[to], subject=subject, body=body, message_id=message_id, now=now,
                          auto_submitted="auto-generated")
        except Unencodable as e:
            self.store.add_event(ticket_id, "mail-suppressed", ["outbox-unencodable-address"], str(e), at)
            return "outbox-unencodable-address"
        self.store.log_sent(base_address(to[1]), ticket_id, at)
        self.queue(ticket_id, "transcript", [rcpt], subject, message_id, raw, body, sender[1], at)
        return None

    # -- outgoing mail ------------------------------------------------------------------

    def sender(self, tenant: Tenant, recipients: list[str], language: str) -> tuple[str, str]:
        """(name, address) of mail from support: the support address the person wrote to (so
        their answer threads back), else the tenant's first one; the name in ``language``."""
        address = next((r for r in recipients if r in tenant.support_addresses), tenant.support_addresses[0])
        return self.pipeline.renderer.sender_name(language, tenant.language, tenant.name), address

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
            "raw_size": len(raw), "created_at": at,
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
        sender = self.sender(tenant, msg.recipients, outcome.cls.language)
        subject = reply_subject(msg.subject, number)
        message_id = self.signer.new_id(ticket_id)
        try:
            rcpt = envelope_address(msg.sender)
            raw = compose(sender=sender, to=[(msg.sender_name, msg.sender)], subject=subject, body=outcome.reply,
                          message_id=message_id, now=now, auto_submitted="auto-replied",
                          in_reply_to=in_reply_to, references=msg.references)
        except Unencodable as e:  # the ticket stands; an agent answers another way
            self.store.add_event(ticket_id, "reply-suppressed", ["outbox-unencodable-address"], str(e), at,
                                 detail={"to": msg.sender})
            return 0
        self.store.log_sent(base_address(msg.sender), ticket_id, at)
        self.queue(ticket_id, "reply", [rcpt], subject, message_id, raw, outcome.reply, sender[1], at)
        return 1

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
        sender = self.sender(tenant, msg.recipients, tenant.language)  # the relay is read by the company
        try:  # contacts answer the supplier directly, when the supplier's address can be written
            reply_to: tuple[str, str] | None = (msg.sender_name, envelope_address(msg.sender))
        except Unencodable:
            reply_to = None
        queued = 0
        # One mail per contact: with several in To:, a contact's reply-all would show the
        # supplier (Reply-To) the other contacts' names and addresses.
        for contact in contacts:
            message_id = self.signer.new_id(ticket_id)
            try:
                rcpt = envelope_address(contact.email)
                raw = compose(sender=sender, to=[(contact.name, contact.email)], subject=outcome.relay_subject,
                              body=outcome.relay, message_id=message_id, now=now, auto_submitted="auto-generated",
                              in_reply_to=in_reply_to, reply_to=reply_to)
            except Unencodable as e:
                self.store.add_event(ticket_id, "relay-suppressed", ["outbox-unencodable-address"], str(e), at)
                continue
            self.store.add_participant(ticket_id, contact.email, "contact", at)
            self.queue(ticket_id, "relay", [rcpt], outcome.relay_subject, message_id, raw,
                       outcome.relay, sender[1], at)
            queued += 1
        if queued:
            self.store.log_relay(base_address(msg.sender), tenant.slug, ticket_id, at)
        return queued


def _decision_detail(outcome: Outcome) -> dict[str, Any]:
    line = outcome.contract()
    return {k: line[k] for k in ("category", "intent", "requester", "trust", "language", "priority",
                                 "confidence", "evidence", "failed_recipients", "error", "articles") if k in line}
