"""The one message type every channel produces.

Email, Slack and the widget all become a :class:`Message` before anything else looks at
them, so identify/trust/classify/decide never need to know where a message came from
beyond the ``channel`` name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from email.message import EmailMessage


@dataclass(frozen=True)
class Attachment:
    """What an agent needs to know about an attachment without opening it."""

    filename: str
    content_type: str
    size: int


@dataclass
class Message:
    """An inbound message, normalised.

    ``text`` is the whole readable body; ``new_text`` is what the sender wrote this time
    (quoted history and signature removed), which is what classification reads.
    """

    channel: str  # "email", "widget", "slack" or "phone" (an agent typed it in)
    id: str  # Message-ID for email, the chat line's id otherwise
    sender: str  # lower-cased address, "" when there is none (null Return-Path bounces)
    sender_name: str = ""
    recipients: list[str] = field(default_factory=list)  # To, Cc, Delivered-To, envelope
    subject: str = ""
    text: str = ""
    new_text: str = ""
    quoted: str = ""
    signature: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    tenant_hint: str | None = None  # chat lines name their tenant
    user_hash: str = ""  # widget identity proof: HMAC of the address
    user_token: str = ""  # widget identity proof: a short-lived JWT (preferred when present)
    verified_by: str = ""  # phone tickets: the agent who checked the caller's identity
    mime: EmailMessage | None = None  # the parsed email, for header and MIME checks
    defects: list[str] = field(default_factory=list)  # what the parser had to tolerate
    error: str = ""  # set when the input could not be read as a message at all
    _raw_headers: dict[str, list[str]] | None = field(default=None, repr=False, compare=False)
    _returned: list[str] | None = field(default=None, repr=False, compare=False)

    def header(self, name: str) -> str:
        """The first raw value of an email header, "" when absent. Raw on purpose: the
        headers read this way are machine tokens (Auto-Submitted, Precedence, …), and
        ``policy.default`` would parse each one anew on every access."""
        values = self.headers(name)
        return values[0] if values else ""

    def headers(self, name: str) -> list[str]:
        """Every raw value of a header (for repeated ones such as Authentication-Results)."""
        if self._raw_headers is None:
            if self.mime is None:
                return []
            self._raw_headers = {}
            for key, value in self.mime.raw_items():
                self._raw_headers.setdefault(key.lower(), []).append(" ".join(str(value).split()))
        return self._raw_headers.get(name.lower(), [])

    def returned_headers(self) -> list[str]:
        """The headers (or whole message) a bounce returns, as text: the text/rfc822-headers
        and message/rfc822 parts. Threading and tenant lookup both read them."""
        if self._returned is not None:
            return self._returned
        texts: list[str] = []
        if self.mime is None:
            return texts
        for part in self.mime.walk():
            if part.get_content_type() not in ("text/rfc822-headers", "message/rfc822"):
                continue
            payload = part.get_payload(decode=True) if not part.is_multipart() else None
            if payload is None:
                payload = str(part.get_payload()[0]) if part.is_multipart() else str(part.get_payload())
            texts.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload))
        self._returned = texts
        return texts

    def detached(self) -> Message:
        """A copy without the parsed MIME tree, for a worker process to send to the writer
        (the tree is large to pickle): its headers and returned headers are read first, so
        threading and tenant lookup in the writer still see them."""
        self.headers("")
        self.returned_headers()
        return replace(self, mime=None)

    @property
    def domain(self) -> str:
        """The sender's mail domain, lower-cased."""
        return self.sender.rpartition("@")[2] if "@" in self.sender else ""
