"""Russian and Ukrainian typed in Latin letters: recognised and read like Cyrillic.

People without a Cyrillic keyboard write "Zdravstvuyte, moy akkaunt byl deaktivirovan".
lingua, restricted to the configured languages, calls that German or English, and the
Cyrillic cue phrases and model features never see it. So a Latin-script text is
transliterated back to Cyrillic with each language's table (``data/translit.toml``) and its
words are looked up in the vocabulary of each language's examples (word beginnings saved
by ``triage train`` in the model): when the Cyrillic reading knows clearly more words than
the Latin one, the text is Russian or Ukrainian, and it is classified with both readings.
"""
from __future__ import annotations

import re
import tomllib
from functools import lru_cache

from triage import DATA

TABLE = DATA / "translit.toml"
PREFIX = 4  # word beginnings compared: endings are where transliterations differ most
CYRILLIC = ("ru", "uk")  # the languages whose examples' vocabulary is read in Cyrillic
MIN_WORDS = 2
SAMPLE_WORDS = 40  # the opening words decide: transliterating all of a long mail costs time
MIN_SHARE = 0.5  # of the words, known in the Cyrillic reading
LEAD = 0.15  # how much better the Cyrillic reading must do than the best Latin language
_WORD = re.compile(r"[^\W\d_]{3,}")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-zA-Z]")


@lru_cache(maxsize=1)
def _tables() -> dict[str, tuple[re.Pattern[str], dict[str, str], str, dict[str, str]]]:
    data = tomllib.loads(TABLE.read_text("utf-8"))
    tables = {}
    for lang, table in data.items():
        letters = table["letters"]
        spellings = sorted(letters, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(s) for s in spellings))
        tables[lang] = (pattern, letters, table["vowels"], table["after_vowel"])
    return tables


def transliterate(text: str, lang: str) -> str:
    """The Cyrillic reading of a Latin-letter text in ``lang`` (lower-cased)."""
    pattern, letters, vowels, after_vowel = _tables()[lang]
    out: list[str] = []
    pos, last = 0, ""
    text = text.lower()
    for match in pattern.finditer(text):
        if match.start() > pos:
            out.append(text[pos:match.start()])
            last = text[match.start() - 1]
        spelling = match.group(0)
        cyrillic = after_vowel[spelling] if spelling in after_vowel and last in vowels and last else letters[spelling]
        out.append(cyrillic)
        last, pos = cyrillic[-1], match.end()
    out.append(text[pos:])
    return "".join(out)


def latin_reading(text: str, lang: str) -> str:
    """``text`` with its Cyrillic reading appended when ``lang`` is Russian or Ukrainian and
    the text has no Cyrillic letter at all (typed in Latin ones); else ``text`` itself."""
    if lang not in CYRILLIC or _CYRILLIC.search(text):
        return text
    return f"{text}\n{transliterate(text, lang)}"


def prefixes(texts: list[str], cyrillic: bool) -> list[str]:
    """The word beginnings seen at least twice in a language's texts of one script: the
    vocabulary ``triage train`` saves for :func:`detect`."""
    counts: dict[str, int] = {}
    script = _CYRILLIC if cyrillic else _LATIN
    for text in texts:
        for word in _WORD.findall(text.lower()):
            if script.match(word):
                counts[word[:PREFIX]] = counts.get(word[:PREFIX], 0) + 1
    return sorted(p for p, n in counts.items() if n >= 2)


def _share(words: list[str], known: set[str]) -> float:
    return sum(w[:PREFIX] in known for w in words) / len(words)


def detect(text: str, vocabulary: dict[str, set[str]]) -> str:
    """"ru" or "uk" when a Latin-letter text reads as that language transliterated, else ""."""
    if _CYRILLIC.search(text):
        return ""
    words = [w for w in _WORD.findall(text.lower()) if _LATIN.match(w)][:SAMPLE_WORDS]
    if len(words) < MIN_WORDS:
        return ""
    latin = max((_share(words, known) for lang, known in vocabulary.items() if lang not in _tables()),
                default=0.0)
    if latin + LEAD > 1.0:  # no Cyrillic reading could win: spare the transliteration
        return ""
    best, best_share = "", 0.0
    for lang in _tables():
        known = vocabulary.get(lang)
        if not known:
            continue
        share = _share(_WORD.findall(transliterate(" ".join(words), lang)), known)
        if share > best_share:
            best, best_share = lang, share
    return best if best_share >= MIN_SHARE and best_share >= latin + LEAD else ""


def reading(text: str, vocabulary: dict[str, set[str]], languages: tuple[str, ...]) -> tuple[str, str]:
    """(language, text to classify): a transliterated Russian or Ukrainian text is read with
    its Cyrillic reading appended (cue phrases and features of both scripts then apply);
    any other text comes back as it is, with no language."""
    found = detect(text, vocabulary) if vocabulary else ""
    if found not in languages:
        return "", text
    return found, f"{text}\n{transliterate(text, found)}"
