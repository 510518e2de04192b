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

DATA = Path(__file__).resolve().parent / "data" / "lexicon"


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


class Lexicon:
    """All cues of all loaded languages, compiled into one alternation per label.

    One regex per label (not per cue) keeps matching fast: the regex engine scans the text
    once per label, and the named group that matched says which cue it was.
    """

    def __init__(self, cues: list[Cue]):
        self.cues = cues
        self._compiled: list[tuple[str, re.Pattern[str], list[Cue]]] = []
        by_label: dict[str, list[Cue]] = {}
        for cue in cues:
            by_label.setdefault(cue.label, []).append(cue)
        for label, group in sorted(by_label.items()):
            alternation = "|".join(f"(?P<c{i}>{c.pattern})" for i, c in enumerate(group))
            self._compiled.append((label, re.compile(rf"(?<!\w)(?:{alternation})", re.I), group))

    @property
    def labels(self) -> list[str]:
        return [label for label, _, _ in self._compiled]

    def scan(self, text: str, prefix: str = "") -> list[Hit]:
        """Every cue occurrence in ``text`` whose label starts with ``prefix``."""
        hits = []
        for label, regex, group in self._compiled:
            if not label.startswith(prefix):
                continue
            for match in regex.finditer(text):
                cue = group[int(match.lastgroup[1:])]  # type: ignore[index]
                hits.append(Hit(label, cue.language, match.group(0), cue.weight))
        return hits


def _cues_of(language: str, table: dict, prefix: str, source: Path) -> list[Cue]:
    cues = []
    for label, patterns in table.items():
        if not isinstance(patterns, dict):
            raise ValueError(f"{source}: [{prefix}{label}] must be a table of pattern = weight")
        for pattern, weight in patterns.items():
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{source}: [{prefix}{label}] bad pattern {pattern!r}: {e}") from None
            if re.compile(pattern).groups:
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


def load_lexicon(languages: list[str] | None = None, folder: Path = DATA) -> Lexicon:
    """Load the given languages (all files when None). A message in one language often
    quotes another, so every configured language's cues are applied to every message."""
    cues: list[Cue] = []
    for path in sorted(folder.glob("*.toml")):
        if languages is None or path.stem in languages:
            cues.extend(load_language(path))
    return Lexicon(cues)
