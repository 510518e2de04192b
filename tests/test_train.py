"""`triage train`: the model is rebuilt from examples, with honest cross-validated figures."""
from __future__ import annotations

import json

import pytest

from triage.core.classify import CONTENT_AUTOMATED
from triage.core.model import Model, features, fit
from triage.desk.train import VARIANTS, Example, load_examples, train

LANGS = ["en", "sv", "uk", "ru", "de"]


def test_features_are_stems_and_bigrams():
    feats = features("Passwords expired 2026")
    assert {"passwo", "expire", "#", "passwo_expire"} <= feats


def test_fit_prefers_the_right_label():
    model = fit([(features("password reset link"), "technical/access")] * 3
                + [(features("invoice payment due"), "business/question")] * 3)
    scores, used = model.log_scores(features("my password"))
    best = model.labels[max(range(len(scores)), key=scores.__getitem__)]
    assert best == "technical/access" and used


def test_examples_cover_every_language_and_intent():
    examples = load_examples()
    assert {e.language for e in examples} == set(LANGS)
    for lang in LANGS:
        labels = {e.label for e in examples if e.language == lang}
        assert len(labels - set(CONTENT_AUTOMATED)) == 14, (lang, labels)
        assert set(CONTENT_AUTOMATED) <= labels, lang  # automatic mail by its wording too


def test_unknown_label_is_an_error(tmp_path):
    (tmp_path / "xx.jsonl").write_text(json.dumps({"label": "technical/teleport", "text": "beam me"}) + "\n")
    with pytest.raises(ValueError, match=r"xx\.jsonl:1: unknown label"):
        load_examples(tmp_path)


def test_train_saves_a_model_that_loads_and_reports_held_out_accuracy(tmp_path):
    path = tmp_path / "model.json"
    correction = Example("business/deadline", "", "kindly move the closing date of tender X to next month")
    report = train(LANGS, corrections=[correction], path=path, variants=(VARIANTS[-1],))
    model = Model.load(path)
    assert model is not None and model.labels and model.weights
    assert report["cross_validated_accuracy"] > 0.85
    assert report["examples"] == len(load_examples()) + 1
