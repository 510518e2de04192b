"""The cue index must find exactly what trying every cue at every word start finds."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.core.lexicon import _CANDIDATE, FOLDER, Cue, Lexicon, load_language, load_lexicon

LEXICON = load_lexicon()
_BRUTE = [(c, re.compile(c.pattern, re.I)) for c in LEXICON.cues]


def brute_force(text: str) -> set[tuple[str, int]]:
    """(label, start) of every cue that matches at a word start: the slow, obvious way."""
    found = set()
    for start in _CANDIDATE.finditer(text):
        for cue, regex in _BRUTE:
            if regex.match(text, start.start()):
                found.add((cue.label, start.start()))
    return found


def indexed(text: str) -> set[tuple[str, int]]:
    found = set()
    hits = LEXICON.scan(text)
    # scan reports matched text, not positions: recover positions by re-matching at word starts
    for start in _CANDIDATE.finditer(text):
        for hit in hits:
            if text.startswith(hit.text, start.start()):
                found.add((hit.label, start.start()))
    return found


SAMPLES = [
    "I cannot log in, the password reset link never arrives. Please help!",
    "Здравствуйте! Не могу войти в личный кабинет, пароль не подходит. Аукцион закрывается через 5 минут",
    "Hej! Inbjudan har gått ut, kan ni skicka en ny? Auktionen stänger om 10 minuter.",
    "Guten Tag, bitte verlängern Sie die Angebotsfrist um 2 Wochen. Mit freundlichen Grüßen",
    "Добрий день, підкажіть, будь ласка, як прикріпити сертифікат? Торги закінчуються о 14:30",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_index_finds_what_brute_force_finds(text):
    assert {label for label, _ in indexed(text)} == {label for label, _ in brute_force(text)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(SAMPLES + ["RFQ-2291", "10:45", "  ", "\n> quoted", "ÅÄÖ åäö", "ß", "'"]),
                min_size=1, max_size=6))
def test_index_agrees_on_mixed_texts(parts):
    text = " ".join(parts)
    assert {label for label, _ in indexed(text)} == {label for label, _ in brute_force(text)}


def test_every_language_file_loads_and_patterns_have_no_capturing_groups():
    for path in sorted(FOLDER.glob("*.toml")):
        cues = load_language(path)
        assert cues, path
        assert all(re.compile(c.pattern).groups == 0 for c in cues)


def test_bad_pattern_is_a_clear_error(tmp_path):
    bad = tmp_path / "xx.toml"
    bad.write_text("[intents.\"technical/access\"]\n'pass(word' = 2\n")
    with pytest.raises(ValueError, match=r"xx\.toml.*bad pattern"):
        load_language(bad)
    capturing = tmp_path / "yy.toml"
    capturing.write_text("[intents.\"technical/access\"]\n'(pass)word' = 2\n")
    with pytest.raises(ValueError, match=r"must use \(\?:"):
        load_language(capturing)


def test_longest_cue_wins_at_one_position():
    lex = Lexicon([Cue("x/y", "en", "pass", 1.0), Cue("x/y", "en", "password reset", 3.0)])
    assert [h.weight for h in lex.scan("my password reset fails")] == [3.0]


def test_cue_that_can_begin_anywhere_is_still_found():
    lex = Lexicon([Cue("x/y", "en", r"\w+ing fails", 2.0)])
    assert [h.text for h in lex.scan("the uploading fails")] == ["uploading fails"]
