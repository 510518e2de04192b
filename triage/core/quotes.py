"""Split an email body into what the sender wrote now, the quoted history and the signature.

Why our own module and not mail-parser-reply: that library has no Russian or Ukrainian
and agreed with Discourse's trimmer corpus on only 24/64 emails (same comparison as
tests/test_corpus_trimmer.py, where this module scores 62/64). Here every language-specific
word lives in ``data/quotes.toml``, so adding a language is adding data, and the code
below only knows the shapes of a reply: a line classifier plus one top-down pass.

The pass walks the lines once and stops at the first piece of history that has new text
above it: an attribution ("On <date>, <name> wrote:", possibly wrapped over a few lines),
a separator ("-----Original Message-----"), an Outlook header block (two or more of
From:/Sent:/To:/Subject: in any configured language) or a trailing ">" quote. A quote
that is followed by more of the sender's text is an inline reply and stays as context,
like Discourse and talon keep it. History at the very top (a bottom-posted reply, a forward
without comment) is dropped and the walk goes on below it. The signature is then cut from
the new text: at "-- " or a device tagline unconditionally, at a sign-off ("Best regards",
"С уважением") or a "____" rule only when no more than a short, prose-free block follows.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from triage import DATA

DATA_FILE = DATA / "quotes.toml"


@dataclass(frozen=True)
class Reply:
    """One email body, split."""

    new_text: str  # what the sender wrote this time, quoted history and signature removed, stripped
    quoted: str  # the quoted / forwarded material that was cut ("" if none)
    signature: str  # the signature block cut from the new text ("" if none)


# Line kinds. CONTENT kinds are the sender's words; the rest are structure.
BLANK, JUNK, RULE, DASH, QUOTE, SEPARATOR, FROM_FIELD, FIELD, DEVICE, SIGN_OFF, DATED, TEXT, DISCLAIMER = range(13)
CONTENT = frozenset({FROM_FIELD, FIELD, SIGN_OFF, DATED, TEXT})
# How a candidate reads as an attribution; a weak one ("Anna wrote:") only counts above a quote.
NO_ATTRIBUTION, WEAK_ATTRIBUTION, ATTRIBUTION = range(3)
_GROUP_KINDS = {"sep": SEPARATOR, "from": FROM_FIELD, "field": FIELD, "device": DEVICE,
                "signoff": SIGN_OFF, "dated": DATED, "disclaimer": DISCLAIMER}

# A capitalised word, for the name that may follow a sign-off on its line ("Thanks, Anna").
_NAME = r"(?-i:[A-ZÀ-ÖØ-ÞА-ЯЁЄІЇҐ])[\w.'’-]*"
# A line's first word after what may precede a marker: "-----Original", "*From:*", "(Sent
# from", "/ Cheers"; cut at 25 letters, the same for phrases and lines.
_OPENING = re.compile(r"[-–—_*/~(<\[\s]*(\w{0,25})(.?)")
# The same for every line of a text at once (one C call): a line that opens with a letter
# is plain text unless its first word opens a marker or is followed by "." "," or ">".
_LINE_OPENINGS = re.compile(r"\n[^\S\n]*(\w{0,25})(.?)")
_MAY_MARK = frozenset(".,>")
# A line that opens with an e-mail address ("<john@coe.fi> kirjoitti:").
_ADDRESS_FIRST = re.compile(r"<?[^\s<>@]+@")
# Real header blocks carry an address or a date somewhere.
_ADDRESS_OR_DIGIT = re.compile(r"[@\d]")
# Supercite quotes are prefixed by the author's initials: "JD> text".
_SUPERCITE = re.compile(r"[A-Za-z]{1,3}>")
# What a dated attribution can start with besides a lead word: a whole date ("02.04.2012",
# "20 окт. 2016"; not "2.5", a score or a section number) or a weekday ("чт, 20").
_DATE_START = (r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"
               r"|\d{1,2}\.?\s+[^\W\d]{3,}\.?,?\s+\d{2,4}"
               r"|[^\W\d]{2,12}\.?,\s*\d"
               r"|[^\W\d]{2,4}\.\s+\d")
_COLON = "[:：]"
_ATTRIBUTION_ENDS = (":", "：", ">")


@dataclass(frozen=True)
class _Markers:
    """The data file compiled to the few regexes the classifier needs."""

    by_opening: dict[str, re.Pattern[str]]  # opening word -> its markers; lastgroup = kind
    dated: re.Pattern[str]  # a line opening with a date or a weekday ("чт, 20 нояб.")
    lead: re.Pattern[str]  # match: a line opening a dated attribution ("On 20 Nov ...")
    verb: re.Pattern[str]  # search, lower-cased text: the "wrote" of an attribution
    verb_endings: tuple[str, ...]  # the verbs themselves, for str.endswith
    dated_prefix: re.Pattern[str]  # match, lower-cased: what precedes it ("on thu, 20 ...")
    verbless: re.Pattern[str]  # fullmatch: attributions without a verb (date + address)
    junk: re.Pattern[str]  # fullmatch: a line without text
    junk_characters: frozenset[str]  # what such a line can start with
    attribution_lines: int
    attribution_chars: int
    sign_off_lines: int
    prose_chars: int
    prose_words: int
    device_chars: int
    wrapped_chars: int
    scan_chars: int


def _phrase(phrase: str) -> str:
    """A data phrase as a regex: words escaped, spaces flexible, "*" a few words."""
    words = [r".{1,40}?" if word == "*" else re.escape(word) for word in phrase.split()]
    return r"\s+".join(words)


def _union(phrases: set[str]) -> str:
    """Alternation of phrases, longest first so "thanks again" beats "thanks"."""
    return "|".join(_phrase(p) for p in sorted(phrases, key=lambda p: (-len(p), p)))


def _opening(text: str) -> tuple[str, str]:
    """(first word, character after it) of a line, decoration skipped and lower-cased:
    "-----Original" -> ("original", " "), "*From:*" -> ("from", ":"), "чт, 20" -> ("чт", ",")."""
    match = _OPENING.match(text)
    return (match[1].lower(), match[2]) if match else ("", "")


def _collect(languages: dict[str, dict[str, list[str]]], key: str) -> set[str]:
    return {phrase.lower() for table in languages.values() for phrase in table.get(key, [])}


# The shape of each single-line marker around its phrases (PHRASES), in priority order.
_LINE_SHAPES = (
    ("sep", "separators", r"[\s*_-]*(?:PHRASES)[\s*_:-]*$"),
    ("from", "from_fields", rf"\**(?:PHRASES)[\s*]*{_COLON}"),
    ("field", "other_fields", rf"\**(?:PHRASES)[\s*]*{_COLON}"),
    ("device", "device_lines", r"[(<\[]*(?:PHRASES)"),
    ("signoff", "sign_offs",
     rf"[-–—/~\s]*(?:PHRASES)[\s,.!:;)]*(?:[,\s]\s*{_NAME}(?:\s+{_NAME}){{0,2}}[.!]?)?\s*$"),
    ("dated", "attribution_leads", r"(?:-{2,}\s*)?(?:PHRASES)\s+\D{0,40}?\d"),
    ("disclaimer", "disclaimers", r"(?:PHRASES)"),
)


def _line_patterns(languages: dict[str, dict[str, list[str]]]) -> dict[str, re.Pattern[str]]:
    """One small regex per opening word, so a line costs a dict lookup and a short match.

    (A single alternation of every phrase tries them one by one: ~6 µs a line.)
    """
    by_opening: dict[str, dict[str, set[str]]] = {}
    for group, key, _ in _LINE_SHAPES:
        for phrase in _collect(languages, key):
            opening = _opening(phrase)[0]
            by_opening.setdefault(opening, {}).setdefault(group, set()).add(phrase)
    return {
        opening: re.compile("|".join(
            f"(?P<{group}>{shape.replace('PHRASES', _union(groups[group]))})"
            for group, _, shape in _LINE_SHAPES if group in groups), re.IGNORECASE)
        for opening, groups in by_opening.items()
    }


def _compile(data: dict) -> _Markers:
    """Build the regexes once; all languages share them."""
    languages = data["languages"]
    leads = _union(_collect(languages, "attribution_leads"))
    verb_phrases = _collect(languages, "attribution_verbs")
    # matched on lower-cased text: a bare alternation of lower-case words lets the regex
    # engine skip ahead by first character (IGNORECASE or a leading \b would not)
    verb = re.compile(_union(verb_phrases))
    dated_prefix = re.compile(rf"(?:(?:{leads})\s+)?\D{{0,40}}?\d")
    email = r"<[^<>\s]+@[^<>\s]+>"
    verbless = re.compile(
        "|".join([
            # чт, 20 нояб. 2026 г. в 07:00, Anna <a@b>:  (Gmail in languages without a verb)
            rf".{{0,40}}?\d{{4}}\b.{{0,200}}?{email}\s*{_COLON}",
            # 2013/7/20 Anna <a@b>  and  2016-03-03 17:21 GMT+01:00 Anna  (old Gmail)
            rf"\d{{4}}[/.-]\d{{1,2}}[/.-]\d{{1,2}}\b.{{0,200}}?{email}\s*{_COLON}?",
            r"\d{4}-\d{1,2}-\d{1,2}\s+\d{1,2}:\d{2}\s+GMT[+-]\d{1,2}:?\d{2}\b.{0,200}",
        ]),
        re.IGNORECASE,
    )
    lead = re.compile(rf"(?:-{{2,}}\s*)?(?:{leads})\s+\D{{0,40}}?\d", re.IGNORECASE)
    dated = re.compile(rf"(?:-{{2,}}\s*)?(?:{_DATE_START})", re.IGNORECASE)
    junk = re.compile(rf"[\s{re.escape(data['characters']['junk'])}]+")
    limits = data["limits"]
    return _Markers(_line_patterns(languages), dated, lead, verb, tuple(verb_phrases), dated_prefix,
                    verbless, junk,
                    frozenset(data["characters"]["junk"]),
                    limits["attribution_lines"], limits["attribution_chars"],
                    limits["sign_off_lines"], limits["prose_chars"], limits["prose_words"],
                    limits["device_chars"], limits["wrapped_chars"], limits["scan_chars"])


def _load_markers() -> _Markers:
    with DATA_FILE.open("rb") as handle:
        return _compile(tomllib.load(handle))


MARKERS = _load_markers()  # compiled at import: a bad data file fails loudly at start-up


def _classify(stripped: str) -> int:
    """The kind of one line (already stripped), looking at that line only."""
    if not stripped:
        return BLANK
    if stripped[0] == ">":
        return QUOTE
    if stripped == "--":
        return DASH
    word, after = _opening(stripped)
    pattern = MARKERS.by_opening.get(word)
    if pattern:
        match = pattern.match(stripped)
        if match:
            kind = _GROUP_KINDS[match.lastgroup or ""]
            if kind != DEVICE or len(stripped) <= MARKERS.device_chars:
                return kind
    if word and (word[0].isdigit() or after in (".", ",")) and MARKERS.dated.match(stripped):
        return DATED
    if stripped[0] in MARKERS.junk_characters and MARKERS.junk.fullmatch(stripped):
        return RULE if len(stripped) >= 2 else JUNK
    if ">" in stripped[1:4] and _SUPERCITE.match(stripped):
        return QUOTE
    return TEXT


def _first_look(word: str, after: str) -> int | None:
    """A line's kind from its first word and the character after it, when that settles it
    (blank, quote, plain text); None when the line needs _classify."""
    if not word:
        return BLANK if not after else QUOTE if after == ">" else None
    if word[0].isalpha() and word[0] not in MARKERS.junk_characters and after not in _MAY_MARK:
        return None if word.lower() in MARKERS.by_opening else TEXT
    return None


def is_sign_off(line: str) -> bool:
    """Whether a line is a closing formula ("Best regards,", "Gruß Anna", "Дякую!").

    Public because callers comparing with trimmers that keep sign-offs (Discourse does)
    need to tell a sign-off signature from a "-- " or device one.
    """
    return _classify(line.strip()) == SIGN_OFF


def _attribution(joined: str) -> int:
    """How a (joined) candidate line reads as an attribution.

    An attribution is "<opening> <verb>" followed by nothing, a colon, or a name/date
    ending in a colon ("Am 20.11.2026 schrieb Anna <a@b>:"), where the opening is dated
    ("On Thu, 20 Nov 2026, Anna"), holds an address, or says "via". A bare "Anna wrote:"
    is weak: it counts only directly above a quote. Gmail in Russian has no verb at all
    ("чт, 20 нояб. 2026 г. в 07:00, Anna <a@b>:").
    """
    lowered = joined.lower()
    if not (lowered.endswith(_ATTRIBUTION_ENDS) or lowered.endswith(MARKERS.verb_endings) or "gmt" in lowered):
        return NO_ATTRIBUTION  # it must end in a colon, an address or the verb (or be old Gmail)
    for verb in MARKERS.verb.finditer(lowered):
        start, end = verb.span()
        if start and lowered[start - 1].isalnum():
            continue  # inside a word
        before, after = lowered[:start], lowered[end:].strip()
        if after not in ("", ":", "：") and not (
                after[-1] in ":：" and lowered[end].isspace() and len(after) <= 150):
            continue
        if MARKERS.dated_prefix.match(before) or "@" in before or " via " in before:
            return ATTRIBUTION
        if before.strip() and len(before) <= 80 and after in (":", "："):
            return WEAK_ATTRIBUTION
    if ("@" in lowered or "gmt" in lowered) and MARKERS.verbless.fullmatch(joined):
        return ATTRIBUTION
    return NO_ATTRIBUTION


def _is_prose(stripped: str) -> bool:
    """A sentence rather than a signature line (name, title, phone, address)."""
    if stripped.endswith("?") or (len(stripped) > MARKERS.prose_chars and " " in stripped):
        return True
    return stripped.endswith((".", "!")) and len(stripped.split()) >= MARKERS.prose_words


class _Scan:
    """The lines of one message, classified lazily: most quoted history is never looked at,
    and a line that plainly opens with a word (most of them) is text without a closer look."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.stripped = [line.strip() for line in self.lines]
        self.n = len(self.lines)
        self._kinds = [_first_look(word, after) for word, after in _LINE_OPENINGS.findall(f"\n{text}")]
        self._attributions: dict[int, tuple[int, bool]] = {}
        self._no_block = (0, 0)

    def kind(self, i: int) -> int:
        kind = self._kinds[i]
        if kind is None:
            kind = self._kinds[i] = _classify(self.stripped[i])
        return kind

    def set_kind(self, i: int, kind: int) -> None:
        self._kinds[i] = kind

    def next_content(self, i: int) -> int:
        """First non-blank line at or after i (n if none)."""
        while i < self.n and not self.stripped[i]:
            i += 1
        return i

    def quote_end(self, i: int) -> int:
        """End (exclusive) of the quote block starting at i.

        Blank lines inside belong to it, and so does an unquoted line squeezed between
        two quote lines under a long one: a quoted line some client re-wrapped.
        """
        end, kinds = i, self._kinds
        while i < self.n:
            kind = kinds[i]
            if kind is None:
                kind = self.kind(i)
            if kind == QUOTE:
                end = i + 1
            elif kind != BLANK and not self._rewrapped(i):
                break
            i += 1
        return end

    def _rewrapped(self, i: int) -> bool:
        return (i + 1 < self.n and self.kind(i - 1) == QUOTE and self.kind(i + 1) == QUOTE
                and len(self.stripped[i - 1]) >= MARKERS.wrapped_chars)

    def field_block_end(self, i: int) -> int:
        """End of an Outlook header block at i, or 0 if the fields there are not one.

        A block is two or more header fields, one of them the sender, where a single
        wrapped line (a long Subject) may sit between two fields, and somewhere an address
        or a date: "From: Gothenburg" / "To: Stockholm" in a delivery note is not a header.
        """
        if self._no_block[0] <= i < self._no_block[1]:
            return 0
        fields, has_from, dated, end, j = 0, False, False, i, i
        while j < self.n:
            kind = self.kind(j)
            if kind in (FROM_FIELD, FIELD):
                fields, has_from, end = fields + 1, has_from or kind == FROM_FIELD, j + 1
                dated = dated or bool(_ADDRESS_OR_DIGIT.search(self.stripped[j]))
            elif not (kind != BLANK and j + 1 < self.n and self.kind(j + 1) in (FROM_FIELD, FIELD)):
                break
            j += 1
        if fields >= 2 and has_from and dated:
            return end
        self._no_block = (i, j)  # no later part of a failed run can be a block either
        return 0

    def may_attribute(self, i: int, kind: int) -> bool:
        """Cheap test: can line i start an attribution (dated, with an address, or "...:")?"""
        line = self.stripped[i]
        if kind == DATED:
            return len(line) <= MARKERS.attribution_chars
        return kind == TEXT and len(line) <= MARKERS.attribution_chars and (
            "@" in line or line.endswith((":", "：")))

    def attribution_end(self, i: int) -> tuple[int, bool]:
        """(end, weak) of an attribution starting at line i, or (0, False). Memoised:
        the walk and its look-aheads ask about the same lines."""
        known = self._attributions.get(i)
        if known is None:
            known = self._attributions[i] = self._find_attribution(i)
        return known

    def _find_attribution(self, i: int) -> tuple[int, bool]:
        """Try line i alone, then joined with following lines (Gmail wraps long headers).

        Only a dated line may wrap over several lines ("Le 4 janv. 2016 19:03, "Neil"" /
        "<neil@x>" / "a écrit :"); a line with an address gets one more, a line ending in
        a colon none. Never crosses a line that opens another dated attribution. A shorter
        match not ending in a colon gives way to a longer one that does ("... Foo bar <"
        + "foo@bar>:").
        """
        kind = self.kind(i)
        if not self.may_attribute(i, kind):
            return 0, False
        lines = MARKERS.attribution_lines if kind == DATED else 1 if self.stripped[i].endswith((":", "：")) else 2
        joined, found, j = self.stripped[i].strip("-* "), 0, i + 1
        for extra in range(lines):
            if extra:
                j = self.next_content(j)
                if (j >= self.n or j - i >= MARKERS.attribution_lines or joined.endswith((":", "："))
                        or len(joined) > MARKERS.attribution_chars or MARKERS.lead.match(self.stripped[j])):
                    break
                joined = f"{joined} {self.stripped[j].lstrip('>- ').rstrip('-* ')}"
                j += 1
            reading = _attribution(joined)
            if reading == ATTRIBUTION:
                if joined.endswith((":", "：")):
                    return j, False
                found = found or j
            elif reading == WEAK_ATTRIBUTION and not extra and not found:
                return j, True
        return found, False

    def tail_lines(self, i: int, stop: int) -> int:
        """Lines a signature starting at i would hold, or -1 if what follows is not one.

        A signature tail is at most sign_off_lines non-blank lines before stop, none of
        them prose or a quote; a "-- " or device line under it ends the count (it is
        signature anyway).
        """
        count, j = 0, i + 1
        while j < stop:
            kind = self.kind(j)
            if kind in (DASH, DEVICE):
                return count
            if kind == QUOTE:
                return -1
            if kind != BLANK:
                count += 1
                if count > MARKERS.sign_off_lines or _is_prose(self.stripped[j]):
                    return -1
            j += 1
        return count

    def is_tail(self, i: int) -> bool:
        """Whether line i starts nothing of the sender's own: end, history or signature."""
        if i >= self.n:
            return True
        kind = self.kind(i)
        if kind in (SEPARATOR, DASH, DEVICE):
            return True
        if kind in (SIGN_OFF, RULE, JUNK):
            return self.tail_lines(i, self.n) >= 0
        if kind in (FROM_FIELD, FIELD) and self.field_block_end(i):
            return True
        return self.attribution_end(i)[0] > 0

    def history_end(self, i: int, kind: int) -> int:
        """End of a separator or Outlook header block at line i, 0 if there is none."""
        if kind == SEPARATOR:
            return i + 1
        if kind in (FROM_FIELD, FIELD):
            return self.field_block_end(i)
        return 0

    def wrapped_start(self, i: int, end: int) -> bool:
        """Whether the attribution at i..end began on line i - 1.

        Only when line i opens with the address, its name having wrapped onto the line
        above ("pe 20. lokakuuta 2017 klo 17.50 John Coe" / "<john@coe.fi> kirjoitti:").
        """
        if i == 0 or not _ADDRESS_FIRST.match(self.stripped[i]) or self.kind(i - 1) not in (TEXT, DATED):
            return False
        parts = [self.stripped[i - 1].strip("-* ")]
        parts += [self.stripped[j].lstrip(">- ").rstrip("-* ") for j in range(i, end) if self.stripped[j]]
        joined = " ".join(parts)
        return len(joined) <= MARKERS.attribution_chars and _attribution(joined) == ATTRIBUTION

    def walk(self) -> tuple[list[int], list[int], list[int], int]:
        """One pass top-down: (kept line indices, dropped indices, device lines above all
        text, start of cut history). A device line above all text signs an empty reply
        ("Sent from my iPhone" over "Begin forwarded message:"); what follows is the body."""
        kept: list[int] = []
        dropped: list[int] = []
        devices: list[int] = []
        in_code = False
        content = 0  # how many kept lines are the sender's own text
        kinds, stripped = self._kinds, self.stripped
        i = 0
        while i < self.n:
            line = stripped[i]
            fence = line.startswith("```")
            if fence or in_code:  # markers inside a code block are code
                in_code ^= fence
                self.set_kind(i, TEXT if line else BLANK)
                kept.append(i)
                content, i = content + 1, i + 1
                continue
            if kinds[i] == TEXT and "@" not in line and not line.endswith((":", "：")):
                kept.append(i)  # plain text, by far the most common line: nothing to decide
                content, i = content + 1, i + 1
                continue
            kind = self.kind(i)
            if kind == DEVICE and not content:
                devices.append(i)
                i += 1
                continue
            if kind == QUOTE:
                end = self.quote_end(i)
                if self.is_tail(self.next_content(end)):
                    return kept, dropped, devices, i
                kept.extend(range(i, end))  # an inline reply: the quote is context
                i = end
                continue
            end = self.history_end(i, kind) if kind in (SEPARATOR, FROM_FIELD, FIELD) else 0
            if end:
                if content:
                    return kept, dropped, devices, i
                dropped.extend(range(i, end))  # a forward without comment: read on below
                i = end
                continue
            end, weak = self.attribution_end(i) if self.may_attribute(i, kind) else (0, False)
            if end:
                if kept and kept[-1] == i - 1 and self.wrapped_start(i, end):
                    i = kept.pop()
                    content -= self.kind(i) in CONTENT
                after = self.next_content(end)
                if after < self.n and self.kind(after) == QUOTE:
                    quote_end = self.quote_end(after)
                    if self.is_tail(self.next_content(quote_end)):
                        return kept, dropped, devices, i
                    # inline reply: only the header goes, the quote stays as context;
                    # bottom post (nothing above): header and quote are both history
                    stop = end if content else quote_end
                    dropped.extend(range(i, stop))
                    i = stop
                    continue
                if not weak:
                    if content:
                        return kept, dropped, devices, i
                    dropped.extend(range(i, end))  # history shown in full, unquoted
                    i = end
                    continue
            kept.append(i)
            content += kind in CONTENT
            i += 1
        return kept, dropped, devices, self.n

    def signature_start(self, kept: list[int], stop: int) -> int:
        """Position in kept where the signature begins (len(kept) if none)."""
        content, kinds = False, self._kinds  # the walk classified every kept line
        for position, i in enumerate(kept):
            kind = kinds[i]
            if kind in (DASH, DEVICE) or (content and kind == DISCLAIMER):
                return position  # a legal disclaimer under the text is no part of what was asked
            # a sign-off may end the mail; a rule with nothing under it is decoration
            if content and kind in (SIGN_OFF, RULE) and self.tail_lines(i, stop) >= (1 if kind == RULE else 0):
                return position
            content = content or kind in CONTENT
        return len(kept)

    def text(self, indices: list[int]) -> str:
        lines = self.lines
        return "\n".join([lines[i] for i in indices]).strip()


_QUOTE_MARK = re.compile(r"^[ \t]*>[ \t]?", re.MULTILINE)
# every level at once; a character class rather than a repeated group, which is slow on
# a megabyte of ">"; backtracking to the last ">" keeps the indentation after it
_ALL_QUOTE_MARKS = re.compile(r"^[ \t>]*>[ \t]?", re.MULTILINE)


def split_reply(text: str) -> Reply:
    """Split a plain-text body into new text, quoted history and signature.

    Never raises; ``new_text`` is empty only when the body has no text at all: a reply
    that is only a quote or only a forward yields the quoted text, unquoted. Only the
    first scan_chars characters are examined (bounded time on huge bodies): history
    found there takes everything after it, else the whole body is new text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    limit = text.rfind("\n", 0, MARKERS.scan_chars) if len(text) > MARKERS.scan_chars else -1
    if limit <= 0:
        return _split(text, fallbacks=1)
    head = _split(text[:limit], fallbacks=1)
    if not head.quoted:
        return Reply(text.strip(), "", "")
    return Reply(head.new_text, (head.quoted + text[limit:]).rstrip(), head.signature)


def _split(text: str, fallbacks: int) -> Reply:
    scan = _Scan(text)
    kept, dropped, devices, cut = scan.walk()
    position = scan.signature_start(kept, cut)
    body = kept[:position]
    while body and scan.kind(body[-1]) in (BLANK, JUNK, RULE):
        body.pop()
    new_text = scan.text(body)
    quoted = scan.text(dropped + list(range(cut, scan.n)))
    signature = scan.text(devices + kept[position:])
    if not new_text:
        new_text = _best_text(quoted or text, fallbacks)
    return Reply(new_text, quoted, signature)


def _best_text(quoted: str, fallbacks: int) -> str:
    """The text of a message that has nothing new: its quote, one level unquoted and split
    again (a quoted reply has its own history), else with every quote mark removed."""
    unquoted = _QUOTE_MARK.sub("", quoted)
    if fallbacks and unquoted != quoted:
        new_text = _split(unquoted, fallbacks - 1).new_text
        if new_text:
            return new_text
    return _ALL_QUOTE_MARKS.sub("", quoted).strip()
