"""Raw RFC 5322 bytes and chat lines become :class:`~triage.core.message.Message`.

Real mail is broken in every way a parser can imagine (raw 8-bit headers in Shift_JIS or
GBK, charsets Python has never heard of, encoded-words that lie about their charset, junk
before the headers, header continuations without indentation, missing boundaries). The
rule here is: tolerate, record the defect, and always return a Message — an unreadable
mail still becomes a ticket with an ``error`` so nothing is silently dropped.

The stdlib parser splits the message; headers that matter to triage (From, To, Subject, …)
are decoded here from their raw text rather than by the header registry, because the
registry can only apply a declared charset, drops the display names kept in comments
(``addr (Name)``) and keeps the space between adjacent encoded-words that RFC 2047 says to
drop. Measured on Zammad's expected subjects and senders (tests/test_corpus_zammad.py).
"""
from __future__ import annotations

import base64
import binascii
import codecs
import re
import tomllib
import unicodedata
from collections import Counter
from email import policy
from email.message import EmailMessage
from email.message import Message as LegacyMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses
from functools import lru_cache

from inscriptis import get_text

from triage import DATA
from triage.core.message import Attachment, Message
from triage.core.quotes import split_reply


class _MemoPolicy(EmailPolicy):
    """``policy.default`` with its parsed header values memoised.

    The default policy parses a header anew on every access (``get_content_type`` alone
    re-parses Content-Type several times per part, during parsing and after), which made
    header parsing most of the cost of triage. Parsed headers are immutable strings, so
    equal raw values can share one parse.
    """

    def header_fetch_parse(self, name: str, value: object) -> object:
        if hasattr(value, "name") or not isinstance(value, str):
            return super().header_fetch_parse(name, value)
        return _fetch_parse(name, value)


@lru_cache(maxsize=8192)
def _fetch_parse(name: str, value: str) -> object:
    return policy.default.header_fetch_parse(name, value)


_PARSER = BytesParser(policy=_MemoPolicy())
_HEADER_PARSER = BytesHeaderParser(policy=_MemoPolicy())
_ERROR_TEXT = 100_000  # bytes of an unparseable body kept as its text
_MAX_DEPTH = 64  # MIME levels; real mail nests a handful, forwarded bounces a dozen
_MIME_LINE = re.compile(rb"^(?:--\S*|content-[\w-]+:.*|mime-version:.*|\s*)$", re.I)
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")  # RFC 5322 field name, then a colon
_MSGID = re.compile(r"<[^<>\s]+>")
# RFC 2047 encoded-word. The text may hold whitespace: some mailers fold inside a word
# (Zammad mail018); it may not hold "?", so an address-like "=?x?q?a?q?b?=" is no word.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_WORD = re.compile(r"[^\W\d_]{2,}")
_SCORE_SAMPLE = 20_000  # characters judged per candidate decoding: enough, and bounded
_DECLARED_BONUS = 0.15  # per byte: a declared charset wins a near tie with a guess

_CHARSETS = tomllib.loads((DATA / "charsets.toml").read_text("utf-8"))
_LABELS: dict[str, str] = _CHARSETS["labels"]
_SUPERSETS: dict[str, str] = _CHARSETS["supersets"]
_GUESS: dict[str, frozenset[str]] = {name: frozenset(scripts) for name, scripts in _CHARSETS["guess"].items()}
_CJK_SCRIPTS = frozenset({"han", "kana", "hangul"})
# Punctuation and symbols ordinary text is full of, in any single-byte charset.
_COMMON_SYMBOLS = frozenset("«»„“”‘’‚–—…€°§©®±×·•¡¿£¥¢\u00a0")


@lru_cache(maxsize=256)
def resolve_charset(label: str | None) -> str | None:
    """The Python codec for a declared charset label, or None when there is none.

    Applies the alias table, repairs prefix and punctuation variants ("x-gbk",
    "iso-gb2312", "cp-1251", "windows-874") and upgrades to the superset senders really use.
    """
    if not label or not label.isascii():  # raw 8-bit bytes in a charset name: no charset
        return None
    name = label.strip().strip("\"'").lower().split("*", 1)[0]  # RFC 2231 "utf-8*en"
    variants = [name, _LABELS.get(name, "")]
    for prefix in ("x-", "iso-", "cs"):
        if name.startswith(prefix):
            variants.append(name[len(prefix):])
    variants.append(re.sub(r"^(?:cp|windows)[-_]?(\d+)$", r"cp\1", name))
    for variant in filter(None, variants):
        try:
            codec = codecs.lookup(_LABELS.get(variant, variant)).name
            b"".decode(codec)  # "base64", "rot13" and "undefined" are codecs but no charsets
        except (LookupError, ValueError):  # ValueError: a NUL inside the name, or "undefined"
            continue
        return _SUPERSETS.get(codec, codec)
    return None


def _decode(data: bytes, codec: str) -> str | None:
    """``data`` decoded strictly, None when it is not valid in ``codec`` (UnicodeError, not
    only UnicodeDecodeError: "idna" and friends raise the parent class)."""
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        return None


def _script(ch: str) -> str:
    """The writing system of a non-ASCII letter (coarse: what charset confusions produce)."""
    o = ord(ch)
    if 0x0400 <= o <= 0x052F:
        return "cyrillic"
    if 0x0370 <= o <= 0x03FF:
        return "greek"
    if o < 0x0250 or 0x1E00 <= o <= 0x1EFF:
        return "latin"
    if 0x3040 <= o <= 0x30FF:
        return "kana"
    if 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF:
        return "han"
    if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    return "other"


def _in_first_level(ch: str, codec: str, first: int, last: int) -> bool:
    """Whether ``ch`` is among a CJK standard's frequent characters (its first-level rows)."""
    try:
        data = ch.encode(codec)
    except UnicodeEncodeError:
        return False
    return len(data) == 2 and first <= data[0] <= last


@lru_cache(maxsize=65_536)
def _char_score(ch: str, scripts: frozenset[str] | None) -> float:
    """How normal one non-ASCII character is in text of a codec written in ``scripts``.

    Scores are per byte the character usually takes, so a two-byte CJK decoding and a
    one-byte Cyrillic decoding of the same bytes compare fairly. A rare ideograph, a
    control character or a box-drawing piece is what a wrong charset produces.
    """
    category = unicodedata.category(ch)
    if category.startswith("L"):
        script = _script(ch)
        native = scripts is None or script in scripts
        if script == "han":
            common = (_in_first_level(ch, "gb2312", 0xB0, 0xD7) or _in_first_level(ch, "shift_jis", 0x88, 0x98)
                      or _in_first_level(ch, "big5", 0xA4, 0xC6))
            return (2.0 if common else -1.0) if native else 0.0
        if script == "hangul":
            return (2.0 if _in_first_level(ch, "euc_kr", 0xB0, 0xC8) else -1.0) if native else 0.0
        if script == "kana":
            return 2.0 if native else 0.0
        return 1.0 if native else 0.0
    if 0x3000 <= ord(ch) <= 0x303F or 0xFF01 <= ord(ch) <= 0xFF5E:  # CJK and full-width punctuation
        return 1.5 if scripts is None or scripts & _CJK_SCRIPTS else -3.0
    if ch in _COMMON_SYMBOLS:
        return 0.5
    return -3.0


def _word_noise(text: str) -> int:
    """Letter runs that no language writes: "оПНАКЕЛЮ" (lower then upper, KOI8-R read as
    Windows-1251) or Latin and Cyrillic letters inside one word ("aиiы")."""
    noise = 0
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        scripts = {"latin" if c.isascii() else _script(c) for c in word}
        noise += len(scripts & {"latin", "cyrillic", "greek"}) > 1
        noise += sum(1 for a, b in zip(word, word[1:]) if a.islower() and b.isupper())
    return noise


def _plausibility(text: str, size: int, scripts: frozenset[str] | None) -> float:
    """Score per byte of a decoding of ``size`` bytes: higher is more like text a person wrote."""
    sample = text[:_SCORE_SAMPLE]
    size = max(1, size * len(sample) // max(1, len(text)))  # the bytes the sample came from, about
    odd = Counter(_NON_ASCII.findall(sample))
    score = (len(sample) - sum(odd.values())) + sum(n * _char_score(ch, scripts) for ch, n in odd.items())
    return (score - 2 * _word_noise(sample)) / size


def _decode_unknown(data: bytes, declared: list[str]) -> str:
    """Bytes whose charset is unknown or wrong: UTF-8 when valid, else the most plausible
    decoding among the charsets the message declares anywhere and the common codecs."""
    if data.isascii():
        if b"\x1b" in data:  # 7-bit ISO-2022 escapes (Japanese, Korean) without a label
            for codec in ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_kr"):
                if (text := _decode(data, codec)) is not None:
                    return text
        return data.decode("ascii")
    if (text := _decode(data, "utf-8")) is not None:
        return text
    named = [c for c in (resolve_charset(d) for d in declared) if c]
    best: tuple[float, str] = (float("-inf"), data.decode("latin-1"))  # every byte is a character
    for codec in dict.fromkeys(named + list(_GUESS)):
        text = _decode(data, codec)
        if text is not None:
            score = _plausibility(text, len(data), _GUESS.get(codec)) + (_DECLARED_BONUS if codec in named else 0.0)
            best = max(best, (score, text), key=lambda b: b[0])
    return best[1]


def _decode_bytes(data: bytes, charset: str | None, declared: list[str], defects: list[str]) -> str:
    """Body bytes: the declared charset (or its superset) when the bytes fit it, else a guess."""
    codec = resolve_charset(charset)
    if charset and not codec:
        defects.append(f"unknown charset {charset!r}")
    if codec:
        if (text := _decode(data, codec)) is not None:
            return text
        defects.append(f"text is not {charset}")
    return _decode_unknown(data, declared)


def _strip_preamble(raw: bytes, defects: list[str]) -> bytes:
    """Drop junk lines before the first header (an mbox "From " line, a stray banner)."""
    lines = raw.split(b"\n", 20)
    for i, line in enumerate(lines[:20]):
        if _HEADER_LINE.match(line):
            if i:
                defects.append(f"skipped {i} line(s) before the headers")
                return b"\n".join(lines[i:])
            return raw
    return raw


def _rejoin_broken_folds(raw: bytes, defects: list[str]) -> bytes:
    """Indent header continuation lines that lost their leading whitespace.

    The stdlib ends the header block at the first line that is neither a field nor indented,
    losing every header below it (Subject and From included). Such a line is taken as a
    continuation only when more fields follow it before the blank line; otherwise it is the
    start of a body whose blank separator line is missing, which the parser already handles.
    """
    end = re.search(rb"\r?\n\r?\n", raw)
    head, rest = (raw[:end.start()], raw[end.start():]) if end else (raw, b"")
    lines = head.split(b"\n")
    last_field = max((i for i, line in enumerate(lines) if _HEADER_LINE.match(line)), default=-1)
    broken = [i for i in range(1, last_field)
              if lines[i].strip() and not lines[i][:1].isspace() and not _HEADER_LINE.match(lines[i])]
    if not broken:
        return raw
    defects.append(f"re-indented {len(broken)} header continuation line(s)")
    for i in broken:
        lines[i] = b" " + lines[i]
    return b"\n".join(lines) + rest


def _raw_values(msg: LegacyMessage, name: str) -> list[str]:
    """Every value of a header as written, unfolded, raw 8-bit bytes still surrogate-escaped."""
    values = []
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            text = re.sub(r"\r?\n(?=[ \t])", "", str(value))
            values.append(re.sub(r"[\r\n\x00]", " ", text))
    return values


def _undo_raw_8bit(value: str, declared: list[str]) -> str:
    """A header value with its raw 8-bit bytes (not allowed, but common) decoded."""
    if value.isascii():
        return value
    return _decode_unknown(value.encode("utf-8", "surrogateescape"), declared)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The payload of one encoded-word, None when it is not valid B or Q encoding."""
    data = text.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))
    clean = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    try:
        return base64.b64decode(clean + b"=" * (-len(clean) % 4))
    except (binascii.Error, ValueError):
        return None


def decode_words(text: str, declared: list[str]) -> str:
    """Decode RFC 2047 encoded-words: adjacent words of one charset are joined before
    decoding (mailers split multi-byte characters across them), the whitespace between
    adjacent words is dropped (RFC 2047 §6.2), and a word whose charset is unknown or does
    not fit its bytes (ISO-2022-JP declared, Shift_JIS sent) is decoded by plausibility."""
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []  # (charset, bytes) of the current run of words

    def flush() -> None:
        joined: list[tuple[str, bytes]] = []
        for charset, data in pending:
            if joined and joined[-1][0] == charset:
                joined[-1] = (charset, joined[-1][1] + data)
            else:
                joined.append((charset, data))
        for charset, data in joined:
            codec = resolve_charset(charset)
            text = _decode(data, codec) if codec else None
            out.append(_decode_unknown(data, [charset, *declared]) if text is None else text)
        pending.clear()

    pos = 0
    for m in _ENCODED_WORD.finditer(text):
        data = _word_bytes(m.group(2), m.group(3))
        gap = text[pos:m.start()]
        if not (pending and not gap.strip() and data is not None):
            flush()
            out.append(gap)
        if data is None:
            out.append(m.group(0))
        else:
            pending.append((m.group(1).lower().split("*", 1)[0], data))
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def _header_text(msg: LegacyMessage, name: str, declared: list[str]) -> str:
    """The first value of a header as readable text, whitespace collapsed."""
    values = _raw_values(msg, name)
    if not values:
        return ""
    return " ".join(decode_words(_undo_raw_8bit(values[0], declared), declared).split())


def _without_comments(value: str) -> str:
    """An address header with its (comments) removed; quoted strings are left alone."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"' and not depth:
            quoted = not quoted
        elif ch == "(" and not quoted:
            depth += 1
            continue
        elif ch == ")" and depth:
            depth -= 1
            continue
        if not depth:
            out.append(ch)
    return "".join(out)


def _split_addresses(value: str) -> list[tuple[str, str]]:
    """``email.utils.getaddresses``, which recurses once per nested comment: a header of
    thousands of "(" exhausts the stack. Then the bare addresses in it are all there is."""
    try:
        return getaddresses([value])
    except RecursionError:
        return [("", address) for address in re.findall(r"[^\s<>()\[\],;:\"]+@[^\s<>()\[\],;:\"]+", value)]


def _mailboxes(values: list[str], declared: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of address headers, names decoded, addresses not.

    Encoded-words are hidden behind placeholders while the address list is split, so a
    comma inside one ("=?iso-8859-1?Q?B=FCrling,=20Andreas?=") splits nothing, and are
    decoded only in display names and comments: an encoded-word inside an addr-spec is
    not an address (RFC 2047 §5), so it is left as written and cannot forge one. A comment
    is the name only where there is no phrase: "a@b (Name)", but "Name (Comment) <a@b>".
    """
    result = []
    for value in values:
        words: list[str] = []

        def hide(m: re.Match[str]) -> str:
            words.append(m.group(0))
            return f"\x00{len(words) - 1}\x00"

        def restore(text: str) -> str:
            return re.sub(r"\x00(\d+)\x00", lambda m: words[int(m.group(1))], text)

        hidden = _ENCODED_WORD.sub(hide, _undo_raw_8bit(value, declared))
        pairs = _split_addresses(hidden)
        if "(" in hidden:
            bare = _split_addresses(_without_comments(hidden))
            if len(bare) == len(pairs):
                pairs = [(b_name or name, address) for (name, address), (b_name, _) in zip(pairs, bare)]
        for name, address in pairs:
            name = " ".join(decode_words(restore(name), declared).split())
            address = restore(address).strip().lower()
            local, at, domain = address.rpartition("@")
            address = f"{local}@{domain.rstrip('.')}" if at else address  # "yahoo.com." is yahoo.com
            if name or address:
                result.append((name, address))
    return result


def _sender(msg: LegacyMessage, declared: list[str]) -> tuple[str, str]:
    """(name, address) of the author: the first From mailbox with an address (spam repeats
    From, lists several mailboxes or leaves ``<>``), else Sender, else Reply-To — where a
    reply would go. With no address anywhere, From's name is still kept."""
    from_ = _mailboxes(_raw_values(msg, "From"), declared)
    for header in ("Sender", "Reply-To"):
        if any("@" in address for _, address in from_):
            break
        from_ += _mailboxes(_raw_values(msg, header), declared)
    for name, address in from_:
        if "@" in address:
            return name, address
    return (from_[0][0] if from_ else ""), ""


def _declared_charsets(msg: LegacyMessage) -> list[str]:
    """Every charset the message names, in its body parts and its encoded-words: the best
    first guesses for raw 8-bit bytes anywhere in the same message."""
    found: list[str] = []
    try:
        found += [c for c in msg.get_charsets() if c]
    except Exception:  # a broken Content-Type parameter must not stop triage
        pass
    for _, value in msg.raw_items():
        found += [m.group(1).lower().split("*", 1)[0] for m in _ENCODED_WORD.finditer(str(value))]
    return list(dict.fromkeys(c.lower() for c in found))


def _part_text(part: LegacyMessage, declared: list[str], defects: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = b""
    if not isinstance(payload, bytes):
        payload = str(payload).encode("utf-8", "surrogateescape")
    try:
        charset = part.get_content_charset()
    except Exception:  # an undecodable charset parameter: guess
        charset = None
    return _decode_bytes(payload, charset, declared, defects)


def _html_to_text(html: str) -> str:
    """Readable text of an HTML body; layout whitespace collapsed (table-heavy newsletters
    render as hundreds of thousands of spaces, which no later stage should have to scan)."""
    try:
        text = get_text(html)
    except Exception:  # inscriptis is robust, but a body must never stop triage
        text = re.sub(r"<[^>]+>", " ", html)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _body_and_attachments(msg: EmailMessage, declared: list[str],
                          defects: list[str]) -> tuple[str, list[Attachment]]:
    """The readable text (plain preferred over HTML per alternative) and the attachment list."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            ctype = part.get_content_type()
            disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
            filename = part.get_filename()
            if disposition == "attachment" or (filename and not ctype.startswith("text/")):
                payload = part.get_payload(decode=True) or b""
                attachments.append(Attachment(str(filename or ""), ctype, len(payload)))
            elif ctype == "text/plain":
                plain.append(_part_text(part, declared, defects))
            elif ctype == "text/html":
                html.append(_part_text(part, declared, defects))
            elif ctype in ("message/delivery-status", "text/rfc822-headers"):
                continue  # machine-readable parts of a bounce; automated.py reads them
            elif not ctype.startswith(("multipart/", "message/")):
                payload = part.get_payload(decode=True) or b""
                attachments.append(Attachment(str(filename or ""), ctype, len(payload)))
        except Exception as e:  # one broken part must not cost the rest of the body
            defects.append(f"part: {type(e).__name__}: {e}")
    if plain:
        return "\n\n".join(p.strip("\n") for p in plain), attachments
    return "\n\n".join(_html_to_text(h) for h in html), attachments


def _too_deep(msg: LegacyMessage) -> bool:
    """Whether the MIME tree nests deeper than _MAX_DEPTH (counted without recursing)."""
    stack = [(msg, 1)]
    while stack:
        part, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return True
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, LegacyMessage))
    return False


def _unparsed_body_text(raw: bytes, declared: list[str]) -> str:
    """The readable lines of a body the MIME parser could not take apart: boundaries and
    part headers dropped, at most _ERROR_TEXT bytes."""
    parts = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)
    lines = parts[1].splitlines() if len(parts) > 1 else []
    kept = [line for line in lines if not _MIME_LINE.match(line)]
    return _decode_unknown(b"\n".join(kept)[:_ERROR_TEXT], declared).strip()


def parse_email(raw: bytes, envelope_recipients: list[str] | None = None) -> Message:
    """Parse one raw message. Never raises: failures are recorded on the Message."""
    defects: list[str] = []
    prepared = _rejoin_broken_folds(_strip_preamble(raw, defects), defects)
    error = ""
    try:
        msg = _PARSER.parsebytes(prepared)
        if _too_deep(msg):
            raise RecursionError(f"MIME tree deeper than {_MAX_DEPTH} levels")
    except Exception as e:  # a MIME tree nested thousands deep: the stdlib parser recurses per level
        # The headers alone parse without recursing: sender, recipients and threading survive,
        # so the mail still finds its tenant and becomes a ticket, with the error on it. A tree
        # the parser did take but that is deeper than any real mail is treated the same: walking
        # it, printing its returned message or reading it as a bounce recurses per level too.
        error = f"unparseable MIME structure ({type(e).__name__}): headers read, body kept as text"
        msg = _HEADER_PARSER.parsebytes(prepared)
    defects.extend(type(d).__name__ for d in msg.defects)
    declared = _declared_charsets(msg)
    header = lambda name: _header_text(msg, name, declared)  # noqa: E731

    name, sender = _sender(msg, declared)
    recipients = [a for header_name in ("To", "Cc", "Delivered-To")
                  for _, a in _mailboxes(_raw_values(msg, header_name), declared) if "@" in a]
    recipients = list(dict.fromkeys(recipients))
    for rcpt in envelope_recipients or []:
        if rcpt.lower() not in recipients:
            recipients.append(rcpt.lower())
    if error:
        text, attachments = _unparsed_body_text(prepared, declared), []
    else:
        text, attachments = _body_and_attachments(msg, declared, defects)
    reply = split_reply(text)
    message_id = (_MSGID.findall(header("Message-ID")) or [""])[0]
    return Message(
        channel="email",
        id=message_id,
        sender=sender,
        sender_name=name,
        recipients=recipients,
        subject=header("Subject"),
        text=text,
        new_text=reply.new_text,
        quoted=reply.quoted,
        signature=reply.signature,
        attachments=attachments,
        in_reply_to=(_MSGID.findall(header("In-Reply-To")) or [""])[0],
        references=_MSGID.findall(header("References")),
        mime=msg,
        defects=defects,
        error=error,
    )


def parse_chat(line: dict) -> Message:
    """A widget or Slack line (the contract's JSON shape) as a Message."""
    channel = str(line.get("channel", "widget"))
    if channel not in ("widget", "slack"):
        raise ValueError(f"channel must be 'widget' or 'slack', not {channel!r}")
    text = str(line.get("text", ""))
    reply = split_reply(text)
    return Message(
        channel=channel,
        id=str(line.get("id", "")),
        sender=str(line.get("from", "")).strip().lower(),
        sender_name=str(line.get("name", "")),
        text=text,
        new_text=reply.new_text or text.strip(),
        quoted=reply.quoted,
        tenant_hint=line.get("tenant") or None,
        user_hash=str(line.get("user_hash", "")),
        user_token=str(line.get("user_token", "")),
    )
