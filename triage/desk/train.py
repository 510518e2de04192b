"""``triage train``: rebuild the model from the labelled examples (and agents' corrections).

Several model variants are compared by k-fold cross-validation on the examples (naive
Bayes over stems, logistic regression over stems or stems plus character n-grams, always
mixed with the cue phrases), and the winner is refitted on every example and exported. The
mixing (how much one cue weight counts, how much the model's log-odds are tempered) and
the calibration of the confidence (one temperature for the softmax, fitted on the
held-out scores) are chosen on held-out folds too, so every figure printed — accuracy,
log-loss, expected calibration error — is an honest estimate, not accuracy on seen data.

scikit-learn is imported here only: the service reads the exported weights.
"""
from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from triage import DATA
from triage.core import translit
from triage.core.classify import HUMAN_LABELS, MODEL_LABELS, Classifier, combine, softmax
from triage.core.lexicon import load_lexicon
from triage.core.model import MODEL_PATH, Model, char_grams, features, fit
from triage.core.translit import CYRILLIC, prefixes

EXAMPLES = DATA / "examples"
TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
LEXICON_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
UNKNOWN_BONUSES = (0.0, 0.5, 1.0, 2.0, 3.0)
CALIBRATIONS = tuple(round(0.2 * 1.08 ** k, 4) for k in range(60))  # 0.2 … ~19
ECE_BINS = 10
LOGISTIC_C = 20.0  # weak L2: the features are few per message and normalised
MIN_COUNT = 2  # a feature seen in one example only is noise, and weight in model.json


@dataclass(frozen=True)
class Example:
    label: str
    subject: str
    text: str
    channel: str = "email"
    language: str = ""


@dataclass(frozen=True)
class Variant:
    """One way to build the model, compared with the others by cross-validation."""

    name: str
    kind: str  # "naive_bayes" or "logistic"
    chars: tuple[int, int] | None = None


VARIANTS = (Variant("naive_bayes_stems", "naive_bayes"),
            Variant("logistic_stems", "logistic"),
            Variant("logistic_stems_chars_3_4", "logistic", (3, 4)))


def load_examples(folder: Path = EXAMPLES, extra: list[Example] | None = None) -> list[Example]:
    """Labelled examples of every ``<lang>[.<source>].jsonl`` file: people's intents, and
    body-only automatic replies and bulk mail (bounces are left to the headers and
    flufl.bounce: their wording is the MTA's, not anyone's intent)."""
    out: list[Example] = []
    for path in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row["label"] not in MODEL_LABELS:
                if row["label"] != "automated/bounce":
                    raise ValueError(f"{path}:{n}: unknown label {row['label']!r}")
                continue
            out.append(Example(row["label"], row.get("subject", ""), row["text"],
                               row.get("channel", "email"), path.name.split(".")[0]))
    return out + list(extra or [])


def _text(e: Example) -> str:
    return f"{e.subject}\n{e.text}"


def vocabulary(examples: list[Example]) -> dict[str, set[str]]:
    """Word beginnings per language, in its own script: what tells transliterated Russian
    and Ukrainian from the Latin-script languages (``triage/core/translit.py``)."""
    return {lang: set(prefixes([_text(e) for e in examples if e.language == lang], cyrillic=lang in CYRILLIC))
            for lang in sorted({e.language for e in examples})}


def readings(examples: list[Example], words: dict[str, set[str]], languages: list[str]) -> list[Example]:
    """The examples as the classifier reads them (transliterated ones with their Cyrillic reading)."""
    return [Example(e.label, "", translit.reading(_text(e), words, tuple(languages))[1], e.channel, e.language)
            for e in examples]


def _cues(classifier: Classifier, text: str) -> dict[str, float]:
    hits = classifier.lexicon.scan(text)
    return classifier.cues(hits, classifier.signals(hits))[0]


def _best(scores: dict[str, float]) -> str:
    return max(scores, key=scores.__getitem__)


def _featurize(variant: Variant) -> Callable[[str], set[str]]:
    if variant.chars is None:
        return features
    low, high = variant.chars
    return lambda text: features(text) | char_grams(text, low, high)


def fit_variant(variant: Variant, samples: list[tuple[set[str], str]]) -> Model:
    """Fit one variant; a logistic model's weights are exported per feature (sparse rows
    of the features seen at least MIN_COUNT times), so classifying needs no scikit-learn."""
    if variant.kind == "naive_bayes":
        return fit(samples)
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    counts: dict[str, int] = {}
    for feats, _ in samples:
        for f in feats:
            counts[f] = counts.get(f, 0) + 1
    vocab = {f: i for i, f in enumerate(sorted(f for f, n in counts.items() if n >= MIN_COUNT))}
    rows, cols, values = [], [], []
    for r, (feats, _) in enumerate(samples):
        scale = 1.0 / math.sqrt(len(feats)) if feats else 0.0
        for f in feats:
            if f in vocab:
                rows.append(r)
                cols.append(vocab[f])
                values.append(scale)
    matrix = csr_matrix((values, (rows, cols)), shape=(len(samples), len(vocab)))
    clf = LogisticRegression(C=LOGISTIC_C, max_iter=3000)
    clf.fit(matrix, [label for _, label in samples])
    labels = [str(label) for label in clf.classes_]
    coef = clf.coef_.T.tolist()
    weights = {f: coef[i] for f, i in vocab.items() if max(abs(v) for v in coef[i]) >= 0.005}
    return Model(labels, [float(b) for b in clf.intercept_], weights, kind="logistic",
                 chars=variant.chars, normalise=True)


def _held_out(variant: Variant, examples: list[Example], folds: int, seed: int) -> list[tuple[int, dict[str, float]]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    featurize = _featurize(variant)
    feats = [featurize(_text(e)) for e in examples]
    held_scores: list[tuple[int, dict[str, float]]] = []
    for fold in range(folds):
        held = set(order[fold::folds])
        model = fit_variant(variant, [(feats[i], examples[i].label) for i in order if i not in held])
        for i in sorted(held):
            raw, _ = model.log_scores(feats[i])
            held_scores.append((i, dict(zip(model.labels, raw))))
    return held_scores


def calibrate(mixed: list[tuple[dict[str, float], str]]) -> tuple[float, float, float, float]:
    """(temperature, log-loss, ECE before, ECE after): the softmax temperature with the
    least held-out log-loss, and the expected calibration error with and without it."""
    def nll(t: float) -> float:
        return -sum(math.log(max(softmax(s, t).get(y, 0.0), 1e-12)) for s, y in mixed) / len(mixed)
    best = min(CALIBRATIONS, key=nll)
    return best, nll(best), expected_calibration_error(mixed, 1.0), expected_calibration_error(mixed, best)


def expected_calibration_error(mixed: list[tuple[dict[str, float], str]], temperature: float) -> float:
    """Mean |accuracy − confidence| over ECE_BINS equal-width confidence bins, weighted by size."""
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(ECE_BINS)]
    for scores, label in mixed:
        probs = softmax(scores, temperature)
        top = _best(probs)
        bins[min(int(probs[top] * ECE_BINS), ECE_BINS - 1)].append((probs[top], top == label))
    return sum(abs(sum(c for c, _ in b) / len(b) - sum(ok for _, ok in b) / len(b)) * len(b)
               for b in bins if b) / len(mixed)


def cross_validate(examples: list[Example], classifier: Classifier, variant: Variant = VARIANTS[0],
                   folds: int = 5, seed: int = 7) -> dict:
    """Held-out accuracy of one variant at its best mixing, and its calibration.

    Cue scores do not depend on the model, and model scores do not depend on the mixing,
    so both are computed once and the grid search is arithmetic.
    """
    cues = [_cues(classifier, _text(e)) for e in examples]
    held_scores = _held_out(variant, examples, folds, seed)
    best = (-1.0, 1.0, 1.0, 0.0)
    for temperature in TEMPERATURES:
        for weight in LEXICON_WEIGHTS:
            for bonus in UNKNOWN_BONUSES:
                right = sum(_best(combine(cues[i], raw, weight, temperature, bonus)) == examples[i].label
                            for i, raw in held_scores)
                accuracy = right / len(held_scores)
                if accuracy > best[0]:
                    best = (accuracy, temperature, weight, bonus)
    accuracy, temperature, weight, bonus = best
    mixed = [(combine(cues[i], raw, weight, temperature, bonus), examples[i].label) for i, raw in held_scores]
    calibration, log_loss, ece_raw, ece = calibrate(mixed)
    return {"variant": variant.name, "accuracy": round(accuracy, 4), "temperature": temperature,
            "lexicon_weight": weight, "unknown_bonus": bonus, "calibration": calibration,
            "log_loss": round(log_loss, 4), "ece_uncalibrated": round(ece_raw, 4), "ece": round(ece, 4)}


def lexicon_accuracy(examples: list[Example], classifier: Classifier) -> float:
    """How often the cue phrases alone pick the example's label (people's intents only:
    automatic mail has no intent cues)."""
    human = [e for e in examples if e.label in HUMAN_LABELS]
    right = sum(_best(_cues(classifier, _text(e))) == e.label for e in human)
    return right / len(human) if human else 0.0


def train(languages: list[str], corrections: list[Example] | None = None,
          path: Path = MODEL_PATH, variants: tuple[Variant, ...] = VARIANTS) -> dict:
    """Compare the variants by cross-validation, refit the best on every example, save, report."""
    examples = load_examples(extra=corrections)
    words = vocabulary(examples)
    examples = readings(examples, words, languages)
    classifier = Classifier(load_lexicon(languages), None, languages)
    results = [(cross_validate(examples, classifier, v), v) for v in variants]
    cv, variant = max(results, key=lambda rv: (rv[0]["accuracy"], -rv[0]["log_loss"]))
    featurize = _featurize(variant)
    model = fit_variant(variant, [(featurize(_text(e)), e.label) for e in examples])
    model.temperature, model.lexicon_weight = cv["temperature"], cv["lexicon_weight"]
    model.unknown_bonus, model.calibration = cv["unknown_bonus"], cv["calibration"]
    model.vocabulary = words
    model.save(path)
    return {"examples": len(examples),
            "per_language": {lang: sum(e.language == lang for e in examples)
                             for lang in sorted({e.language for e in examples})},
            "cross_validated_accuracy": cv["accuracy"], "cross_validated_ece": cv["ece"],
            "chosen": variant.name,
            "variants": [r for r, _ in results],
            "lexicon_only_accuracy": round(lexicon_accuracy(examples, classifier), 3),
            "temperature": cv["temperature"], "lexicon_weight": cv["lexicon_weight"],
            "unknown_bonus": cv["unknown_bonus"], "calibration": cv["calibration"],
            "features": len(model.weights),
            "model": str(path)}
