"""Multilingual cue phrases, loaded from data files (``triage/data/lexicon/<lang>.toml``).

Each language file lists weighted regular expressions per intent ("technical/access") and
per named signal ("time_pressure", "high_importance", …). Adding a language is adding
one file: the code never names a word of any language.

A pattern is a Python regular expression matched case-insensitively, anchored at the start
of a word but not at its end, so stems match their inflections ("passw" finds "password",
"пароль" finds "пароля"). Weights say how decisive a cue is (1 weak … 4 decisive);
negative weights count against an intent ("no rush" against bidding_urgent).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from re import _constants as _c  # the stdlib's own regex parser, to index cues
from re import _parser

from triage import DATA

FOLDER = DATA / "lexicon"  # one file of cue phrases per language
_CANDIDATE = re.compile(r"(?<!\w)\S")  # where a cue may begin: the start of a word or a sign
# Latin letters with diacritics and their bare letters, one for one so that offsets into the
# folded text are offsets into the original: cues and texts are matched folded, because
# Swedish and German typed on a phone or a foreign keyboard drop them ("lagger till" is
# "lägger till"). Cyrillic is left alone: й and и, ї and і are different letters.
# The table also maps every other Latin, Greek and Cyrillic letter to itself: str.translate looks
# each character up, and one the table lacks costs a raised and caught LookupError, which made
# folding a mail twice as slow.
_FOLD = {i: i for i in range(0x530)} | str.maketrans(
    "àáâãäåçèéêëìíîïñòóôõöøùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝ", "aaaaaaceeeeiiiinoooooouuuuyyAAAAAACEEEEIIIINOOOOOOUUUUY")


def fold(text: str) -> str:
    """The text with Latin diacritics dropped, letter for letter ("lägger" → "lagger")."""
    return text.translate(_FOLD)


@dataclass(frozen=True)
class Cue:
    """One pattern of one language for one intent or signal."""

    label: str  # "technical/access" or "signal:time_pressure" or "auto:auto_reply_subject"
    language: str
    pattern: str
    weight: float


@dataclass(frozen=True)
class Hit:
    """A cue found in a text: the evidence an agent sees."""

    label: str
    language: str
    text: str
    weight: float


Starts = tuple[set[str], set[str]]  # (closed, open): see _starts
Candidates = list[tuple[str, re.Pattern[str], list["Cue"]]]  # (label, its alternation, its cues)


def _item_starts(item: tuple, k: int) -> Starts | None:
    """How one parsed regex item can begin (lower-cased); None when it can begin with too
    many characters to list (\\w, ., a negated class)."""
    op, av = item
    if op is _c.LITERAL:
        return set(), {chr(av).lower()}
    if op is _c.IN:
        chars: set[str] = set()
        for sub_op, sub_av in av:
            if sub_op is _c.LITERAL:
                chars.add(chr(sub_av).lower())
            elif sub_op is _c.RANGE and sub_av[1] - sub_av[0] < 64:
                chars.update(chr(c).lower() for c in range(sub_av[0], sub_av[1] + 1))
            elif sub_op is _c.CATEGORY and sub_av is _c.CATEGORY_DIGIT:
                chars.update("0123456789")
            else:
                return None
        return set(), chars
    if op is _c.BRANCH:
        closed: set[str] = set()
        opened: set[str] = set()
        for alternative in av[1]:
            c, o = _starts(list(alternative), k)
            closed |= c
            opened |= o
        return closed, opened
    if op is _c.SUBPATTERN:
        return _starts(list(av[3]), k)
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
        return set(), {""}
    return None


def _starts(items: list, k: int) -> Starts:
    """How a parsed regex can begin, in at most k characters: ``closed`` strings are all
    that can be known (k reached, or a repetition or an unlisted character follows);
    ``open`` strings are the whole pattern, so what follows it may extend them."""
    opened, closed = {""}, set()
    for item in items:
        closed |= {p[:k] for p in opened if len(p) >= k}
        opened = {p for p in opened if len(p) < k}
        if not opened:
            return closed, set()
        op, av = item
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            low, high, body = av
            body_closed, body_open = _starts(list(body), k)
            grown = set(opened) if low == 0 else set()  # zero repetitions: go on listing
            for p in opened:
                closed.update((p + s)[:k] for s in body_closed)
                if high == 1:
                    grown.update(p + s for s in body_open)  # optional item: still known after it
                else:
                    closed.update((p + s)[:k] for s in body_open)  # more repetitions: unknown
            opened = grown
            continue
        found = _item_starts(item, k)
        if found is None or len(opened) > 256:  # unknown characters: keep what is known
            return closed | opened, set()
        item_closed, item_open = found
        closed.update((p + s)[:k] for p in opened for s in item_closed)
        opened = {p + s for p in opened for s in item_open}
    return closed | {p[:k] for p in opened if len(p) >= k}, {p for p in opened if len(p) < k}


class Lexicon:
    """All cues of all loaded languages, indexed by the first letters they can start with.

    Scanning a text with thousands of alternatives at every position is slow; instead the
    text's word starts are visited once and only the cues that can begin with those two
    letters are tried (one alternation per bucket and label, longest first, compiled on
    first use: loading costs little and a process compiles only the buckets its mail needs).
    """

    def __init__(self, cues: list[Cue]):
        self.cues = cues
        self.labels = sorted({c.label for c in cues})
        buckets: dict[str, dict[str, list[Cue]]] = {}
        for cue in cues:
            closed, opened = _starts(list(_parser.parse(fold(cue.pattern), re.I)), 2)
            keys = closed | opened
            if not keys or "" in keys:
                keys = {"*"}  # can begin with anything: tried everywhere
            for key in keys:
                buckets.setdefault(key, {}).setdefault(cue.label, []).append(cue)
        # At one position the first alternative that matches wins: longest patterns first,
        # so a specific phrase is not hidden by a short stem of another language.
        self._buckets = {key: [(label, sorted(group, key=lambda c: -len(c.pattern)))
                               for label, group in sorted(by_label.items())]
                         for key, by_label in buckets.items()}
        self._any = self._buckets.pop("*", [])
        self._patterns: dict[int, re.Pattern[str]] = {}  # id of a label's group -> its alternation
        self._by_key: dict[tuple[str, str], Candidates] = {}

    def _pattern(self, group: list[Cue]) -> re.Pattern[str]:
        found = self._patterns.get(id(group))
        if found is None:
            found = self._patterns[id(group)] = re.compile(
                "|".join(f"(?P<c{i}>{fold(c.pattern)})" for i, c in enumerate(group)), re.I)
        return found

    def _candidates(self, key: str, prefix: str) -> Candidates:
        """The cue groups of labels starting with ``prefix`` to try where a text continues
        with ``key`` (cached: the scan loop is the hot path of classification)."""
        found = self._by_key.get((key, prefix))
        if found is None:
            found = self._by_key[(key, prefix)] = [
                (label, self._pattern(group), group)
                for label, group in (*self._buckets.get(key, ()), *self._buckets.get(key[:1], ()), *self._any)
                if label.startswith(prefix)]
        return found

    def scan(self, text: str, prefix: str = "") -> list[Hit]:
        """Every cue occurrence in ``text`` whose label starts with ``prefix``.

        Cues of one label may overlap when they start at different words ("please advise
        how" and "how to attach" are two pieces of evidence); at one position the longest
        cue of a label wins.
        """
        hits: list[Hit] = []
        folded = fold(text)
        for start in _CANDIDATE.finditer(folded):
            pos = start.start()
            for label, regex, group in self._candidates(folded[pos:pos + 2].lower(), prefix):
                match = regex.match(folded, pos)
                if match:
                    cue = group[int(match.lastgroup[1:])]  # type: ignore[index]
                    hits.append(Hit(label, cue.language, text[pos:match.end()], cue.weight))
        return hits


def _cues_of(language: str, table: dict, prefix: str, source: Path) -> list[Cue]:
    cues = []
    for label, patterns in table.items():
        if not isinstance(patterns, dict):
            raise ValueError(f"{source}: [{prefix}{label}] must be a table of pattern = weight")
        for pattern, weight in patterns.items():
            try:
                compiled = re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{source}: [{prefix}{label}] bad pattern {pattern!r}: {e}") from None
            if compiled.groups:
                raise ValueError(f"{source}: [{prefix}{label}] pattern {pattern!r} must use (?:…), not (…)")
            cues.append(Cue(prefix + label, language, pattern, float(weight)))
    return cues


def load_language(path: Path) -> list[Cue]:
    """Cues of one language file: [intents."category/intent"], [signals.NAME], [automated.NAME]."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    language = path.stem
    unknown = set(data) - {"intents", "signals", "automated"}
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}")
    return (_cues_of(language, data.get("intents", {}), "", path)
            + _cues_of(language, data.get("signals", {}), "signal:", path)
            + _cues_of(language, data.get("automated", {}), "auto:", path))


def load_lexicon(languages: list[str] | None = None, folder: Path = FOLDER) -> Lexicon:
    """Load the given languages (all files when None). A message in one language often
    quotes another, so every configured language's cues are applied to every message."""
    cues: list[Cue] = []
    for path in sorted(folder.glob("*.toml")):
        if languages is None or path.stem in languages:
            cues.extend(load_language(path))
    return Lexicon(cues)
