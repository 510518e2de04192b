"""The statistical half of classification: a linear model over word stems and character
n-grams, trained on the labelled examples in the repo.

It complements the cue phrases: the lexicon knows the decisive words, the model knows the
rest of the vocabulary of each intent, and its character n-grams catch inflections and
typos the stems miss. ``triage train`` fits it (scikit-learn's logistic regression, or
naive Bayes when that wins the cross-validation) and exports the weights to JSON
(``triage/data/model.json``), so an agent can read which features pull towards which intent.
At run time the weights are one numpy matrix (a row per feature) and classifying is a sum
of the rows of the text's features: no scikit-learn, and a tenth of the memory and time
that rows of Python floats took.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triage import DATA

MODEL_PATH = DATA / "model.json"
_WORD = re.compile(r"[^\W\d_]{2,}|\d+", re.U)
STEM = 6  # a crude stem that works across the inflected languages: the word's first letters
CHAR_TEXT = 800  # characters read for character n-grams: the opening says what a mail is about


def features(text: str) -> set[str]:
    """Stems and stem bigrams of a text, lower-cased; digits fold to '#'."""
    stems = ["#" if w.isdigit() else w[:STEM] for w in _WORD.findall(text.lower())]
    feats = set(stems)
    feats.update(f"{a}_{b}" for a, b in zip(stems, stems[1:]))
    return feats


def _gram_words(text: str, limit: int | None) -> list[str]:
    """The lower-cased words (no numbers) of a text's first ``limit`` characters (None: all)."""
    return [w for w in _WORD.findall((text if limit is None else text[:limit]).lower()) if not w.isdigit()]


def char_gram_list(text: str, low: int, high: int, limit: int | None = CHAR_TEXT) -> list[str]:
    """Character n-grams inside words (each word padded with spaces), marked ``~``, each as
    often as it occurs, from the text's first ``limit`` characters (None: all of it)."""
    grams: list[str] = []
    for word in _gram_words(text, limit):
        padded = f" {word} "
        for n in range(low, high + 1):
            grams.extend("~" + padded[i:i + n] for i in range(len(padded) - n + 1))
    return grams


GRAM_PRIME = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so codes spread over all 64 bits


def char_gram_codes(text: str, low: int, high: int, limit: int | None = CHAR_TEXT) -> np.ndarray:
    """The n-grams of ``char_gram_list`` as 64-bit codes (the polynomial hash of 1 and the
    letters), made in numpy: a 4,000-character mail's 7,000 n-grams take an eighth of the
    time they take as Python strings. The padded words are laid end to end (" ab  cd "), and an n-gram is one of a
    word's when no space falls inside it. Distinct n-grams share a code with odds of about
    one in 10^9 for a knowledge base's 10^5 n-grams: a ranking does not notice."""
    words = _gram_words(text, limit)
    if not words:
        return np.empty(0, dtype=np.uint64)
    chars = np.frombuffer(f" {'  '.join(words)} ".encode("utf-32-le"), dtype=np.uint32)
    letter, wide = chars != ord(" "), chars.astype(np.uint64)
    codes, code, inside = [], np.ones(len(chars), dtype=np.uint64), np.ones(len(chars), dtype=bool)
    for n in range(1, min(high, len(chars)) + 1):  # the n-grams from the (n-1)-grams
        m = len(chars) - n + 1
        code = code[:m] * GRAM_PRIME + wide[n - 1:]
        # inside a word: no space at 1 … n-2, which for n adds place n-2 to the (n-1)-grams'
        inside = inside[:m] & letter[n - 2:n - 2 + m] if n >= 3 else inside[:m]
        if n >= low:
            codes.append(code[inside])
    return np.concatenate(codes) if codes else np.empty(0, dtype=np.uint64)


def char_grams(text: str, low: int, high: int) -> set[str]:
    """The distinct character n-grams of a text's opening: the classifier's features."""
    return set(char_gram_list(text, low, high))


class Weights(Mapping[str, Sequence[float]]):
    """Feature -> weight row (one float per label), held as one matrix: 50,000 features of
    16 labels as rows of Python floats took 40 MiB and a Python loop to sum."""

    def __init__(self, rows: Mapping[str, Sequence[float]], width: int):
        self.columns = {feat: i for i, feat in enumerate(rows)}
        self.matrix = np.array(list(rows.values()), dtype=np.float64).reshape(len(rows), width)

    def __getitem__(self, feat: str) -> Sequence[float]:
        return self.matrix[self.columns[feat]].tolist()

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


@dataclass
class Known:
    """The features of a text that the model has weights for, and their rows."""

    features: list[str]
    rows: np.ndarray

    def __bool__(self) -> bool:
        return bool(self.features)


@dataclass
class Model:
    labels: list[str]
    prior: list[float]  # log P(label)
    weights: Mapping[str, Sequence[float]]  # feature -> log P(feature | label) - log P(feature | ¬label)
    temperature: float = 1.0  # divides the model's log-odds (naive Bayes is over-confident)
    lexicon_weight: float = 1.0  # how much one cue weight unit counts against the model
    unknown_bonus: float = 0.0  # cue units for "other/unknown" when no cue at all is present
    kind: str = "naive_bayes"  # or "logistic": which trainer made the weights
    chars: tuple[int, int] | None = None  # character n-gram sizes, None for stems only
    normalise: bool = False  # a linear model sees each feature as 1/sqrt(feature count)
    calibration: float = 1.0  # divides the mixed scores before the softmax (fit on held-out data)
    vocabulary: dict[str, set[str]] = field(default_factory=dict)  # word beginnings per language
    table: Weights = field(init=False, repr=False)  # the weights as the hot path reads them

    def __post_init__(self) -> None:
        self.table = self.weights if isinstance(self.weights, Weights) else Weights(self.weights, len(self.labels))
        self.weights = self.table  # one copy: the rows of floats given are not kept

    def featurize(self, text: str) -> set[str]:
        """The features this model was trained on."""
        feats = features(text)
        if self.chars:
            feats |= char_grams(text, *self.chars)
        return feats

    def log_scores(self, feats: set[str]) -> tuple[list[float], Known]:
        """Per-label log scores (untempered) and the known features with their weight rows."""
        columns = self.table.columns
        known = [feat for feat in feats if feat in columns]
        rows = np.fromiter((columns[feat] for feat in known), dtype=np.int64, count=len(known))
        if not known:
            return list(self.prior), Known(known, rows)
        scale = 1.0 / math.sqrt(len(feats)) if self.normalise else 1.0
        sums = self.table.matrix[rows].sum(axis=0)
        return [p + scale * float(total) for p, total in zip(self.prior, sums)], Known(known, rows)

    def strongest(self, known: Known, label: str, n: int) -> list[tuple[str, float]]:
        """The n features that pull hardest towards ``label``: the evidence an agent reads."""
        if not known:
            return []
        i = self.labels.index(label) if label in self.labels else 0
        column = self.table.matrix[known.rows, i]
        top = np.argsort(-column, kind="stable")[:n]
        return [(known.features[j], float(column[j])) for j in top if column[j] > 0]

    def save(self, path: Path = MODEL_PATH) -> None:
        data = {"kind": self.kind, "labels": self.labels, "prior": self.prior,
                "temperature": self.temperature, "lexicon_weight": self.lexicon_weight,
                "unknown_bonus": self.unknown_bonus, "calibration": self.calibration,
                "chars": list(self.chars) if self.chars else None, "normalise": self.normalise,
                "vocabulary": {lang: sorted(words) for lang, words in sorted(self.vocabulary.items())},
                "weights": {k: [round(float(v), 3) for v in row] for k, row in sorted(self.weights.items())}}
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Model | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text("utf-8"))
        chars = data.get("chars")
        return cls(data["labels"], data["prior"], data["weights"], data["temperature"],
                   data["lexicon_weight"], data.get("unknown_bonus", 0.0), data.get("kind", "naive_bayes"),
                   tuple(chars) if chars else None, data.get("normalise", False),
                   data.get("calibration", 1.0),
                   {lang: set(words) for lang, words in data.get("vocabulary", {}).items()})


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
