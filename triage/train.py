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

from triage.automated import Automation
from triage.classify import HUMAN_LABELS, Classifier
from triage.lexicon import Lexicon, load_lexicon
from triage.message import Message
from triage.model import MODEL_PATH, Model, features, fit

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"
TEMPERATURES = (1.0, 2.0, 3.0, 5.0, 8.0)
LEXICON_WEIGHTS = (0.5, 1.0, 1.5, 2.5)


@dataclass(frozen=True)
class Example:
    label: str
    subject: str
    text: str
    channel: str = "email"
    language: str = ""

    def message(self) -> Message:
        return Message(channel=self.channel, id="", sender="", subject=self.subject,
                       text=self.text, new_text=self.text)


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


def _accuracy(classifier: Classifier, examples: list[Example]) -> float:
    right = 0
    for ex in examples:
        got = classifier.classify(ex.message(), Automation(), "en")
        right += got.label == ex.label
    return right / len(examples) if examples else 0.0


def cross_validate(examples: list[Example], lexicon: Lexicon, languages: list[str],
                   folds: int = 5, seed: int = 7) -> tuple[float, float, float]:
    """Best (temperature, lexicon weight) and its mean held-out accuracy."""
    shuffled = examples[:]
    random.Random(seed).shuffle(shuffled)
    chunks = [shuffled[i::folds] for i in range(folds)]
    models = []
    for i in range(folds):
        train = [ex for j, chunk in enumerate(chunks) if j != i for ex in chunk]
        models.append(fit([(features(f"{e.subject}\n{e.text}"), e.label) for e in train]))
    best = (0.0, 1.0, 1.0)
    for temperature in TEMPERATURES:
        for weight in LEXICON_WEIGHTS:
            scores = []
            for model, held in zip(models, chunks):
                model.temperature, model.lexicon_weight = temperature, weight
                scores.append(_accuracy(Classifier(lexicon, model, languages), held))
            mean = sum(scores) / folds
            if mean > best[0]:
                best = (mean, temperature, weight)
    return best


def train(languages: list[str], corrections: list[Example] | None = None,
          path: Path = MODEL_PATH) -> dict:
    """Fit on every example, with the mixing chosen by cross-validation; save; report."""
    examples = load_examples(extra=corrections)
    lexicon = load_lexicon(languages)
    cv_accuracy, temperature, weight = cross_validate(examples, lexicon, languages)
    model = fit([(features(f"{e.subject}\n{e.text}"), e.label) for e in examples])
    model.temperature, model.lexicon_weight = temperature, weight
    model.save(path)
    lexicon_only = _accuracy(Classifier(lexicon, None, languages), examples)
    per_language = {}
    for lang in sorted({e.language for e in examples}):
        subset = [e for e in examples if e.language == lang]
        per_language[lang] = len(subset)
    return {"examples": len(examples), "per_language": per_language,
            "cross_validated_accuracy": round(cv_accuracy, 3), "lexicon_only_accuracy": round(lexicon_only, 3),
            "temperature": temperature, "lexicon_weight": weight, "features": len(model.weights),
            "model": str(path)}
