"""Which ticket an inbound message belongs to, and Message-IDs that cannot be forged.

Helpdesks are hijacked through threading: anyone who knows (or guesses) a ticket number
can put ``[#1042]`` in a subject and read the agents' next answer. So a subject tag joins
a ticket only when the sender already takes part in it, and a reference joins only when it
names a Message-ID the bot itself signed (``<t{ticket}.{random}.{hmac8}@{domain}>``, an
HMAC over the ticket id and a random part). Forwarded and re-sent mail keeps the headers of
the original conversation, so it joins only for a participant. Every outcome has a rule id
that the service stores in the ticket's events.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from triage.core.message import Message
from triage.core.subjects import FORWARDED

RULES = {
    "thread-new-ticket": "no usable ticket tag or signed reference: the message opens a new ticket",
    "thread-signed-reference": "In-Reply-To/References names a Message-ID the bot signed for this ticket",
    "thread-signed-reference-new-participant": "a signed reference from a new address joins and adds it to the ticket",
    "thread-bounced-message": "a bounce to the bot carries a signed Message-ID of the mail it returns",
    "thread-reference-bad-signature": "a bot-style Message-ID whose signature does not verify is ignored",
    "thread-reference-other-tenant": "a signed reference to another tenant's ticket is ignored",
    "thread-subject-tag": "the subject carries [#N] and the sender is a participant of that ticket",
    "thread-tag-not-participant": "a [#N] tag from someone who is not a participant does not join (hijack)",
    "thread-forward-not-joined": "forwarded or re-sent mail from a non-participant opens a new ticket",
    "thread-closed-new-ticket": "a closed ticket is not reopened: the message opens a new ticket",
    "thread-widget-conversation": "a later line of a widget conversation joins the conversation's ticket",
}

_BOT_ID = re.compile(r"^<t(\d+)\.([0-9a-f]{12})\.([0-9a-f]{8})@([^<>\s]+)>$")
_TAG = re.compile(r"\[#(\d{1,9})\]")
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
SETTING_NAME = "message_id_signing_key"


def signing_key(env_name: str, fallback: "KeyStore") -> bytes:
    """The key from the environment variable the configuration names; for the demo, a random
    key kept in the database (anyone who can read the database could then forge references)."""
    value = os.environ.get(env_name, "") if env_name else ""
    return value.encode("utf-8") if value else fallback.random_key(SETTING_NAME)


class KeyStore(Protocol):
    def random_key(self, name: str) -> bytes: ...


class Signer:
    """Makes and checks the bot's own Message-IDs."""

    def __init__(self, key: bytes, domain: str):
        self.key = key
        self.domain = domain

    def _mac(self, ticket: int, nonce: str) -> str:
        return hmac.new(self.key, f"t{ticket}.{nonce}".encode(), hashlib.sha256).hexdigest()[:8]

    def new_id(self, ticket: int) -> str:
        nonce = secrets.token_hex(6)
        return f"<t{ticket}.{nonce}.{self._mac(ticket, nonce)}@{self.domain}>"

    def looks_like_ours(self, message_id: str) -> bool:
        return bool(_BOT_ID.match(message_id))

    def verify(self, message_id: str) -> int | None:
        """The ticket id a Message-ID was signed for, or None when it is not genuinely ours."""
        m = _BOT_ID.match(message_id)
        if not m:
            return None
        ticket, nonce, mac, _domain = m.groups()
        return int(ticket) if hmac.compare_digest(mac, self._mac(int(ticket), nonce)) else None


class Tickets(Protocol):
    """What threading needs from the store."""

    def ticket(self, ticket_id: int) -> dict[str, Any] | None: ...
    def ticket_by_number(self, tenant: str | None, number: int) -> dict[str, Any] | None: ...
    def is_participant(self, ticket_id: int, address: str) -> bool: ...


@dataclass
class Thread:
    """The threading decision: an existing ticket row to join, or None for a new ticket."""

    ticket: dict[str, Any] | None
    rules: list[str] = field(default_factory=list)
    add_participant: bool = False  # the sender joins the ticket's participants


def chat_thread(tickets: Tickets, ticket_id: int | None) -> Thread:
    """A widget line's ticket: its conversation's, unless there is none yet or it was closed
    (then a new one). Chat lines have no headers to thread by: the conversation decides."""
    row = tickets.ticket(ticket_id) if ticket_id is not None else None
    if row is None:
        return Thread(None, ["thread-new-ticket"])
    if row["status"] == "closed":
        return Thread(None, ["thread-closed-new-ticket", "thread-new-ticket"])
    return Thread(row, ["thread-widget-conversation"])


def is_forward(msg: Message) -> bool:
    """Forwarded (Fwd:/WG:/VB: …) or re-sent (Resent-* headers): the thread headers are not the sender's own."""
    return bool(FORWARDED.match(msg.subject)) or bool(msg.header("Resent-Message-ID") or msg.header("Resent-From"))


def returned_ids(msg: Message) -> list[str]:
    """Message-IDs in the returned headers or message of a bounce."""
    found: list[str] = []
    for text in msg.returned_headers():
        for line in re.findall(r"(?im)^message-id:\s*(.+)$", text):
            found.extend(_MSGID.findall(line))
    return found


def find_thread(msg: Message, tenant: str | None, signer: Signer, tickets: Tickets,
                bot_address: str) -> Thread:
    """Decide which ticket ``msg`` joins. ``tenant`` is the slug identify() found (None: none)."""
    rules: list[str] = []
    forwarded = is_forward(msg)
    sender = msg.sender

    def joinable(row: dict[str, Any] | None) -> bool:
        if row is not None and row["status"] == "closed":
            rules.append("thread-closed-new-ticket")
            return False
        return row is not None

    references = [msg.in_reply_to, *reversed(msg.references)] if msg.in_reply_to else list(reversed(msg.references))
    bounced = returned_ids(msg) if bot_address in msg.recipients else []
    for ref, rule in [(r, "thread-signed-reference") for r in references] + \
                     [(r, "thread-bounced-message") for r in bounced]:
        if not signer.looks_like_ours(ref):
            continue
        ticket_id = signer.verify(ref)
        if ticket_id is None:
            rules.append("thread-reference-bad-signature")
            continue
        row = tickets.ticket(ticket_id)
        if row is None:
            continue
        if tenant is not None and row["tenant"] != tenant:
            rules.append("thread-reference-other-tenant")
            continue
        participant = bool(sender) and tickets.is_participant(ticket_id, sender)
        if rule == "thread-signed-reference" and not participant:
            if forwarded:
                rules.append("thread-forward-not-joined")
                continue
            if sender and joinable(row):
                return Thread(row, rules + ["thread-signed-reference-new-participant"], add_participant=True)
            continue
        if joinable(row):
            return Thread(row, rules + [rule])
    for number in _TAG.findall(msg.subject):
        row = tickets.ticket_by_number(tenant, int(number))
        if row is None:
            continue
        if not sender or not tickets.is_participant(row["id"], sender):
            rules.append("thread-forward-not-joined" if forwarded else "thread-tag-not-participant")
            continue
        if joinable(row):
            return Thread(row, rules + ["thread-subject-tag"])
    return Thread(None, rules + ["thread-new-ticket"])
