"""Is the sender who they say they are?

Email: DMARC as our own receiving MX judged it, and nothing else. Anyone can write an
``Authentication-Results`` header into a message, so exactly one header decides: the
**topmost one whose authserv-id is trusted** (``email.trusted_authserv_ids``). The MX
prepends its header above everything the message arrived with (RFC 8601 §5), so that one
is the MX's own; every header below it came with the message and is never read, whatever
it says, and headers above it with other ids (later hops) are ignored too.

- The authserv-id is compared after RFC 8601 tokenising: comments and folding whitespace
  around it are dropped and an optional version (``mx.portal.example 1;``) is allowed.
- The header is split into its results here (``;`` outside quoted strings and comments),
  and only the ``dmarc`` result is handed to authres. Other methods' properties carry
  values the sender chooses (``smtp.helo=[192.0.2.7]``, ``smtp.mailfrom=<>``, a
  backslash in the MAIL FROM local part) that authres cannot parse; they must not decide.
- A trusted header that cannot be read, whose DMARC result cannot be parsed, that holds
  no or several DMARC results, or whose DMARC result names no ``header.from``, means
  **unverified**, each with its own rule id: never "look further down", where the
  attacker's own header waits.
- Verified only for ``dmarc=pass`` with ``header.from`` equal to the From domain; a pass
  for another domain is ``trust-dmarc-other-domain``. DMARC proves the one RFC 5322 From
  header: a sender address taken from Sender or Reply-To (From without an address) or
  from one of several From headers is never verified.

Widget: an HMAC of the address keyed with the tenant's secret, compared in constant time,
or a short-lived JWT (triage/core/widget_identity.py). Slack: the workspace vouches for its users.
Phone (a ticket an agent typed in): only the agent's explicit check of the caller counts.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache

import authres

from triage.core import widget_identity
from triage.core.message import Message

RULES = {
    "trust-dmarc-pass": "the trusted MX's DMARC result is pass for the From domain: verified",
    "trust-dmarc-fail": "the trusted MX's DMARC result is fail: unverified",
    "trust-dmarc-none": "the From domain publishes no DMARC policy: unverified",
    "trust-dmarc-temperror": "the trusted MX could not evaluate DMARC (temporary error): unverified",
    "trust-dmarc-permerror": "the From domain's DMARC record is broken: unverified",
    "trust-dmarc-other-result": "a DMARC result other than pass, fail, none, temperror or permerror: unverified",
    "trust-dmarc-other-domain": "DMARC passed, but for another domain than the From address's: unverified",
    "trust-dmarc-no-header-from": "the trusted header's DMARC result names no header.from domain: unverified",
    "trust-dmarc-multiple-results": "the trusted header holds more than one DMARC result: unverified",
    "trust-authentication-results-unparseable": "the trusted host's header (or its DMARC result) cannot be "
                                                "parsed: unverified, lower headers are not read",
    "trust-no-dmarc-result": "the trusted host's header has no DMARC result: unverified",
    "trust-sender-not-from-header": "the sender address does not come from a single From header (taken from "
                                    "Sender or Reply-To, or several From headers): DMARC cannot vouch for it",
    "trust-no-trusted-authentication-results": "no Authentication-Results header from a trusted host: unverified",
    "trust-widget-hmac": "the widget identity is signed by the portal (HMAC of the address): verified",
    "trust-widget-anonymous": "a widget visitor without a signed identity: unverified",
    "trust-widget-bad-hash": "the widget identity signature does not match: unverified",
    "trust-slack-workspace": "sent by a member of the Slack workspace: verified",
    "trust-agent-verified": "a ticket an agent took by phone or in person, the caller's identity checked by the agent",
    "trust-agent-unverified": "a ticket an agent took by phone or in person, the caller's identity not checked",
}
_KNOWN_RESULTS = {"pass", "fail", "none", "temperror", "permerror"}
_AUTHSERV = re.compile(r"^([^\s;=()\"\\]+)(?:\s+\d+)?$")  # authserv-id [CFWS version]
_METHOD = re.compile(r"^([A-Za-z0-9_-]+)\s*(?:/\s*\d+\s*)?=", re.A)  # method [/ version] =


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


def split_header(value: str) -> tuple[list[str], bool]:
    """An Authentication-Results value as ``[authserv-id part, resinfo, …]``, comments
    removed, split at every ``;`` outside quoted strings and comments (RFC 8601 §2.2), and
    whether it ended well-formed (False: a comment, quoted string or escape left open; the
    parts before the open one are still complete). Iterative: a header of thousands of
    nested "(" costs a loop, not the stack."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
        elif depth:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if not depth:
                current.append(" ")  # a comment separates tokens like whitespace
            continue
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth = 1
            continue
        elif ch == ";":
            parts.append(" ".join("".join(current).split()))
            current = []
            continue
        if not depth:
            current.append(ch)
    parts.append(" ".join("".join(current).split()))
    return parts, not (depth or quoted or escaped)


def authserv_id(value: str) -> str | None:
    """The authserv-id of a header, lower-cased, after CFWS and an optional version; None
    when the header does not start with one. Read from the part before the first ``;``
    alone, so nothing the sender chose later in the header can hide whose header it is."""
    parts, complete = split_header(value)
    m = _AUTHSERV.match(parts[0]) if complete or len(parts) > 1 else None
    return m.group(1).lower() if m else None


@lru_cache(maxsize=4096)
def _dmarc_result(authserv: str, resinfo: str) -> tuple[str, str | None] | None:
    """(result, header.from or None) of one ``dmarc=…`` resinfo, parsed by authres on its
    own; None when it cannot be parsed. Memoised: a receiving host writes the same
    verdict for every mail from one domain."""
    try:
        header = authres.AuthenticationResultsHeader.parse_value(f"{authserv}; {resinfo}")
        [result] = header.results
    except Exception:  # authres raises its own SyntaxError and friends: unreadable, not a pass
        return None
    if str(result.method).lower() != "dmarc":
        return None
    header_from = next((str(p.value).lower().strip().rstrip(".") for p in result.properties
                        if str(p.type).lower() == "header" and str(p.name).lower() == "from"), None)
    return str(result.result).lower(), header_from or None


def _verdict(value: str, authserv: str, domain: str) -> Trust:
    """What the one trusted header says about the From domain."""
    parts, complete = split_header(value)
    if not complete:
        return Trust(False, "trust-authentication-results-unparseable",
                     f"the Authentication-Results header of {authserv} cannot be read")
    dmarc = [p for p in parts[1:] if (m := _METHOD.match(p)) and m.group(1).lower() == "dmarc"]
    if not dmarc:
        return Trust(False, "trust-no-dmarc-result", f"no DMARC result from {authserv}")
    if len(dmarc) > 1:
        return Trust(False, "trust-dmarc-multiple-results", f"{len(dmarc)} DMARC results from {authserv}")
    parsed = _dmarc_result(authserv, dmarc[0])
    if parsed is None:
        return Trust(False, "trust-authentication-results-unparseable",
                     f"the DMARC result of {authserv} cannot be parsed")
    result, header_from = parsed
    if header_from is None:
        return Trust(False, "trust-dmarc-no-header-from", f"DMARC {result} from {authserv} names no domain")
    if result == "pass" and domain and header_from == domain:
        return Trust(True, "trust-dmarc-pass", f"DMARC pass for {domain} by {authserv}")
    if result == "pass":
        return Trust(False, "trust-dmarc-other-domain",
                     f"DMARC pass for {header_from}, not for the From domain {domain or '(none)'}")
    rule = f"trust-dmarc-{result}" if result in _KNOWN_RESULTS else "trust-dmarc-other-result"
    return Trust(False, rule, f"DMARC {result} for {header_from}")


def _dmarc(msg: Message, trusted_ids: list[str]) -> Trust:
    trusted = {t.lower() for t in trusted_ids}
    for value in msg.headers("Authentication-Results"):  # top to bottom
        authserv = authserv_id(value)
        if authserv in trusted:
            verdict = _verdict(value, authserv, msg.domain)  # the topmost trusted one, and only it
            return verdict if not verdict.verified or _sender_is_from(msg) else Trust(
                False, "trust-sender-not-from-header",
                "the sender is not the address of a single From header: DMARC cannot vouch for it")
    return Trust(False, "trust-no-trusted-authentication-results",
                 "no Authentication-Results header from a trusted host")


def _sender_is_from(msg: Message) -> bool:
    """DMARC proves the domain of the one From header; a sender taken from Sender or
    Reply-To (no address in From), or picked among several From headers, is unproven."""
    froms = msg.headers("From")
    return len(froms) == 1 and bool(msg.sender) and msg.sender in froms[0].lower()


def assess(msg: Message, widget_secret: str, trusted_authserv_ids: list[str]) -> Trust:
    """Trust of one message on its channel."""
    if msg.channel == "slack":
        return Trust(True, "trust-slack-workspace", "sent by a member of the Slack workspace")
    if msg.channel == "phone":
        if msg.verified_by:
            return Trust(True, "trust-agent-verified", f"caller's identity checked by {msg.verified_by}")
        return Trust(False, "trust-agent-unverified", "taken by phone or in person without an identity check")
    if msg.channel == "widget":
        if msg.user_token:  # a short-lived JWT, preferred over the hash (triage/core/widget_identity.py)
            return Trust(*widget_identity.verify(widget_secret, msg.sender, msg.user_token))
        if not msg.user_hash:
            return Trust(False, "trust-widget-anonymous", "widget visitor without a signed identity")
        expected = widget_hash(widget_secret, msg.sender) if widget_secret else ""
        if expected and hmac.compare_digest(expected.encode(), msg.user_hash.strip().lower().encode()):
            return Trust(True, "trust-widget-hmac", "widget identity signed by the portal")
        return Trust(False, "trust-widget-bad-hash", "widget identity signature does not match")
    return _dmarc(msg, trusted_authserv_ids)
