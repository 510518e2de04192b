"""Category, intent, language, priority and confidence, with the evidence behind them.

Two transparent sources vote: weighted cue phrases (``triage/core/lexicon.py``, data per
language) and a linear model over word stems and character n-grams (``triage/core/model.py``). Their scores are
added on one log scale (the mixing weight is chosen by ``triage train`` by
cross-validation) and a softmax turns them into a confidence. Header-based automation
facts (``triage/core/automated.py``) outrank both. The evidence list says which cue or word
decided, so an agent can see why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from triage.core import translit
from triage.core.automated import Automation
from triage.core.lexicon import Hit, Lexicon
from triage.core.message import Message
from triage.core.model import Model
from triage.core.subjects import REPLIED, TAG, strip_prefixes
from triage.core.translit import CYRILLIC

INTENTS = {
    "technical": ("access", "bug", "howto", "bidding_urgent"),
    "account": ("invitation", "new_user", "reactivation", "access_change", "data_change"),
    "business": ("question", "deadline", "confidential"),
    "feedback": ("feature_request",),
    "automated": ("auto_reply", "bounce", "bulk"),
    "other": ("unknown",),
}
HUMAN_LABELS = [f"{c}/{i}" for c, intents in INTENTS.items() if c != "automated" for i in intents]
# The model also learns automatic mail by its wording (newsletters, marketing, out-of-office
# bodies without headers); bounces are left to the headers and flufl.bounce.
CONTENT_AUTOMATED = ["automated/auto_reply", "automated/bulk"]
MODEL_LABELS = HUMAN_LABELS + CONTENT_AUTOMATED
UNKNOWN = "other/unknown"
URGENT = "technical/bidding_urgent"
SIGNAL_MIN = 2.0
LANGUAGE_SAMPLE = 400  # characters: plenty for lingua, and the cost grows with the length
URGENCY_BONUS = 2.0
NO_MODEL_UNKNOWN_BONUS = 0.5
_MIN_NEW_TEXT = 12  # shorter "new text" means the splitter cut too much: read the whole body
REPLY_OWN_WORDS = 25  # an answer in a thread this long says what it is about without its subject
THANKS_WORDS = 60  # a thank-you note is short; a longer text says something more
THANKS_CONFIDENCE = 0.9
THANKS_NEW_REQUEST = 5.0  # cue weight of one clear request: "solved, thanks — and I need access for Jan"
RULES = {
    "classify-thanks-only": "a reply that only thanks (the problem is solved, nothing new is asked) is not a "
                            "new request, whatever the subject and the quoted answer below it are about",
}


@dataclass
class Classification:
    category: str
    intent: str
    language: str
    priority: str
    confidence: float
    evidence: list[str] = field(default_factory=list)
    signals: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)  # ids of the reading rules that set the label

    @property
    def label(self) -> str:
        return f"{self.category}/{self.intent}"


@lru_cache(maxsize=8)
def _detector(languages: tuple[str, ...]) -> LanguageDetector:
    known = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in languages]
    return LanguageDetectorBuilder.from_languages(*known).build()


def detect_language(text: str, languages: tuple[str, ...], default: str) -> str:
    """ISO 639-1 code of the text among the configured languages (lingua), else ``default``."""
    if len(languages) == 1:
        return languages[0]
    letters = sum(ch.isalpha() for ch in text[:400])
    if letters < 2:
        return default
    found = _detector(languages).detect_language_of(text[:LANGUAGE_SAMPLE])
    return found.iso_code_639_1.name.lower() if found else default


def reading_text(msg: Message) -> str:
    """What the classifier reads: the subject without reply prefixes and tags, and the new
    text. An answer in a thread that says enough of its own is read without the subject,
    which names the thread's first topic ("Re: cannot log in" over "thanks, that works; how
    do I export the auction protocol?")."""
    own = len(msg.new_text.split()) >= REPLY_OWN_WORDS and REPLIED.match(msg.subject)
    subject = "" if own else TAG.sub(" ", strip_prefixes(TAG.sub(" ", msg.subject)).strip())
    body = msg.new_text if len(msg.new_text.strip()) >= _MIN_NEW_TEXT else (msg.text or msg.new_text)
    return f"{subject.strip()}\n{body.strip()}"


def _sum_hits(hits: list[Hit]) -> dict[str, float]:
    """Weight per label, each distinct cue text counted once (repetition is not evidence)."""
    seen: set[tuple[str, str]] = set()
    totals: dict[str, float] = {}
    for hit in hits:
        key = (hit.label, hit.text.lower())
        if key in seen:
            continue
        seen.add(key)
        totals[hit.label] = totals.get(hit.label, 0.0) + hit.weight
    return totals


def softmax(scores: dict[str, float], temperature: float = 1.0) -> dict[str, float]:
    """Probabilities from log-scale scores; the temperature is the calibration ``triage
    train`` fitted on held-out folds, so a confidence of 0.9 is right about 9 times in 10."""
    top = max(scores.values())
    exps = {k: math.exp((v - top) / temperature) for k, v in scores.items()}
    total = sum(exps.values())
    return {k: v / total for k, v in exps.items()}


class Classifier:
    """Holds the compiled lexicon, the model and the language detector for a configuration."""

    def __init__(self, lexicon: Lexicon, model: Model | None, languages: list[str]):
        self.lexicon = lexicon
        self.model = model
        self.languages = tuple(languages)

    @staticmethod
    def signals(hits: list[Hit]) -> dict[str, list[str]]:
        """Signals whose cues weigh at least SIGNAL_MIN together (a bare "10:12" is not
        time pressure; "closes at 10:12" is)."""
        hits = [h for h in hits if h.label.startswith("signal:")]
        totals = _sum_hits(hits)
        found: dict[str, list[str]] = {}
        for hit in hits:
            if totals[hit.label] >= SIGNAL_MIN:
                found.setdefault(hit.label.removeprefix("signal:"), []).append(hit.text)
        return found

    def classify(self, msg: Message, automation: Automation, default_language: str) -> Classification:
        text = reading_text(msg)
        language_text = msg.new_text if len(msg.new_text.strip()) >= 20 else text
        language = detect_language(language_text, self.languages, default_language)
        if self.model is not None and language not in CYRILLIC:
            slavic, text = translit.reading(text, self.model.vocabulary, self.languages)
            language = slavic or language  # Russian or Ukrainian in Latin letters
        hits = self.lexicon.scan(text)
        signals = self.signals(hits)
        if automation.kind:
            return Classification("automated", automation.kind, language, "low", 0.99,
                                  [f"rule:{r}" for r in automation.reasons], signals)
        thanks = self.thanks_only(msg) if "gratitude" in signals else []
        if thanks:
            return Classification("other", "unknown", language, "normal", THANKS_CONFIDENCE,
                                  ["rule:classify-thanks-only", *thanks], signals, rules=["classify-thanks-only"])
        scores, evidence = self._score(text, hits, signals)
        probs = softmax(scores, self.model.calibration if self.model else 1.0)
        label = max(probs, key=probs.__getitem__)
        if any(h.label == "auto:person_again" for h in hits):
            # A person's words about their own auto-reply ("forget my auto-reply, I am back:
            # …") are a person writing, whatever the autoresponder's subject says.
            label = max((k for k in probs if not k.startswith("automated/")), key=probs.__getitem__)
        elif label == "automated/auto_reply" and not any(h.label.startswith("auto:auto_reply") for h in hits):
            # An out-of-office needs real evidence: its own wording, not just a short
            # friendly text ("back from holiday, I can't log in" is a person).
            label = max((k for k in probs if k != label), key=probs.__getitem__)
        category, intent = label.split("/")
        priority = "urgent" if label == URGENT else "low" if category == "automated" else "normal"
        top_evidence = [e for e in evidence if e.startswith(f"{label} ")] or evidence[:3]
        return Classification(category, intent, language, priority, round(probs[label], 3),
                              top_evidence[:8], signals,
                              {k: round(v, 3) for k, v in sorted(probs.items(), key=lambda kv: -kv[1])[:4]})

    def thanks_only(self, msg: Message) -> list[str]:
        """The evidence that the new text only thanks, or nothing. Read without the subject
        and the quoted history, which still speak of the solved problem: thanks with no
        question, no "still"/"but", and either the problem said to be solved (then only a
        clear new request outweighs it, and the words saying it is solved are no request)
        or no request of any intent in the new text."""
        new = msg.new_text.strip()
        if not new or "?" in new or len(new.split()) > THANKS_WORDS:
            return []
        hits = self.lexicon.scan(new)
        found = self.signals(hits)
        if "gratitude" not in found or "persisting" in found:
            return []
        if "resolved" in found:  # "the new invitation arrived" says it is solved, and asks for no invitation
            rest = new
            for said in found["resolved"]:
                rest = rest.replace(said, " ")
            hits = self.lexicon.scan(rest)
        asks = max(_sum_hits([h for h in hits if ":" not in h.label and h.label != UNKNOWN]).values(), default=0.0)
        if asks >= (THANKS_NEW_REQUEST if "resolved" in found else SIGNAL_MIN):
            return []
        return [f"signal gratitude '{found['gratitude'][0]}'"] + [f"signal resolved '{t}'" for t in found.get("resolved", [])[:1]]

    @staticmethod
    def cues(hits: list[Hit], signals: dict[str, list[str]]) -> tuple[dict[str, float], list[str]]:
        """Cue weight per intent, with the urgency gate applied, and the evidence lines."""
        totals = _sum_hits([h for h in hits if ":" not in h.label])
        scores = {label: totals.get(label, 0.0) for label in MODEL_LABELS}
        evidence = [f"{h.label} cue '{h.text}' ({h.language}, {h.weight:+g})"
                    for h in sorted(hits, key=lambda h: -h.weight) if h.label in scores]
        # A live auction with minutes left is the one emergency; urgent words alone are not.
        if "live_bidding" in signals and "time_pressure" in signals and "no_rush" not in signals:
            scores[URGENT] += URGENCY_BONUS
            evidence.insert(0, f"{URGENT} signals live_bidding + time_pressure")
        else:
            scores[URGENT] = -math.inf
        return scores, evidence

    def _score(self, text: str, hits: list[Hit],
               signals: dict[str, list[str]]) -> tuple[dict[str, float], list[str]]:
        cues, evidence = self.cues(hits, signals)
        if self.model is None:
            human = {label: value for label, value in cues.items() if label in HUMAN_LABELS}
            return combine(human, {}, 1.0, 1.0, NO_MODEL_UNKNOWN_BONUS), evidence
        raw, known = self.model.log_scores(self.model.featurize(text))
        scores = combine(cues, dict(zip(self.model.labels, raw)), self.model.lexicon_weight,
                         self.model.temperature, self.model.unknown_bonus)
        top = max(scores, key=scores.__getitem__)
        evidence += [f"{top} {'chars' if feat.startswith('~') else 'word'} '{feat.removeprefix('~').strip()}' "
                     f"({value:+.2f})" for feat, value in self.model.strongest(known, top, 6)]
        return scores, evidence


def combine(cues: dict[str, float], model: dict[str, float], weight: float, temperature: float,
            unknown_bonus: float) -> dict[str, float]:
    """One log scale: cue weights times ``weight`` plus the model's log-odds over
    ``temperature``. When no cue of any intent is present, "not sure" gets ``unknown_bonus``
    (in cue units): words alone are weak evidence, and an agent should look."""
    scores = {label: weight * value + model.get(label, 0.0) / temperature for label, value in cues.items()}
    if not any(value > 0 for value in cues.values()):
        scores[UNKNOWN] += weight * unknown_bonus
    return scores
