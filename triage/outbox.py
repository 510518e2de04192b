"""Outbound mail: compose replies and relays, and deliver the outbox to the relay.

The outbox table is the outgoing queue. A row is composed once, with its final bytes and
Message-ID, in the same transaction as the inbound message that caused it. Delivery claims
rows as ``sending`` in a transaction, hands them to the relay with aiosmtplib, and marks
each ``sent`` only after the relay's 250. After a crash, rows still in ``sending`` go back
to the queue: only a mail that was being handed over at the instant of the crash can go
out twice, and then with the same Message-ID so the receiver can tell. Temporary failures
(4xx, connection errors) are retried with exponential backoff; a 5xx is final. Every
outcome is an event on the ticket.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib

from triage.store import Store, iso, utcnow
from triage.subjects import strip_prefixes

RULES = {
    "outbox-delivered": "the relay accepted the mail (250)",
    "outbox-retry": "a temporary failure (4xx or connection error): retried later with backoff",
    "outbox-failed-permanent": "the relay refused the mail for good (5xx)",
    "outbox-gave-up": "still failing after the last retry: the mail is marked failed",
    "outbox-recovered": "left in 'sending' by a crash: queued again with the same Message-ID",
    "outbox-recipient-refused": "the relay refused some recipients; the others got the mail",
    "outbox-held-local": "no relay_url configured: the mail stays in the outbox",
    "outbox-unencodable-address": "an address with a non-ASCII local part cannot go through the relay: not sent",
}
RunDb = Callable[..., Awaitable[Any]]


# -- composing -----------------------------------------------------------------------------

def reply_subject(subject: str, number: int) -> str:
    """``Re: [#1042] Original subject``: one Re:, the ticket tag once."""
    tag = f"[#{number}]"
    base = strip_prefixes(" ".join(subject.split())) or "Support request"
    if tag not in base:
        base = f"{tag} {base}"
    return f"Re: {base}"


def _text(name: str, value: str) -> str:
    """An unstructured header value on one logical line: RFC 2047 words unless short ASCII."""
    value = " ".join(value.split())  # no CR/LF from user input can start a new header
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


class Unencodable(ValueError):
    """An address that cannot be written in a plain (non-SMTPUTF8) mail header."""


def _address(name: str, address: str) -> str:
    """``Name <local@domain>``, the domain in IDNA; a non-ASCII local part cannot be sent
    through an ordinary relay, so it is refused by name rather than by a crash."""
    local, _, domain = address.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise Unencodable(f"cannot encode the domain of {address!r}") from None
    if not local.isascii() or any(c in address for c in ",;<>()\"\r\n"):
        raise Unencodable(f"cannot write {address!r} as one plain address")
    return formataddr((" ".join(name.split()), f"{local}@{domain}"), charset="utf-8")


def compose(*, sender: tuple[str, str], to: list[tuple[str, str]], subject: str, body: str,
            message_id: str, now: datetime, auto_submitted: str, in_reply_to: str = "",
            references: list[str] | None = None, reply_to: tuple[str, str] | None = None) -> bytes:
    """An RFC 5322 message, CRLF line ends, 7-bit clean, ready for the relay.

    ``auto_submitted`` is the RFC 3834 value (``auto-replied`` for answers, ``auto-generated``
    for relays; empty for an agent's reply, which gets neither header);
    ``X-Auto-Response-Suppress: All`` asks Exchange not to answer it either.
    Written out directly rather than through ``email.message``: its header folding costs
    more than the rest of the intake together at thousands of messages a minute.
    """
    headers = [("From", _address(*sender)),
               ("To", ",\r\n ".join(_address(name, address) for name, address in to))]
    if reply_to and reply_to[1]:
        headers.append(("Reply-To", _address(*reply_to)))
    headers += [("Subject", _text("Subject", subject)), ("Date", format_datetime(now)),
                ("Message-ID", message_id)]
    in_reply_to = in_reply_to if in_reply_to.isascii() else ""  # a non-ASCII id cannot be referenced
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    refs = [r for r in dict.fromkeys([*(references or []), in_reply_to]) if r and r.isascii()]
    if refs:
        headers.append(("References", "\r\n ".join(refs)))
    if auto_submitted:  # "" for an agent's own answer: a person wrote it (RFC 3834 "no")
        headers += [("Auto-Submitted", auto_submitted), ("X-Auto-Response-Suppress", "All")]
    headers += [("MIME-Version", "1.0"), ("Content-Type", 'text/plain; charset="utf-8"'),
                ("Content-Transfer-Encoding", "base64")]  # compact for any script, safe for any relay
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (head + "\r\n").encode("ascii") + base64.encodebytes(body.encode("utf-8")).replace(b"\n", b"\r\n")


# -- delivering ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Relay:
    """Where outbound mail goes: ``smtp://host:port`` (STARTTLS when offered) or ``smtps://``."""

    host: str
    port: int
    implicit_tls: bool
    username: str = ""
    password: str = ""

    @classmethod
    def from_config(cls, url: str, username_env: str, password_env: str) -> "Relay | None":
        """None for an empty URL: mail is then held in the outbox. Credentials come only from
        the environment, never from the URL or the configuration files."""
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"email.relay_url must be smtp://host[:port] or smtps://host[:port], not {url!r}")
        if parts.username or parts.password:
            raise ValueError("email.relay_url must not carry credentials: set them in "
                             f"{username_env} and {password_env}")
        tls = parts.scheme == "smtps"
        return cls(parts.hostname, parts.port or (465 if tls else 25), tls,
                   os.environ.get(username_env, ""), os.environ.get(password_env, ""))

    def describe(self) -> str:
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


class Temporary(Exception):
    """Try this mail again later."""


class Permanent(Exception):
    """This mail will never be accepted as it is."""


def _classify(exc: BaseException) -> Exception:
    """aiosmtplib's exceptions as Temporary or Permanent (5xx for the message itself is final)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return Permanent(text) if codes and all(c >= 500 for c in codes) else Temporary(text)
    if isinstance(exc, (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError)):
        text = f"{exc.code} {exc.message}"
        # 530/535: the relay wants (other) credentials: our configuration, not this mail, is wrong
        return Permanent(text) if exc.code >= 500 and exc.code not in (530, 535) else Temporary(text)
    return Temporary(f"{type(exc).__name__}: {exc}")


class Outbox:
    """The delivery loop. Database calls go through ``run_db`` (the store's own thread)."""

    def __init__(self, store: Store, relay: Relay | None, run_db: RunDb, *,
                 base_delay: float = 30.0, max_delay: float = 3600.0, max_attempts: int = 15,
                 batch: int = 50, timeout: float = 30.0, clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.relay = relay
        self.run_db = run_db
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.batch = batch
        self.timeout = timeout
        self.clock = clock
        self.last_error = ""
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def wake(self) -> None:
        """New rows were queued (or the service stops): look now rather than at the next poll."""
        self._wake.set()

    def backoff(self, attempts: int) -> timedelta:
        """30 s, 1 min, 2 min, … capped at an hour (attempts = failures so far, from 1)."""
        return timedelta(seconds=min(self.base_delay * 2 ** max(attempts - 1, 0), self.max_delay))

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set. Rows a crash left in ``sending`` are queued first."""
        if self.relay is None:
            return
        self._stop = stop
        await self.run_db(self._recover)
        while not stop.is_set():
            try:
                handled = await self.deliver_due()
            except Exception as e:  # the database itself failed: keep the loop alive, report it
                self.last_error = f"outbox: {type(e).__name__}: {e}"
                handled = 0
            if handled:
                continue
            self._wake.clear()
            try:
                idle = await self._idle_seconds()
            except Exception as e:  # the database failed here too: report it, pause, retry
                self.last_error = f"outbox: {type(e).__name__}: {e}"
                idle = 5.0
            try:
                await asyncio.wait_for(self._wake.wait(), idle)
            except asyncio.TimeoutError:
                pass

    async def _idle_seconds(self) -> float:
        due = await self.run_db(self.store.next_due)
        if due is None:
            return 5.0
        wait = (datetime.fromisoformat(due) - self.clock()).total_seconds()
        return min(max(wait, 0.05), 5.0)

    def _recover(self) -> None:
        rows = self.store.recover_sending()
        at = iso(self.clock())
        with self.store.transaction():
            for row in rows:
                self.store.add_event(row["ticket"], "delivery-recovered", ["outbox-recovered"], "queued", at,
                                     detail={"outbox": row["id"]})

    async def deliver_due(self) -> int:
        """One pass: claim due rows, send them over one connection. Returns rows handled."""
        assert self.relay is not None
        rows = await self.run_db(self.store.claim_due, iso(self.clock()), self.batch)
        if not rows:
            return 0
        try:
            smtp = await self._connect()
        except Exception as e:
            for row in rows:
                await self.run_db(self._retry, row, _classify(e))
            return len(rows)
        try:
            for i, row in enumerate(rows):
                if self._stop.is_set():  # shutting down: what was not handed over stays queued
                    await self.run_db(self._requeue, rows[i:])
                    break
                try:
                    errors, _ = await smtp.sendmail(row["mail_from"], json.loads(row["recipients"]), row["raw"])
                except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPSenderRefused,
                        aiosmtplib.SMTPDataError) as e:
                    await self.run_db(self._failed_or_retry, row, _classify(e))
                    continue
                except Exception as e:  # the connection broke: this row is retried, the rest re-queued
                    await self.run_db(self._retry, row, _classify(e))
                    await self.run_db(self._requeue, rows[i + 1:])
                    return len(rows)
                await self.run_db(self._sent, row, errors)
        finally:
            try:
                await smtp.quit()
            except Exception:  # already gone: nothing to tidy up
                smtp.close()
        return len(rows)

    async def _connect(self) -> aiosmtplib.SMTP:
        relay = self.relay
        assert relay is not None
        # start_tls=None: STARTTLS whenever the relay offers it; the login follows the TLS upgrade
        smtp = aiosmtplib.SMTP(hostname=relay.host, port=relay.port, use_tls=relay.implicit_tls,
                               start_tls=None, username=relay.username or None,
                               password=relay.password or None, timeout=self.timeout)
        await smtp.connect()
        return smtp

    # The methods below run in the database thread.

    def _sent(self, row: dict[str, Any], refused: dict[str, Any]) -> None:
        at = iso(self.clock())
        with self.store.transaction():
            self.store.mark_sent(row["id"], at)
            self.store.add_event(row["ticket"], "delivered", ["outbox-delivered"], "sent", at,
                                 detail={"outbox": row["id"], "message_id": row["message_id"]})
            if refused:
                self.store.add_event(row["ticket"], "delivered", ["outbox-recipient-refused"], "partial", at,
                                     detail={"outbox": row["id"],
                                             "refused": {k: str(v) for k, v in refused.items()}})

    def _failed_or_retry(self, row: dict[str, Any], error: Exception) -> None:
        if isinstance(error, Permanent):
            self._fail(row, "outbox-failed-permanent", str(error))
        else:
            self._retry(row, error)

    def _retry(self, row: dict[str, Any], error: Exception) -> None:
        if isinstance(error, Permanent):
            self._fail(row, "outbox-failed-permanent", str(error))
            return
        attempts = row["attempts"] + 1
        self.last_error = f"outbox #{row['id']}: {error}"
        if attempts >= self.max_attempts:
            self._fail(row, "outbox-gave-up", str(error))
            return
        now = self.clock()
        next_at = iso(now + self.backoff(attempts))
        with self.store.transaction():
            self.store.mark_retry(row["id"], str(error), next_at)
            self.store.add_event(row["ticket"], "delivery-retry", ["outbox-retry"], f"retry at {next_at}",
                                 iso(now), detail={"outbox": row["id"], "error": str(error),
                                                   "attempts": attempts})

    def _fail(self, row: dict[str, Any], rule: str, error: str) -> None:
        self.last_error = f"outbox #{row['id']}: {error}"
        with self.store.transaction():
            self.store.mark_failed(row["id"], error)
            self.store.add_event(row["ticket"], "delivery-failed", [rule], "failed", iso(self.clock()),
                                 detail={"outbox": row["id"], "error": error})

    def _requeue(self, rows: list[dict[str, Any]]) -> None:
        """Rows claimed but never tried go back unchanged (no attempt counted)."""
        self.store.release([row["id"] for row in rows])
