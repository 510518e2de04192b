"""Machine-sent mail: out-of-office replies, bounces, newsletters. It never gets a reply.

The checks are the union of what mature helpdesks look at (Zammad, RT, OTRS, Mailman):
RFC 3834 ``Auto-Submitted``, the vendor ``X-Auto*`` headers, ``Precedence``, list headers,
null or MAILER-DAEMON return paths, system senders, DSNs (RFC 3464 ``multipart/report``, with
the failed recipients taken out, and flufl.bounce for the many non-standard bounce formats)
and out-of-office subjects and bodies in every configured language. Each check has a rule id.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from email.message import Message as MimeMessage

from flufl.bounce import all_failures

from triage import DATA
from triage.core.lexicon import Lexicon
from triage.core.message import Message
from triage.core.subjects import FORWARDED, PREFIXES

REQUEST_WEIGHT = 5.0  # cue weight of one intent that makes an out-of-office-like text a person's request
SUBJECT_ONLY_WORDS = 12  # an out-of-office subject over a longer body with none of its wording is a person
_DATA = tomllib.loads((DATA / "automated.toml").read_text("utf-8"))
_SYSTEM = set(_DATA["system_senders"])
_BOUNCE_SENDERS = set(_DATA["bounce_senders"])
_BOUNCE_SUBJECT = re.compile("|".join(_DATA["bounce_subjects"]), re.I)
_BOUNCE_OPENING = re.compile("|".join(_DATA["bounce_openings"]), re.I)
_URL = re.compile(r"\S+://\S+")
OPENING_CHARS = 600  # where delivery software's own sentences stand: first, before any quoted mail
_HEADER_FLAGS = {  # header -> (rule id, kind) when present with any value but "no"
    "x-autoreply": ("auto-header-x-autoreply", "auto_reply"),
    "x-autorespond": ("auto-header-x-autorespond", "auto_reply"),
    "x-autoreply-from": ("auto-header-x-autoreply-from", "auto_reply"),
    "x-mail-autoreply": ("auto-header-x-mail-autoreply", "auto_reply"),
    "x-loop": ("auto-header-x-loop", "auto_reply"),
    "x-failed-recipients": ("auto-header-x-failed-recipients", "bounce"),
    "x-ms-exchange-message-is-ndr": ("auto-header-exchange-ndr", "bounce"),
    "list-id": ("auto-header-list-id", "bulk"),
    "list-unsubscribe": ("auto-header-list-unsubscribe", "bulk"),
    "feedback-id": ("auto-header-feedback-id", "bulk"),
}


@dataclass
class Automation:
    """What kind of machine mail this is ("" when a human wrote it), and why."""

    kind: str = ""  # auto_reply / bounce / bulk / ""
    reasons: list[str] = field(default_factory=list)
    failed_recipients: list[str] = field(default_factory=list)
    permanent: bool = False  # a hard bounce (5.x.x): stop mailing that address for a while

    def add(self, rule: str, kind: str) -> None:
        self.reasons.append(rule)
        # a bounce outranks an auto-reply, which outranks bulk: the strongest fact wins
        order = {"": 0, "bulk": 1, "auto_reply": 2, "bounce": 3}
        if order[kind] > order[self.kind]:
            self.kind = kind


def _has(msg: Message, name: str) -> bool:
    return bool(msg.headers(name))


def _delivery_status(mime: MimeMessage) -> tuple[list[str], bool]:
    """Failed recipients of an RFC 3464 report and whether any failure is permanent."""
    failed: list[str] = []
    permanent = False
    for part in mime.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        if not blocks:  # some parsers leave the body as text
            raw = part.get_payload(decode=True) or b""
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            blocks = [dict(re.findall(r"(?im)^([\w-]+):\s*(.+)$", chunk)) for chunk in re.split(r"\n\s*\n", text)]
        for block in blocks:
            get = (lambda k, b=block: b.get(k) or b.get(k.lower()) or b.get(k.title()))
            action = str(get("Action") or "").strip().lower()
            recipient = str(get("Final-Recipient") or get("Original-Recipient") or "")
            if action not in ("failed", "delayed") or not recipient:
                continue
            address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
            if address and address not in failed:
                failed.append(address)
            if action == "failed" and str(get("Status") or "5").strip().startswith("5"):
                permanent = True
    return failed, permanent


def _flufl(mime: MimeMessage) -> tuple[list[str], bool]:
    """flufl.bounce: RFC 3464 reports (preferring Original-Recipient, the address we wrote
    to) and the odd formats of many MTAs (qmail, Exim, Yahoo, GroupWise, Exchange, …)."""
    try:
        temporary, permanent = all_failures(mime)
    except Exception:  # a detector tripping over a broken bounce must not stop triage
        return [], False
    found = [a.decode("utf-8", "replace").strip("<>").lower() for a in (*sorted(permanent), *sorted(temporary))]
    return [a for a in dict.fromkeys(found) if "@" in a], bool(permanent)


def _bounced(mime: MimeMessage) -> tuple[list[str], bool]:
    """Bounced addresses and whether any failure is permanent. flufl.bounce knows far more
    formats (116 of its 117 samples exactly, tests/test_corpus_bounces.py); the report
    parse above still reads DSNs whose delivery-status part it cannot split into blocks."""
    failed, permanent = _flufl(mime)
    if not failed:
        failed, permanent = _delivery_status(mime)
    return failed, permanent


def _header_checks(msg: Message, mime: MimeMessage, auto: Automation, local: str) -> None:
    """What the headers and the sender say: RFC 3834, vendor flags, lists, DSNs, daemons."""
    # RFC 3834: "auto-replied" answers a message (an out-of-office); "auto-generated" and the
    # rest are a system's own notifications, which the contract counts as bulk.
    submitted = msg.header("Auto-Submitted").strip().lower().partition(";")[0].strip()
    if submitted == "auto-replied":
        auto.add("auto-header-auto-submitted", "auto_reply")
    elif submitted and submitted != "no":
        auto.add("auto-header-auto-generated", "bulk")
    for name, (rule, kind) in _HEADER_FLAGS.items():
        if _has(msg, name):
            auto.add(rule, kind)
    suppress = msg.header("X-Auto-Response-Suppress").lower()
    if any(v in suppress for v in ("oof", "autoreply", "all")):
        auto.add("auto-header-x-auto-response-suppress", "auto_reply")
    precedence = (msg.header("Precedence") or msg.header("X-Precedence")).strip().lower()
    if precedence in ("bulk", "junk", "list"):
        auto.add(f"auto-header-precedence-{precedence}", "bulk")
    elif precedence == "auto_reply":
        auto.add("auto-header-precedence-auto-reply", "auto_reply")
    return_path = msg.header("Return-Path").strip()
    if return_path == "<>":
        auto.add("auto-null-return-path", "auto_reply")
    elif return_path.strip("<>").partition("@")[0].lower() in _BOUNCE_SENDERS:
        auto.add("auto-return-path-mailer-daemon", "bounce")
    if mime.get_content_type() == "multipart/report" and mime.get_param("report-type", "").lower() == "delivery-status":
        auto.add("auto-dsn-report", "bounce")
    if local in _BOUNCE_SENDERS:
        auto.add("auto-sender-mailer-daemon", "bounce")


def _content_checks(msg: Message, lexicon: Lexicon, auto: Automation) -> None:
    """Out-of-office and newsletter wording, in every configured language."""
    body = msg.new_text or msg.text
    # Out-of-office text stands at the top, newsletter footers at the bottom: one scan of
    # each end (the whole body when it is short).
    ends = body if len(body) <= 5000 else body[:2000] + "\n" + body[-3000:]
    totals: dict[str, float] = {}
    for hit in lexicon.scan(ends, "auto:"):
        totals[hit.label] = totals.get(hit.label, 0.0) + hit.weight
    out_of_office_body = totals.get("auto:auto_reply_body", 0) >= 4
    # "Out of Office: …" is the autoresponder's own subject; "RE: Out of Office: …" is a
    # person answering in that thread (back from holiday, say). Under the autoresponder's
    # own subject ("Autosvar: …") it still counts when the body reads as one, or says next to
    # nothing; a question or a longer text with no out-of-office wording is the person
    # writing again ("this is no auto-reply any more, the reset still fails").
    own_subject = (bool(lexicon.scan(msg.subject, "auto:auto_reply_subject")) and not PREFIXES.match(msg.subject)
                   and (out_of_office_body or ("?" not in body and len(body.split()) <= SUBJECT_ONLY_WORDS)))
    # A person may well write "I am on leave next week, can you…?" or "our admin is on
    # parental leave until June, please give me admin rights": an out-of-office text counts
    # only when it asks nothing, neither a question nor a request with clear wording of its own.
    asks_nothing = out_of_office_body and "?" not in body
    if totals.get("auto:person_again", 0) >= 3:
        # "Forget my auto-reply, I am back: …" is the person writing again about it.
        if own_subject or asks_nothing:
            auto.add("auto-person-again-under-out-of-office", "")
    else:
        if own_subject:
            auto.add("auto-out-of-office-subject", "auto_reply")
        if asks_nothing:
            if _request_weight(body, lexicon) >= REQUEST_WEIGHT:
                auto.add("auto-person-request-over-out-of-office", "")
            else:
                auto.add("auto-out-of-office-body", "auto_reply")
    if totals.get("auto:bulk_body", 0) >= 4:
        auto.add("auto-newsletter-body", "bulk")


def _request_weight(body: str, lexicon: Lexicon) -> float:
    """The strongest technical or account reading of the text (summed cue weights): what a
    person asking for help writes, and an autoresponder's text does not."""
    totals: dict[str, float] = {}
    for hit in lexicon.scan(body):
        if hit.label.startswith(("technical/", "account/")):
            totals[hit.label] = totals.get(hit.label, 0.0) + hit.weight
    return max(totals.values(), default=0.0)


def _bounce_checks(msg: Message, mime: MimeMessage, auto: Automation, local: str, lexicon: Lexicon) -> None:
    """A bounce subject counts with any other sign of machine mail ("This message was
    created automatically by mail delivery software" included), and bounced addresses are
    searched for in mail that looks machine-made or is titled like a bounce — flufl.bounce
    reads many formats, but a person's message quoting an error text is no bounce, and an
    out-of-office naming a colleague's address is no bounce either. Nor is a person who kept
    the bounce's subject and asks about it above the pasted bounce: with no other sign, their
    words before the delivery software's come first."""
    bounce_subject = bool(_BOUNCE_SUBJECT.search(msg.subject)) and not FORWARDED.match(msg.subject)
    if bounce_subject and (auto.kind or local in _SYSTEM or mime.get_content_type() == "multipart/report"):
        auto.add("auto-bounce-subject", "bounce")
    elif bounce_subject:  # the subject alone: the text tells a pasted bounce from a re-sent one
        text = (msg.new_text or msg.text).lstrip()
        opening = _BOUNCE_OPENING.search(text)
        before = text[:opening.start()] if opening else text  # the words above the delivery software's
        if _asks(before[:OPENING_CHARS], lexicon if opening else None):
            auto.add("auto-person-question-over-pasted-bounce", "")
            return
        if opening and opening.start() < OPENING_CHARS:
            auto.add("auto-bounce-subject-and-opening", "bounce")
    out_of_office = any(r.startswith("auto-out-of-office") for r in auto.reasons)
    if bounce_subject or auto.kind == "bounce" or (auto.kind and not out_of_office):
        failed, permanent = _bounced(mime)
        if failed:
            auto.add("auto-bounce-recipients-found", "bounce")
        auto.failed_recipients, auto.permanent = failed, permanent


def _asks(text: str, lexicon: Lexicon | None) -> bool:
    """Whether a person's words ask for something: a question, or (read with the ``lexicon``)
    a request with clear wording of its own. Only words known to be the person's are read for
    a request: a bounce's own text is full of errors and failures. A question mark in an
    address ("https://support.google.com/mail/?p=NoSuchUser") asks nothing."""
    return "?" in _URL.sub("", text) or (lexicon is not None and _request_weight(text, lexicon) >= REQUEST_WEIGHT)


def detect(msg: Message, lexicon: Lexicon) -> Automation:
    """Run every check; the result carries the rule ids that fired."""
    auto = Automation()
    local = msg.sender.partition("@")[0]
    if msg.mime is not None:
        _header_checks(msg, msg.mime, auto, local)
    _content_checks(msg, lexicon, auto)
    if msg.mime is not None:
        _bounce_checks(msg, msg.mime, auto, local, lexicon)
        if not auto.kind and local in _SYSTEM:
            auto.add("auto-system-sender", "auto_reply")
    return auto
