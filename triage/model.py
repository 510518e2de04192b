"""A small naive-Bayes model over word stems, trained on the labelled examples in the repo.

It complements the cue phrases: the lexicon knows the decisive words, the model knows the
rest of the vocabulary of each intent. It is stored as JSON (``triage/data/model.json``)
so an agent can read which words pull towards which intent, and ``triage train`` rebuilds
it from ``triage/data/examples/*.jsonl`` plus the corrections agents made.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MODEL_PATH = Path(__file__).resolve().parent / "data" / "model.json"
_WORD = re.compile(r"[^\W\d_]{2,}|\d+", re.U)
STEM = 6  # a crude stem that works across the inflected languages: the word's first letters


def features(text: str) -> set[str]:
    """Stems and stem bigrams of a text, lower-cased; digits fold to '#'."""
    stems = ["#" if w.isdigit() else w[:STEM] for w in _WORD.findall(text.lower())]
    feats = set(stems)
    feats.update(f"{a}_{b}" for a, b in zip(stems, stems[1:]))
    return feats


@dataclass
class Model:
    labels: list[str]
    prior: list[float]  # log P(label)
    weights: dict[str, list[float]]  # feature -> log P(feature | label) - log P(feature | ¬label)
    temperature: float = 1.0  # divides the model's log-odds (naive Bayes is over-confident)
    lexicon_weight: float = 1.0  # how much one cue weight unit counts against the model
    unknown_bonus: float = 0.0  # cue units for "other/unknown" when no cue at all is present

    def log_scores(self, feats: set[str]) -> tuple[list[float], list[tuple[str, int, float]]]:
        """Per-label log scores (untempered) and the features that contributed
        (feature, label index, value)."""
        scores = list(self.prior)
        used: list[tuple[str, int, float]] = []
        for feat in feats:
            row = self.weights.get(feat)
            if row is None:
                continue
            for i, value in enumerate(row):
                scores[i] += value
            best = max(range(len(row)), key=row.__getitem__)
            used.append((feat, best, row[best]))
        return scores, used

    def save(self, path: Path = MODEL_PATH) -> None:
        data = {"labels": self.labels, "prior": self.prior, "temperature": self.temperature,
                "lexicon_weight": self.lexicon_weight, "unknown_bonus": self.unknown_bonus,
                "weights": {k: [round(v, 3) for v in row] for k, row in sorted(self.weights.items())}}
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Model | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text("utf-8"))
        return cls(data["labels"], data["prior"], data["weights"], data["temperature"],
                   data["lexicon_weight"], data.get("unknown_bonus", 0.0))


def fit(samples: list[tuple[set[str], str]], min_count: int = 2, alpha: float = 0.5) -> Model:
    """Multinomial naive Bayes with add-alpha smoothing, stored as one-vs-rest log-odds."""
    labels = sorted({label for _, label in samples})
    index = {label: i for i, label in enumerate(labels)}
    per_label = [Counter() for _ in labels]
    totals = Counter()
    for feats, label in samples:
        per_label[index[label]].update(feats)
        totals.update(feats)
    vocab = [f for f, n in totals.items() if n >= min_count]
    counts = Counter(label for _, label in samples)
    prior = [math.log(counts[label] / len(samples)) for label in labels]
    sizes = [sum(c[f] for f in vocab) for c in per_label]
    all_size = sum(sizes)
    weights: dict[str, list[float]] = {}
    for feat in vocab:
        row = []
        for i, c in enumerate(per_label):
            p_in = (c[feat] + alpha) / (sizes[i] + alpha * len(vocab))
            rest = totals[feat] - c[feat]
            p_out = (rest + alpha) / (all_size - sizes[i] + alpha * len(vocab))
            row.append(math.log(p_in / p_out))
        weights[feat] = row
    return Model(labels, prior, weights)
