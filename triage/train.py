"""``triage train``: rebuild the model from the labelled examples (and agents' corrections).

The mixing of cue phrases and model (how much one cue weight counts, how much the model's
log-odds are tempered) is chosen by k-fold cross-validation on the examples, so the
figures printed are honest estimates, not accuracy on the data the model has seen.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from triage.classify import HUMAN_LABELS, Classifier, combine
from triage.lexicon import load_lexicon
from triage.model import MODEL_PATH, features, fit

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"
TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
LEXICON_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0)
UNKNOWN_BONUSES = (0.0, 0.5, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class Example:
    label: str
    subject: str
    text: str
    channel: str = "email"
    language: str = ""


def load_examples(folder: Path = EXAMPLES, extra: list[Example] | None = None) -> list[Example]:
    """Human-labelled examples (automated/* excluded: headers, not words, decide those)."""
    out: list[Example] = []
    for path in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row["label"] not in HUMAN_LABELS:
                if not row["label"].startswith("automated/"):
                    raise ValueError(f"{path}:{n}: unknown label {row['label']!r}")
                continue
            out.append(Example(row["label"], row.get("subject", ""), row["text"],
                               row.get("channel", "email"), path.stem))
    return out + list(extra or [])


def _cues(classifier: Classifier, text: str) -> dict[str, float]:
    hits = classifier.lexicon.scan(text)
    return classifier.cues(hits, classifier.signals(hits))[0]


def _best(scores: dict[str, float]) -> str:
    return max(scores, key=scores.__getitem__)


def cross_validate(examples: list[Example], classifier: Classifier, folds: int = 5,
                   seed: int = 7) -> tuple[float, float, float]:
    """Best (mean held-out accuracy, temperature, lexicon weight) over the grid.

    Cue scores do not depend on the model, and model scores do not depend on the mixing,
    so both are computed once and the grid search is arithmetic.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    texts = [f"{e.subject}\n{e.text}" for e in examples]
    cues = [_cues(classifier, t) for t in texts]
    feats = [features(t) for t in texts]
    held_scores: list[tuple[int, dict[str, float]]] = []
    for fold in range(folds):
        held = set(order[fold::folds])
        model = fit([(feats[i], examples[i].label) for i in order if i not in held])
        for i in held:
            raw, _ = model.log_scores(feats[i])
            held_scores.append((i, dict(zip(model.labels, raw))))
    best = (0.0, 1.0, 1.0, 0.0)
    for temperature in TEMPERATURES:
        for weight in LEXICON_WEIGHTS:
            for bonus in UNKNOWN_BONUSES:
                right = sum(_best(combine(cues[i], raw, weight, temperature, bonus)) == examples[i].label
                            for i, raw in held_scores)
                accuracy = right / len(held_scores)
                if accuracy > best[0]:
                    best = (accuracy, temperature, weight, bonus)
    return best


def lexicon_accuracy(examples: list[Example], classifier: Classifier) -> float:
    """How often the cue phrases alone pick the example's label."""
    right = 0
    for e in examples:
        right += _best(_cues(classifier, f"{e.subject}\n{e.text}")) == e.label
    return right / len(examples) if examples else 0.0


def train(languages: list[str], corrections: list[Example] | None = None,
          path: Path = MODEL_PATH) -> dict:
    """Fit on every example, with the mixing chosen by cross-validation; save; report."""
    examples = load_examples(extra=corrections)
    classifier = Classifier(load_lexicon(languages), None, languages)
    cv_accuracy, temperature, weight, bonus = cross_validate(examples, classifier)
    model = fit([(features(f"{e.subject}\n{e.text}"), e.label) for e in examples])
    model.temperature, model.lexicon_weight, model.unknown_bonus = temperature, weight, bonus
    model.save(path)
    return {"examples": len(examples),
            "per_language": {lang: sum(e.language == lang for e in examples)
                             for lang in sorted({e.language for e in examples})},
            "cross_validated_accuracy": round(cv_accuracy, 3),
            "lexicon_only_accuracy": round(lexicon_accuracy(examples, classifier), 3),
            "temperature": temperature, "lexicon_weight": weight, "unknown_bonus": bonus,
            "features": len(model.weights),
            "model": str(path)}
