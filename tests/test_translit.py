"""Russian and Ukrainian typed in Latin letters are recognised and read like Cyrillic.

The sentences are written for these tests (not taken from any evaluation set), in the
mixed spelling schemes people use (j or y for й, h or kh for х, c or ts for ц).
"""
from __future__ import annotations

import pytest

from triage.core.automated import Automation
from triage.core.classify import Classifier
from triage.core.lexicon import load_lexicon
from triage.core.message import Message
from triage.core.model import Model
from triage.core.translit import detect, transliterate

LANGS = ["en", "sv", "uk", "ru", "de"]
MODEL = Model.load()
CLASSIFIER = Classifier(load_lexicon(LANGS), MODEL, LANGS)


def _cls(text: str):
    msg = Message(channel="widget", id="t", sender="x@y.se", subject="", text=text, new_text=text)
    return CLASSIFIER.classify(msg, Automation(), "en")


def test_transliteration_tables():
    assert transliterate("Zdravstvuyte, moy parol ne rabotaet", "ru") == "здравствуйте, мой парол не работает"
    assert transliterate("shcho robyty z paroliem", "uk").startswith("що робити з")


@pytest.mark.parametrize("text, lang", [
    ("Dobryy den, ya ne mogu voyti v lichnyy kabinet, parol ne podhodit", "ru"),
    ("Zdravstvujte, kogda budet izvestno, kto vyigral tender po dostavke?", "ru"),
    ("Dobryi den, ne mozhu uviity v kabinet, parol ne pidkhodyt, shcho robyty?", "uk"),
])
def test_transliterated_slavic_is_detected(text, lang):
    assert MODEL is not None and detect(text, MODEL.vocabulary) == lang
    assert _cls(text).language == lang


@pytest.mark.parametrize("text", [
    "Hello, I cannot sign in to the portal since this morning, please help",
    "Hej, jag kan inte logga in i portalen sedan i morse",
    "Guten Tag, ich kann mich seit heute früh nicht mehr anmelden",
    "Dear support, our invoice number 2290 was paid twice, can you check?",
    "Не могу войти, пароль не подходит",
])
def test_other_texts_are_left_alone(text):
    assert MODEL is not None and detect(text, MODEL.vocabulary) == ""


def test_transliterated_text_is_classified_like_cyrillic():
    cls = _cls("Zdravstvujte, ne mogu voyti v sistemu, parol ne podhodit, pomogite pozhalujsta")
    assert (cls.language, cls.label) == ("ru", "technical/access")
