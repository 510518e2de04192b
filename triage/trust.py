"""Is the sender who they say they are?

Email: only an ``Authentication-Results`` header whose authserv-id is one of our own
receiving hosts counts, and only its ``dmarc=pass`` for the very domain of the From
address. Anyone can write such a header into a message, so foreign ones are ignored and
only the topmost trusted one is read (the receiving MX prepends it above anything the
sender forged; RFC 8601 §5). Widget: an HMAC of the address keyed with the tenant's
secret, compared in constant time. Slack: the workspace vouches for its users. Phone (a
ticket an agent typed in): only the agent's explicit check of the caller counts.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

import authres

from triage.message import Message


@dataclass(frozen=True)
class Trust:
    verified: bool
    reason: str  # rule id for the ticket's reasons
    evidence: str  # human-readable, shown to agents and in relays

    @property
    def label(self) -> str:
        return "verified" if self.verified else "unverified"


def widget_hash(secret: str, email: str) -> str:
    """What the portal's backend computes for the widget: HMAC-SHA256(secret, email)."""
    return hmac.new(secret.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=4096)
def _parse(value: str) -> authres.AuthenticationResultsHeader | None:
    """Parsed Authentication-Results, memoised: a receiving host writes the same verdict for
    every mail from one domain, and parsing it is a good part of triaging a message."""
    try:
        return authres.AuthenticationResultsHeader.parse_value(" ".join(value.split()))
    except Exception:
        return None


def _dmarc(msg: Message, trusted_ids: list[str]) -> Trust:
    domain = msg.domain
    trusted = {t.lower() for t in trusted_ids}
    for value in msg.headers("Authentication-Results"):
        if value.split(";", 1)[0].strip().lower() not in trusted:
            continue  # someone else's verdict: not evidence, and not worth parsing
        header = _parse(value)
        if header is None:  # unparseable headers are not evidence of anything
            continue
        if str(header.authserv_id).lower() not in trusted:
            continue
        for result in header.results:
            if result.method != "dmarc":
                continue
            header_from = next((str(p.value).lower() for p in result.properties
                                if p.type == "header" and p.name == "from"), domain)
            if result.result == "pass" and domain and header_from == domain:
                return Trust(True, "trust-dmarc-pass", f"DMARC pass for {domain} by {header.authserv_id}")
            return Trust(False, f"trust-dmarc-{result.result}", f"DMARC {result.result} for {header_from}")
        return Trust(False, "trust-no-dmarc-result", f"no DMARC result from {header.authserv_id}")
    return Trust(False, "trust-no-trusted-authentication-results",
                 "no Authentication-Results header from a trusted host")


def assess(msg: Message, widget_secret: str, trusted_authserv_ids: list[str]) -> Trust:
    """Trust of one message on its channel."""
    if msg.channel == "slack":
        return Trust(True, "trust-slack-workspace", "sent by a member of the Slack workspace")
    if msg.channel == "phone":
        if msg.verified_by:
            return Trust(True, "trust-agent-verified", f"caller's identity checked by {msg.verified_by}")
        return Trust(False, "trust-agent-unverified", "taken by phone or in person without an identity check")
    if msg.channel == "widget":
        if not msg.user_hash:
            return Trust(False, "trust-widget-anonymous", "widget visitor without a signed identity")
        expected = widget_hash(widget_secret, msg.sender) if widget_secret else ""
        if expected and hmac.compare_digest(expected.encode(), msg.user_hash.strip().lower().encode()):
            return Trust(True, "trust-widget-hmac", "widget identity signed by the portal")
        return Trust(False, "trust-widget-bad-hash", "widget identity signature does not match")
    return _dmarc(msg, trusted_authserv_ids)
