"""The SMTP adapter: an aiosmtpd handler that turns an SMTP transaction into one call.

Recipients are checked at RCPT time (550 for anything that is not ours: never an open
relay and no backscatter later), the size limit is aiosmtpd's ``data_size_limit`` (552),
and DATA is answered 250 only when the service says the message is committed. Anything
going wrong there is a 451: the sending MTA keeps the mail and tries again.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)


class Accepted(Protocol):
    """What the service says about a committed delivery."""

    number: int | None
    duplicate: bool


Deliver = Callable[[bytes, str, list[str]], Awaitable[Accepted]]


class SmtpHandler:
    """``accepts(address)`` says whether we receive mail for an address; ``deliver`` commits a mail."""

    def __init__(self, accepts: Callable[[str], bool], deliver: Deliver):
        self.accepts = accepts
        self.deliver = deliver

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not self.accepts(address):
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            result = await self.deliver(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception as e:  # the service could not commit it: the sender must retry
            log.warning("delivery failed: %s: %s", type(e).__name__, e)
            return "451 4.3.0 Temporary failure, please try again later"
        if result.duplicate:
            return "250 2.0.0 OK: already received"
        return f"250 2.0.0 OK: ticket #{result.number}"


def smtp_factory(handler: SmtpHandler, *, hostname: str, size_limit: int,
                 sessions: set[Any]) -> Callable[[], SMTP]:
    """A protocol factory for ``loop.create_server``; every session is remembered so a clean
    shutdown can close the connections it still has."""
    def make() -> SMTP:
        protocol = _TrackedSMTP(handler, data_size_limit=size_limit, enable_SMTPUTF8=True,
                                hostname=hostname, ident="triage")
        protocol.sessions = sessions
        return protocol
    return make


class _TrackedSMTP(SMTP):
    sessions: set[Any]

    def connection_made(self, transport: Any) -> None:
        self.sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sessions.discard(self)
        super().connection_lost(exc)
