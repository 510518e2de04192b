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
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime, formataddr
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import idna

from triage.core.subjects import strip_prefixes
from triage.service.logs import event, redact
from triage.store import Store, iso, utcnow

RULES = {
    "outbox-delivered": "the relay accepted the mail (250)",
    "outbox-retry": "a temporary failure (4xx or connection error): retried later with backoff",
    "outbox-failed-permanent": "the relay refused the mail for good (5xx)",
    "outbox-gave-up": "still failing after the last retry: the mail is marked failed",
    "outbox-recovered": "left in 'sending' by a crash: queued again with the same Message-ID",
    "outbox-recipient-refused": "the relay refused some recipients; the others got the mail",
    "outbox-held-local": "no relay_url configured: the mail stays in the outbox",
    "outbox-unencodable-address": "an address that cannot be sent to (not one plain address, a domain that is "
                                  "no host name, a non-ASCII local part and a relay without SMTPUTF8): not sent",
}
RunDb = Callable[..., Awaitable[Any]]
log = logging.getLogger(__name__)


# -- composing -----------------------------------------------------------------------------

NAME_MAX = 64  # characters of a display name the bot writes; longer ones end in "…"
SUBJECT_MAX = 200  # characters of a subject the bot writes
LINE = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters (and MUST be at most 998)
_WORD_MAX = 75  # RFC 2047 §2: an encoded-word is at most 75 characters
_WORD_OVERHEAD = len("=?utf-8?b??=")
_MSG_ID_MAX = 250  # a longer msg-id cannot be folded into a legal line: it is not referenced
_REFERENCES_MAX = 20  # the last references kept, as RFC 5322 §3.6.4 allows trimming
_ATEXT_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def reply_subject(subject: str, number: int) -> str:
    """``Re: [#1042] Original subject``: one Re:, the ticket tag once."""
    tag = f"[#{number}]"
    base = strip_prefixes(" ".join(subject.split())) or "Support request"
    if tag not in base:
        base = f"{tag} {base}"
    return f"Re: {base}"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters: cut at a word when one ends near
    the limit, then "…"."""
    text = " ".join(text.split())  # no CR/LF from user input can start a new header
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


def _words(name: str, value: str) -> str:
    """An unstructured value as RFC 2047 ``B`` encoded-words of at most 75 characters, one
    per line, each line within 78 columns (the header name counted on the first), split
    only between characters, never inside a UTF-8 sequence. Decoders join adjacent words
    and drop the folding between them (RFC 2047 §6.2), so spaces travel inside the words.
    Not ``email.header.Header``: it measures every character in both encodings to pick the
    shorter one, which cost more than all the rest of filing a mail."""
    words: list[str] = []
    room = min(_WORD_MAX, LINE - len(name) - 2)  # the first line also holds "Name: "
    start = size = 0
    for i, char in enumerate(value):
        width = len(char.encode("utf-8"))
        if i > start and _WORD_OVERHEAD + 4 * -(-(size + width) // 3) > room:
            words.append(_word(value[start:i]))
            start, size, room = i, 0, _WORD_MAX  # continuation lines: " " + word
        size += width
    words.append(_word(value[start:]))
    return "\r\n ".join(words)


def _word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


def _text(name: str, value: str) -> str:
    """An unstructured header value: as it is when short ASCII, else folded encoded-words."""
    value = shorten(value, SUBJECT_MAX)
    if value.isascii() and len(name) + 2 + len(value) <= LINE:
        return value
    return _words(name, value)


class Unencodable(ValueError):
    """An address the bot cannot send to as written (the mail is not sent; an agent answers another way)."""


def envelope_address(address: str) -> str:
    """The address as it goes into RCPT TO and the header: the domain in IDNA (IDNA 2008,
    the ``idna`` package), the local part checked. A non-ASCII local part is kept (it needs
    a relay that offers SMTPUTF8, checked when sending); anything that is not one plain
    address (spaces, quotes, brackets, several @, over-long parts) is refused by name
    here rather than by a crash in the send path."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in ',;<>()[]"\\@' or ord(c) < 32
                                                  for c in local + domain):
        raise Unencodable(f"{address!r} is not one plain address")
    domain = domain.rstrip(".").lower()
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise Unencodable(f"cannot encode the domain of {address!r}") from None
    if len(domain) > 253 or not all(_LABEL.match(label) for label in domain.split(".")):
        raise Unencodable(f"the domain of {address!r} is not a host name")
    if local.isascii() and not (_ATEXT_LOCAL.match(local) and ".." not in local
                                and not local.startswith(".") and not local.endswith(".")):
        raise Unencodable(f"the local part of {address!r} cannot be written without quoting")
    if len(local.encode("utf-8")) > 64 or len(local) + 1 + len(domain) > 254:
        raise Unencodable(f"{address!r} is longer than SMTP allows")
    return f"{local}@{domain}"


def needs_smtputf8(address: str) -> bool:
    """A non-ASCII local part can only be sent where the relay offers SMTPUTF8 (RFC 6531)."""
    return not address.isascii()


def _address(header: str, name: str, address: str) -> str:
    """``Name <local@domain>`` folded to 78 columns: the name shortened to NAME_MAX
    characters, encoded-words for a non-ASCII one, the address on a line of its own when
    the name leaves no room (folding white space before "<" is allowed, RFC 5322 §3.4)."""
    addr = envelope_address(address)
    name = shorten(name, NAME_MAX)
    if not name:
        return addr
    phrase = formataddr((name, "x@x"))[:-len(" <x@x>")] if name.isascii() else _words(header, name)
    last = phrase.rsplit("\r\n", 1)[-1]
    start = len(header) + 2 if "\r\n" not in phrase else 0
    fold = " " if start + len(last) + len(addr) + 3 <= LINE else "\r\n "
    return f"{phrase}{fold}<{addr}>"


def _msg_ids(ids: list[str]) -> list[str]:
    """Message-IDs that can be written on a legal line (ASCII, bounded), last ones kept."""
    usable = [i for i in dict.fromkeys(ids) if i and i.isascii() and len(i) <= _MSG_ID_MAX]
    return usable[-_REFERENCES_MAX:]


def compose(*, sender: tuple[str, str], to: list[tuple[str, str]], subject: str, body: str,
            message_id: str, now: datetime, auto_submitted: str, in_reply_to: str = "",
            references: list[str] | None = None, reply_to: tuple[str, str] | None = None) -> bytes:
    """An RFC 5322 message, CRLF line ends, every header line folded to 78 columns, ready
    for the relay (7-bit clean unless an address has a non-ASCII local part: RFC 6532).

    ``auto_submitted`` is the RFC 3834 value (``auto-replied`` for answers, ``auto-generated``
    for relays; empty for an agent's reply, which gets neither header);
    ``X-Auto-Response-Suppress: All`` asks Exchange not to answer it either.
    Written out directly rather than through ``email.message``: its header folding costs
    more than the rest of the intake together at thousands of messages a minute.
    Raises Unencodable for an address that cannot be sent to.
    """
    headers = [("From", _address("From", *sender)),
               ("To", ",\r\n ".join(_address("To", name, address) for name, address in to))]
    if reply_to and reply_to[1]:
        headers.append(("Reply-To", _address("Reply-To", *reply_to)))
    headers += [("Subject", _text("Subject", subject)), ("Date", format_datetime(now)),
                ("Message-ID", message_id)]
    in_reply_to = (_msg_ids([in_reply_to]) or [""])[0]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    refs = _msg_ids([*(references or []), in_reply_to])
    if refs:
        headers.append(("References", "\r\n ".join(refs)))
    if auto_submitted:  # "" for an agent's own answer: a person wrote it (RFC 3834 "no")
        headers += [("Auto-Submitted", auto_submitted), ("X-Auto-Response-Suppress", "All")]
    headers += [("MIME-Version", "1.0"), ("Content-Type", 'text/plain; charset="utf-8"'),
                ("Content-Transfer-Encoding", "base64")]  # compact for any script, safe for any relay
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (head + "\r\n").encode("utf-8") + base64.encodebytes(body.encode("utf-8")).replace(b"\n", b"\r\n")


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
                recipients = json.loads(row["recipients"])
                utf8 = any(needs_smtputf8(r) for r in recipients) or not row["raw"].isascii()
                if utf8 and not smtp.supports_extension("smtputf8"):
                    await self.run_db(self._fail, row, "outbox-unencodable-address",
                                      "a non-ASCII address needs SMTPUTF8, which the relay does not offer")
                    continue
                try:
                    errors, _ = await smtp.sendmail(row["mail_from"], recipients, row["raw"],
                                                    mail_options=["SMTPUTF8"] if utf8 else [])
                except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPSenderRefused,
                        aiosmtplib.SMTPDataError) as e:
                    await self.run_db(self._failed_or_retry, row, _classify(e))
                    continue
                except (UnicodeError, ValueError) as e:  # this row cannot be written: final, the rest go on
                    await self.run_db(self._fail, row, "outbox-unencodable-address", f"{type(e).__name__}: {e}")
                    await self._reset(smtp)
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

    @staticmethod
    async def _reset(smtp: aiosmtplib.SMTP) -> None:
        """End a transaction a row left half-written (MAIL sent, RCPT failed to encode), so
        the next row starts clean; a broken connection shows on the next row instead."""
        try:
            await smtp.rset()
        except aiosmtplib.SMTPException:
            pass

    async def _connect(self) -> aiosmtplib.SMTP:
        relay = self.relay
        assert relay is not None
        # start_tls=None: STARTTLS whenever the relay offers it; the login follows the TLS upgrade
        smtp = aiosmtplib.SMTP(hostname=relay.host, port=relay.port, use_tls=relay.implicit_tls,
                               start_tls=None, username=relay.username or None,
                               password=relay.password or None, timeout=self.timeout)
        await smtp.connect()
        if smtp.is_ehlo_or_helo_needed:  # the extensions (SMTPUTF8) are known before the first row
            await smtp.ehlo()
        return smtp

    # The methods below run in the database thread.

    def _sent(self, row: dict[str, Any], refused: dict[str, Any]) -> None:
        at = iso(self.clock())
        event(log, logging.INFO, "mail delivered", outbox=row["id"], ticket=row["ticket"], kind=row["kind"],
              to=",".join(redact(a) for a in json.loads(row["recipients"])), rule="outbox-delivered",
              refused=",".join(redact(a) for a in refused) or None)
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
        event(log, logging.WARNING, "mail delivery failed, will retry", outbox=row["id"], ticket=row["ticket"],
              rule="outbox-retry", attempts=attempts, retry_at=next_at, error=str(error))
        with self.store.transaction():
            self.store.mark_retry(row["id"], str(error), next_at)
            self.store.add_event(row["ticket"], "delivery-retry", ["outbox-retry"], f"retry at {next_at}",
                                 iso(now), detail={"outbox": row["id"], "error": str(error),
                                                   "attempts": attempts})

    def _fail(self, row: dict[str, Any], rule: str, error: str) -> None:
        self.last_error = f"outbox #{row['id']}: {error}"
        event(log, logging.ERROR, "mail not delivered", outbox=row["id"], ticket=row["ticket"], rule=rule,
              error=error)
        with self.store.transaction():
            self.store.mark_failed(row["id"], error)
            self.store.add_event(row["ticket"], "delivery-failed", [rule], "failed", iso(self.clock()),
                                 detail={"outbox": row["id"], "error": error})

    def _requeue(self, rows: list[dict[str, Any]]) -> None:
        """Rows claimed but never tried go back unchanged (no attempt counted)."""
        self.store.release([row["id"] for row in rows])
