"""The SMTP adapter: an aiosmtpd handler that turns an SMTP transaction into one call.

Recipients are checked at RCPT time (550 for anything that is not ours: never an open
relay and no backscatter later), the size limit is aiosmtpd's ``data_size_limit`` (552),
and DATA is answered 250 only when the service says the message is committed to its
inbound queue. A full queue is ``451 4.3.2`` (at MAIL FROM already, so the body is not
even sent; RFC 3463: system not accepting network messages); anything else going wrong
is a 451 too: the sending MTA keeps the mail and tries again. After a 250 the mail is
ours: nothing that happens later is the sender's problem.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

from triage.service.logs import event, redact

log = logging.getLogger(__name__)


BUSY = "451 4.3.2 Too much mail waiting to be processed, please try again later"


class QueueFull(Exception):
    """The service's queue holds more than it may: answer 451 4.3.2 until it drains."""


class Accepted(Protocol):
    """What the service says about a committed delivery."""

    queue_id: int


Deliver = Callable[[bytes, str, list[str]], Awaitable[Accepted]]


class SmtpHandler:
    """``accepts(address)`` says whether we receive mail for an address; ``deliver`` commits a
    mail; ``full()`` says the queue is over its limit.

    ``coming`` holds the sessions that began a transaction (MAIL FROM answered 250) whose
    mail has not reached ``deliver`` yet: the service's group commit waits a moment for
    them, so that concurrent senders share one fsync instead of queueing behind each
    other's (PostgreSQL's ``commit_delay`` with ``commit_siblings``)."""

    def __init__(self, accepts: Callable[[str], bool], deliver: Deliver, full: Callable[[], bool]):
        self.accepts = accepts
        self.deliver = deliver
        self.full = full
        self.coming: set[Session] = set()

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.full():
            event(log, logging.WARNING, "mail refused", code=451, reason="queue full", peer=_peer(session))
            return BUSY
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.coming.add(session)
        return "250 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.coming.discard(session)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.accepts(address):
            event(log, logging.INFO, "mail refused", code=550, reason="no such mailbox", to=redact(address),
                  peer=_peer(session))
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.coming.discard(session)
        try:
            result = await self.deliver(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except QueueFull:
            event(log, logging.WARNING, "mail refused", code=451, reason="queue full", peer=_peer(session))
            return BUSY
        except Exception as e:  # the service could not commit it: the sender must retry
            event(log, logging.ERROR, "mail refused", code=451, reason=f"{type(e).__name__}: {e}", peer=_peer(session))
            return "451 4.3.0 Temporary failure, please try again later"
        event(log, logging.INFO, "mail accepted", queue_id=result.queue_id, size=len(raw),
              sender=redact(envelope.mail_from or ""), peer=_peer(session))
        return f"250 2.0.0 OK: queued as {result.queue_id}"


def _peer(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer or "-")


def smtp_factory(handler: SmtpHandler, *, hostname: str, size_limit: int,
                 sessions: set[Any]) -> Callable[[], SMTP]:
    """A protocol factory for ``loop.create_server``; every session is remembered so a clean
    shutdown can close the connections it still has."""
    def make() -> SMTP:
        protocol = _TrackedSMTP(handler, data_size_limit=size_limit, enable_SMTPUTF8=True,
                                hostname=hostname, ident="triage")
        protocol.sessions = sessions
        protocol.coming = handler.coming
        return protocol
    return make


class _TrackedSMTP(SMTP):
    sessions: set[Any]
    coming: set[Session]

    def connection_made(self, transport: Any) -> None:
        self.sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sessions.discard(self)
        self.coming.discard(self.session)  # type: ignore[arg-type]  # a transaction cut off
        super().connection_lost(exc)
