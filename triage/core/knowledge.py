"""A tenant's help articles, and the one that answers a message (or none).

Articles are Markdown files with TOML front matter between ``+++`` lines (``title``,
``url``, ``language``, optional ``id``, ``intents``, ``keywords``, ``questions``,
``not_answered``), one folder per tenant (the tenant key ``knowledge_base``). They are
validated when the configuration loads, like every other setting, and indexed per process
twice, with no network and no model download:

- by character n-grams (3–4 letters within words; TF-IDF with sublinear
  term frequency, cosine), which rank: suppliers describe a symptom in their own words, and
  n-grams match a compound ("Benachrichtigungseinstellungen"), an inflected or misspelt
  word, and Ukrainian, which has no stemmer; an article's example ``questions`` (how requesters
  ask for it) are documents of their own, so a question in other words meets one asked alike,
  and its ``not_answered`` ones (next to its topic, in no article) keep a near miss from being sent;
- by word stems ranked with BM25 exactly as SQLite FTS5's ``bm25()`` ranks them, which must
  agree before an article is offered to a requester: two different views choosing the same
  article is what makes it safe to send.

Both are sparse matrices in numpy (``Postings``), and a message's n-grams are made in numpy
too (``char_gram_codes``): with 500 articles, FTS5's ``bm25()`` and the n-grams as Python
strings had cost 2.2 ms of a message's 3.3.

Suggesting a wrong article is worse than suggesting none: a supplier who is sent to
"Resetting your password" when the bid button is broken loses time and trust. So a match
must clear thresholds on both, and the first rule below decides whether articles are
offered at all, each with an id for the ticket's reasons. Agents see the n-gram ranking
with a lower bar: they choose before anything is sent.
"""
from __future__ import annotations

import json
import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import snowballstemmer

from triage.core.lexicon import fold
from triage.core.model import char_gram_codes

RULES = {
    "kb-suggested": "help articles matching the question are offered with the acknowledgement",
    "kb-suggested-for-intent": "the request is passed on to a person (the company or an agent), and the article the "
                               "tenant wrote for exactly this kind of request is offered with the notice",
    "kb-suggested-with-decline": "support declines to make the change, which the requester can make themselves: the "
                                 "article the tenant wrote for exactly this kind of request is offered with the "
                                 "decline (how to change one's own quote, or have the company's administrator add a "
                                 "colleague)",
    "kb-no-match": "no article clears the score threshold: none is offered (no article beats a wrong one)",
    "kb-not-answered": "the question is at least as near to one the help articles list as not answered as to the "
                       "nearest of the best article's example questions: none is offered (a feature next to an "
                       "article's topic is in no article)",
    "kb-not-for-automated": "automatic mail gets no reply, so no articles",
    "kb-not-for-category": "business, confidential, feedback and unclear messages get no articles: one could mislead",
    "kb-not-for-decision": "the decision does or refuses something (a renewal, a business redirect, a request for a "
                           "verified channel, a decline that leaves the requester nothing to do themselves), or "
                           "neither answers nor passes the request on: an article could contradict it",
    "kb-solved": "the visitor said a suggested article solved the problem: the ticket is resolved",
    "kb-not-solved": "the visitor said the suggested articles did not solve the problem: the ticket stays open",
}
ARTICLE_KEYS: dict[str, tuple[type, bool]] = {  # key -> (type, required)
    "id": (str, False), "title": (str, True), "url": (str, True), "language": (str, True),
    "intents": (list, False), "keywords": (list, False), "questions": (list, False), "not_answered": (list, False),
}
# Categories whose questions a help article can answer; the others get none (rule ids above).
HELPFUL = ("technical", "account")
OFFERED_RULES = ("kb-suggested", "kb-suggested-for-intent", "kb-suggested-with-decline")  # articles went out
HELPFUL_ACTIONS = ("acknowledge", "guide_self_service")
# A request passed on to a person: an article answers it only if the tenant tagged it with the
# request's very intent (the expired-invitation article for an invitation relayed to the company).
PASSED_ON_ACTIONS = ("relay_to_company", "hold_for_review")
MISLEADING_ACTIONS = ("renew_invitation", "request_verified_channel", "decline", "redirect_business", "suppress")
# Declines that leave the requester something to do themselves (support does not edit a submitted
# quote or grant a role, but the supplier can change the quote, and their administrator add the
# colleague): the article tagged with the request's very intent goes with them. The others (other
# suppliers' data, deadlines, new accounts, high-importance settings) get none.
SELF_SERVICE_DECLINES = ("data_change", "special_access")

_WORD = re.compile(r"[^\W\d_]{2,}|\d{2,}", re.U)
# Snowball stemmers by ISO 639-1 code; a language without one (Ukrainian) keeps a word's first
# letters, as the classifier's model does.
SNOWBALL = {"en": "english", "sv": "swedish", "de": "german", "ru": "russian", "da": "danish",
            "nb": "norwegian", "fi": "finnish", "nl": "dutch", "fr": "french", "es": "spanish",
            "it": "italian", "pt": "portuguese", "pl": "polish", "lt": "lithuanian"}
PREFIX = 6
MAX_QUERY_TERMS = 60  # a long mail's first distinct stems are plenty, and bound the query's cost
MAX_QUERY_CHARS = 4000  # and its first characters the n-gram query's
WEIGHTS = (6.0, 4.0, 1.0, 1.0)  # BM25 column weights: title, keywords, questions, body (chosen below)
# n-gram sizes: the classifier's 3–5 gathered a third more postings, for 592 right first articles
# and 31 wrong on thirteen sets through the pipeline where 3–4 gave 595 and 28 (thresholds fixed)
GRAMS = (3, 4)
# A column in this share of the documents or more is held dense: with 500 articles, an eighth rather
# than a quarter made the similarities 15-25% faster for 5 MB more (measured side by side)
DENSE_SHARE = 1 / 8
TITLE_REPEAT, KEYWORDS_REPEAT = 3, 2  # the same emphasis in the n-gram index: the words repeated
INTENT_BOOST = 1.2  # an article tagged with the classified intent counts this much more
# Chosen on three question sets by authors who did not write the articles (tests/data/
# kb_questions.jsonl, kb_questions2.jsonl, kb_questions3.jsonl, see bench/kb.py), with the example
# tenant's example questions in place, for the most right first articles less twice the wrong
# ones (a wrong article costs more than a right one gains): the best article's n-gram similarity
# must reach MIN_SIMILARITY, and the stems' BM25
# ranking (score divided by the square root of the query's distinct stems) must put the same
# article first with at least MIN_SCORE. A question that shares an article's words but asks what
# it does not cover ("can I get the codes by SMS instead?") is kept from it when it is at least as
# near to a ``not_answered`` question as to the nearest of the article's example questions:
# question against question, both kinds weighed in one index, since a long mail is as far from
# every short question and nearer to the article's body. The not-answered question may be any
# article's: each lists what is next to its own topic, but what none covers ("download all the
# documents at once", listed under the documents article) comes near other articles too (the
# attachments article). Through the whole pipeline on the eleven sets, with the thresholds fixed,
# any article's list gave 497 right first articles and 24 wrong, the best article's own 507 and
# 38 (bench/kb.py; the eleventh set was scored blind before). A rule that the best article lead
# the next by 5% (with 3–5 letter n-grams it had helped) cost right articles and no wrong ones
# once the n-grams were 3–4 letters long: 150 and 4 on the three sets without it, 146 and 4 with it.
MIN_SIMILARITY = 0.275
MIN_SCORE = 6.0
OTHER_LANGUAGE_SIMILARITY = 0.4  # an article in another language must be this clearly right
AGENT_MIN_SIMILARITY = 0.12  # agents see weaker matches too: they choose before anything is sent


class ArticleError(ValueError):
    """An article file is malformed: the message names the file and the key."""


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    url: str
    language: str
    intents: tuple[str, ...]
    keywords: tuple[str, ...]
    questions: tuple[str, ...]  # how requesters ask for it, in their words (matched question to question)
    not_answered: tuple[str, ...]  # questions next to its topic that no article answers
    body: str
    source: Path


@dataclass(frozen=True)
class Suggestion:
    article: Article
    score: float


@dataclass
class Suggestions:
    """The articles offered for one message (maybe none) and the rule id that says why."""

    rule: str
    articles: list[Suggestion] = field(default_factory=list)


@dataclass
class Likeness:
    """How like a text each article file is, and the nearest question no article answers (NaN
    where there is no question of the kind in the text's language)."""

    best: np.ndarray  # per file, the better of the article itself and its nearest example question
    asked: np.ndarray  # per file, its nearest example question
    unanswered: float  # the nearest question any article lists as not answered


@lru_cache(maxsize=None)
def _stemmer(language: str) -> snowballstemmer.basestemmer.BaseStemmer | None:
    name = SNOWBALL.get(language)
    return snowballstemmer.stemmer(name) if name else None


@lru_cache(maxsize=65536)
def _stem(word: str, language: str) -> str:
    """One case-folded word's stem (Snowball, else its first letters) without accents (é → e,
    й → и), so a missing diacritic still matches; memoised, as words repeat across mail."""
    stemmer = _stemmer(language)
    stem = stemmer.stemWord(word) if stemmer else word[:PREFIX]
    return "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))


def terms(text: str, language: str) -> list[str]:
    """Stems of a text in a language."""
    return [_stem(w, language) for w in _WORD.findall(text.casefold())]


def _slug(text: str) -> str:
    """A file-name-safe id: ``"Resetting your password"`` -> ``resetting-your-password``."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    words = re.findall(r"\w+", "".join(c for c in folded if not unicodedata.combining(c)))
    return "-".join(words)[:60].strip("-")


def split_front_matter(path: Path, text: str) -> tuple[dict[str, Any], str]:
    """An article file's TOML front matter, parsed, and the text after its closing ``+++``
    line as it is written (what ``triage kb learn`` writes back untouched)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "+++":
        raise ArticleError(f"{path}: must start with a '+++' line and TOML front matter")
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "+++")
    except StopIteration:
        raise ArticleError(f"{path}: the front matter has no closing '+++' line") from None
    try:
        meta = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as e:
        raise ArticleError(f"{path}: front matter is not valid TOML: {e}") from None
    return meta, "".join(text.splitlines(keepends=True)[end + 1:])


def front_matter(meta: dict[str, Any]) -> str:
    """``+++`` TOML front matter ``+++`` in the order of ARTICLE_KEYS, a list one item per line
    (JSON strings are TOML basic strings): what an import and ``triage kb learn`` write."""
    lines = ["+++"]
    for key in ARTICLE_KEYS:
        value = meta.get(key)
        if isinstance(value, list):
            items = "".join(f"  {json.dumps(v, ensure_ascii=False)},\n" for v in value)
            lines.append(f"{key} = [\n{items}]" if value else f"{key} = []")
        elif value is not None:
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines + ["+++"]) + "\n"


def parse_article(path: Path, text: str, languages: list[str]) -> Article:
    """One article file: ``+++`` TOML front matter ``+++`` then the Markdown body."""
    meta, rest = split_front_matter(path, text)
    for key in meta:
        if key not in ARTICLE_KEYS:
            raise ArticleError(f"{path}: unknown key {key!r} (known: {', '.join(ARTICLE_KEYS)})")
    for key, (kind, required) in ARTICLE_KEYS.items():
        if key not in meta:
            if required:
                raise ArticleError(f"{path}: missing key {key!r}")
            continue
        if not isinstance(meta[key], kind) or (kind is list and not all(isinstance(v, str) for v in meta[key])):
            raise ArticleError(f"{path}: key {key!r} must be {'a list of strings' if kind is list else 'a string'}")
    if meta["language"] not in languages:
        raise ArticleError(f"{path}: key 'language' must be one of {languages}, not {meta['language']!r}")
    if not re.match(r"^https?://[^\s/]+", meta["url"]):
        raise ArticleError(f"{path}: key 'url' must be an http(s) address, not {meta['url']!r}")
    for intent in meta.get("intents", []):
        if not re.fullmatch(r"[a-z]+/[a-z_]+", intent):
            raise ArticleError(f"{path}: key 'intents' must hold category/intent labels, not {intent!r}")
    if not meta["title"].strip():
        raise ArticleError(f"{path}: key 'title' must not be empty")
    # without an id, the file's name is it, less a language suffix: x.en.md and x.sv.md are one article
    default = path.stem.removesuffix(f".{meta['language']}")
    return Article(id=meta.get("id", default), title=" ".join(meta["title"].split()), url=meta["url"],
                   language=meta["language"], intents=tuple(meta.get("intents", [])),
                   keywords=tuple(meta.get("keywords", [])), questions=tuple(meta.get("questions", [])),
                   not_answered=tuple(meta.get("not_answered", [])),
                   body="\n".join(rest.splitlines()).strip(), source=path)


def load_articles(folder: Path, languages: list[str]) -> list[Article]:
    """Every ``*.md`` in the folder (not recursive), in name order."""
    if not folder.is_dir():
        raise ArticleError(f"{folder}: the knowledge_base folder does not exist")
    articles = []
    seen: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.glob("*.md")):
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ArticleError(f"{path}: cannot be read as UTF-8 text ({e})") from None
        article = parse_article(path, text, languages)
        key = (article.id, article.language)
        if key in seen:
            raise ArticleError(f"{path}: id {article.id!r} in language {article.language!r} is also {seen[key]}")
        seen[key] = path
        articles.append(article)
    return articles


class Postings:
    """A matrix of weights, documents by columns (n-grams or stems), kept for the one product a
    query needs: its columns' weights times its vector, summed per document. A column in
    DENSE_SHARE of the documents or more is a dense row (a few times the room of its postings
    at most); the others are postings sorted by column, gathered in numpy. With 500 articles a
    mail's n-grams touch 58,000 postings on average, and a posting gathered costs about 18 ns
    where a dense row's weight costs about 1. There are no per-row calls into Python (FTS5's
    ``bm25()`` made those) or into SciPy's sparse indexing, which costs 0.12 ms a call before
    any arithmetic."""

    def __init__(self, owner: np.ndarray, column: np.ndarray, weight: np.ndarray, size: int, width: int):
        """One (document, column, weight) triple per nonzero weight; ``size`` documents and
        ``width`` columns."""
        self.size = size
        frequency = np.bincount(column, minlength=width)
        wide = frequency >= DENSE_SHARE * max(size, 1)
        self.row = np.full(width, -1, dtype=np.int32)  # a wide column's dense row, else -1
        self.row[wide] = np.arange(int(wide.sum()), dtype=np.int32)
        self.dense = np.zeros((int(wide.sum()), size), dtype=weight.dtype)
        dense = wide[column]  # the triples that go into the dense rows
        self.dense[self.row[column[dense]], owner[dense]] = weight[dense]
        frequency[wide] = 0
        owner, column, weight = owner[~dense], column[~dense], weight[~dense]
        order = np.argsort(column, kind="stable")  # by column, each column's documents in order
        self.starts = np.concatenate(([0], np.cumsum(frequency)))
        self.documents, self.weights = owner[order].astype(np.int32), weight[order]

    def dot(self, columns: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Per document, the sum over ``columns`` of its weight in the column times the
        column's value in ``vector``."""
        rows = self.row[columns]
        wide = rows >= 0
        out = vector[wide] @ self.dense[rows[wide]]
        columns, vector = columns[~wide], vector[~wide]
        first, lengths = self.starts[columns], self.starts[columns + 1] - self.starts[columns]
        # every posting of those columns: each run of places begins at its column's first posting
        at = np.repeat(first - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return out + np.bincount(self.documents[at], weights=self.weights[at] * np.repeat(vector, lengths),
                                 minlength=self.size)


class GramIndex:
    """TF-IDF vectors of documents' character n-grams (term frequency ``1 + ln(count)``,
    ``idf = ln((1 + n) / (1 + df)) + 1``, each vector of length 1: scikit-learn's
    ``TfidfVectorizer(sublinear_tf=True)``) as ``Postings``. The n-grams are the columns of
    the ``Grams`` of one knowledge base, so a query is looked up once for all its indexes."""

    def __init__(self, documents: list[np.ndarray], width: int):
        """``documents``: each one's n-grams as column numbers (with repeats); ``width``: how
        many columns there are."""
        n = self.size = len(documents)
        owner = np.repeat(np.arange(n, dtype=np.int64), [len(d) for d in documents])
        # one (document, n-gram) key per occurrence; their distinct values and counts are the
        # documents' term frequencies
        keys, count = np.unique(owner * width + np.concatenate(documents or [np.empty(0, np.int64)]),
                                return_counts=True)
        owner, column = keys // width, keys % width
        frequency = np.bincount(column, minlength=width)  # documents with the n-gram
        # 0 for an n-gram only other indexes have: it weighs nothing here
        self.idfs = np.where(frequency > 0, np.log((1 + n) / (1 + frequency)) + 1, 0.0)
        weight = (1 + np.log(count)) * self.idfs[column]
        weight /= np.sqrt(np.bincount(owner, weights=weight * weight, minlength=n))[owner]
        self.postings = Postings(owner, column, weight.astype(np.float32), n, width)

    def similarity(self, columns: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Cosine of a query's vector with every document's: the query is its distinct n-grams'
        columns and counts, its vector made as the documents' were."""
        vector = (1 + np.log(counts)) * self.idfs[columns]
        norm = np.sqrt(vector @ vector)
        if not norm:
            return np.zeros(self.size, dtype=np.float32)
        return self.postings.dot(columns, (vector / norm).astype(np.float32))


class Questions:
    """One language's questions of the articles, of both kinds (the example questions, how
    requesters ask for an article, and those next to its topic that no article answers) in one
    ``GramIndex``, so that the two kinds are weighed alike and a message meets them in one pass:
    first the example questions, each article file's in one run, then the others."""

    def __init__(self, questions: list[tuple[bool, int, np.ndarray]], files: int, width: int):
        """``questions``: (whether it is an example question, its article file's number, its
        n-grams' columns), for ``files`` article files and ``width`` columns."""
        examples = sorted((n, k) for k, (example, n, _) in enumerate(questions) if example)
        others = [k for k, (example, _, _) in enumerate(questions) if not example]
        self.index = GramIndex([questions[k][2] for _, k in examples] + [questions[k][2] for k in others], width)
        owners = np.array([n for n, _ in examples], dtype=np.int64)
        self.starts = np.flatnonzero(np.concatenate(([True], owners[1:] != owners[:-1]))) if len(owners) else owners
        self.files, self.examples, self.owner = files, len(examples), owners[self.starts]

    def nearest(self, query: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
        """Each article file's likeness to a text (its ``Grams.query``) of its nearest example
        question (NaN for a file with none), and the nearest not-answered question's (NaN if
        there is none)."""
        near = self.index.similarity(*query)
        asked = np.full(self.files, np.nan)
        if self.examples:
            asked[self.owner] = np.maximum.reduceat(near[:self.examples], self.starts)
        return asked, float(near[self.examples:].max()) if len(near) > self.examples else math.nan


class Grams:
    """The character n-grams of every text a knowledge base indexes, numbered: their codes
    (``char_gram_codes``, diacritics folded) sorted, a code's place being its column."""

    def __init__(self, texts: list[np.ndarray]):
        """``texts``: each indexed text's codes (``Grams.of``)."""
        self.codes = np.unique(np.concatenate(texts or [np.empty(0, np.uint64)]))

    @staticmethod
    def of(text: str, limit: int | None = None) -> np.ndarray:
        """A text's n-gram codes, diacritics folded, from its first ``limit`` characters."""
        return char_gram_codes(fold(text), *GRAMS, limit=limit)

    def _find(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each code's column, and whether it is known (an unknown code's column means nothing)."""
        if not len(self.codes):
            return np.zeros(len(codes), dtype=np.int64), np.zeros(len(codes), dtype=bool)
        at = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        return at, self.codes[at] == codes

    def columns(self, codes: np.ndarray) -> np.ndarray:
        """The columns of the known codes (with repeats); unknown ones are left out."""
        at, known = self._find(codes)
        return at[known]

    def query(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The columns and counts of the text's distinct known n-grams (its first MAX_QUERY_CHARS)."""
        codes, counts = np.unique(self.of(text, MAX_QUERY_CHARS), return_counts=True)
        at, known = self._find(codes)
        return at[known], counts[known]


class StemIndex:
    """Okapi BM25 over the articles' stems, exactly as SQLite FTS5's ``bm25()`` computes it
    (fts5_aux.c: k1 1.2, b 0.75; a stem's frequency in an article is its count in each column
    times the column's weight; the article's length is its stems in all columns; ``idf =
    ln((N - n + 0.5) / (n + 0.5))``), as ``Postings``."""

    K1, B = 1.2, 0.75

    def __init__(self, documents: list[tuple[list[str], ...]], weights: tuple[float, ...]):
        """``documents``: per article, its stems per column; ``weights``: the columns' weights."""
        self.vocabulary: dict[str, int] = {}
        frequencies: list[dict[int, float]] = []
        for columns in documents:
            frequency: dict[int, float] = {}
            for stems, weight in zip(columns, weights):
                for stem in stems:
                    k = self.vocabulary.setdefault(stem, len(self.vocabulary))
                    frequency[k] = frequency.get(k, 0.0) + weight
            frequencies.append(frequency)
        n, width = len(documents), len(self.vocabulary)
        lengths = np.array([sum(len(stems) for stems in columns) for columns in documents], dtype=np.float64)
        owner = np.repeat(np.arange(n, dtype=np.int64), [len(f) for f in frequencies])
        column = np.fromiter((k for f in frequencies for k in f), dtype=np.int64, count=len(owner))
        frequency = np.fromiter((v for f in frequencies for v in f.values()), dtype=np.float64, count=len(owner))
        articles_with = np.bincount(column, minlength=width)
        # a stem in half the articles or more has an idf of at most 0, which FTS5 floors at 1e-6:
        # here it weighs nothing
        self.idfs = np.log((n - articles_with + 0.5) / (articles_with + 0.5))
        self.idfs[articles_with >= n / 2] = 0.0
        average = max(lengths.mean(), 1.0) if n else 1.0
        part = frequency * (self.K1 + 1) / (frequency + self.K1 * (1 - self.B + self.B * lengths[owner] / average))
        self.postings = Postings(owner, column, part, n, width)

    def scores(self, stems: list[str]) -> np.ndarray:
        """Each article's BM25 score for the distinct stems (0 where none of them occurs)."""
        columns = np.array([k for k in map(self.vocabulary.get, stems) if k is not None], dtype=np.int64)
        return self.postings.dot(columns, self.idfs[columns])


class KnowledgeBase:
    """One tenant's articles, indexed by character n-grams (ranking) and by stems with BM25
    (corroboration); title and keywords weigh more in both."""

    def __init__(self, articles: list[Article]):
        self.articles = articles
        self.stems = StemIndex([tuple(terms(part, a.language) for part in (a.title, " ".join(a.keywords),
                                                                            "\n".join(a.questions), a.body))
                                for a in articles], WEIGHTS)
        self.ids = np.array([a.id for a in articles])
        self.id_numbers = np.unique(self.ids, return_inverse=True)[1]  # the same number for an id's files
        self.most_files = int(np.bincount(self.id_numbers).max()) if articles else 0
        self.boosts = {intent: np.array([INTENT_BOOST if intent in a.intents else 1.0 for a in articles])
                       for intent in sorted({i for a in articles for i in a.intents})}
        # every text an n-gram index holds, numbered together: first the articles, then each
        # article's questions of both kinds
        owned = [(kind, n, q) for kind in ("questions", "not_answered")
                 for n, a in enumerate(articles) for q in getattr(a, kind)]
        codes = [Grams.of(" ".join([a.title] * TITLE_REPEAT + list(a.keywords) * KEYWORDS_REPEAT + [a.body]))
                 for a in articles] + [Grams.of(q) for _, _, q in owned]
        self.grams = Grams(codes)
        columns = [self.grams.columns(c) for c in codes]
        self.index = GramIndex(columns[:len(articles)], len(self.grams.codes))
        # a question of an article is a document of its own, owned by the article's file, and it
        # meets only messages in its language (n-grams shared across languages are noise)
        questions = [(kind == "questions", n, c) for (kind, n, _), c in zip(owned, columns[len(articles):])]
        self.questions = {lang: Questions([q for q in questions if articles[q[1]].language == lang],
                                          len(articles), len(self.grams.codes))
                          for lang in sorted({articles[n].language for _, n, _ in questions})}

    def _similarity(self, query: tuple[np.ndarray, np.ndarray], language: str) -> Likeness:
        """Each article file's likeness to a text (its ``Grams.query``): to the article and to its
        nearest example question; and the nearest not-answered question's, in the text's language."""
        similarity = self.index.similarity(*query)
        if language not in self.questions:
            return Likeness(similarity, np.full(len(self.articles), np.nan), math.nan)
        asked, unanswered = self.questions[language].nearest(query)
        return Likeness(np.fmax(similarity, asked), asked, unanswered)

    def stem_scores(self, text: str, language: str) -> np.ndarray:
        """Each article file's BM25 score for the text's first MAX_QUERY_TERMS distinct stems,
        divided by the square root of their number, so a long mail's many incidental matches
        do not outweigh a short question's decisive ones."""
        query = list(dict.fromkeys(terms(text, language)))[:MAX_QUERY_TERMS]
        if not query or not self.articles:
            return np.zeros(len(self.articles))
        return self.stems.scores(query) / math.sqrt(len(query))

    def _best_files(self, scores: np.ndarray, intent: str, limit: int) -> list[Suggestion]:
        """The best-scoring file of each of the ``limit`` best article ids, those tagged with
        ``intent`` counting INTENT_BOOST times more, best first (a file scoring 0 is not one)."""
        if intent in self.boosts:
            scores = scores * self.boosts[intent]
        # the ``limit`` best ids' best files are among the best ``limit`` times the most files an
        # id has (one per language): only those files, and any tied with the last, are sorted
        among = limit * self.most_files
        if among < len(scores):
            candidates = np.flatnonzero(scores >= np.partition(scores, -among)[-among])
            order = candidates[np.argsort(-scores[candidates], kind="stable")]  # ties in file order
        else:
            order = np.argsort(-scores, kind="stable")
        best: dict[int, int] = {}  # id number -> its best file, in the order found
        for i, number in zip(order.tolist(), self.id_numbers[order].tolist()):
            if len(best) == limit or scores[i] <= 0:
                break
            best.setdefault(number, i)
        return [Suggestion(self.articles[i], float(scores[i])) for i in best.values()]

    def ranked(self, text: str, intent: str, language: str, limit: int = 10) -> list[Suggestion]:
        """The ``limit`` most similar article ids by n-gram similarity to the text (cosine,
        0–1; example questions count in the text's ``language``), best first; no threshold: what
        the policy and the agents' view each cut in their own way."""
        if not self.articles or not text.strip():
            return []
        return self._ranked(self.grams.query(text), intent, language, limit)

    def _ranked(self, query: tuple[np.ndarray, np.ndarray], intent: str, language: str, limit: int = 10
                ) -> list[Suggestion]:
        """``ranked`` for a text already turned into its ``Grams.query``, which ``choose`` reuses."""
        return self._best_files(self._similarity(query, language).best, intent, limit)

    def suggest(self, text: str, intent: str, language: str, fallback_language: str) -> list[Suggestion]:
        """The one article that clearly answers the text, or none (see ``choose``)."""
        return self.choose(text, intent, language, fallback_language).articles

    def choose(self, text: str, intent: str, language: str, fallback_language: str) -> Suggestions:
        """The one article that clearly answers the text, or none, with the rule that says why:
        its n-gram similarity clears MIN_SIMILARITY, the stems' BM25 ranking puts it first too,
        and no question the articles list as not answered is as near as the nearest of its
        example questions (or, without those, as the article). In the sender's language, else
        the tenant's; another language only when it is clearly right and no translation exists."""
        none = Suggestions("kb-no-match")
        if not self.articles or not text.strip():
            return none
        query = self.grams.query(text)  # made once, for the articles, their questions and their near misses
        likeness = self._similarity(query, language)
        ranked = self._best_files(likeness.best, intent, 1)
        if not ranked or ranked[0].score < MIN_SIMILARITY:
            return none
        stems = self._best_files(self.stem_scores(text, language), intent, 1)
        if not stems or stems[0].article.id != ranked[0].article.id or stems[0].score < MIN_SCORE:
            return none  # the words themselves do not point at the same article
        best = ranked[0]
        asked = likeness.asked[self.ids == best.article.id]
        # nearer to what the articles say none answers? (a comparison with NaN is false)
        if likeness.unanswered >= (best.score if np.isnan(asked).all() else np.nanmax(asked)):
            return Suggestions("kb-not-answered")
        pick = self.article(best.article.id, language, fallback_language, anywhere=False)
        if pick is not None:
            return Suggestions("kb-suggested", [Suggestion(pick, best.score)])
        return Suggestions("kb-suggested", [best]) if best.score >= OTHER_LANGUAGE_SIMILARITY else none

    def matches(self, text: str, intent: str, language: str, fallback_language: str,
                limit: int = 3) -> list[Suggestion]:
        """What an agent is shown to pick from, whatever the policy offered the requester: the
        best ``limit`` articles above AGENT_MIN_SIMILARITY, without the agreement and
        near-miss rules (the agent, not the bot, judges between two close ones), each in the
        requester's language if it has a translation. A person reads these before anything
        is sent, so the bar is lower."""
        out = []
        for s in self.ranked(text, intent, language)[:limit]:
            if s.score < AGENT_MIN_SIMILARITY:
                break
            out.append(Suggestion(self.article(s.article.id, language, fallback_language) or s.article, s.score))
        return out

    def article(self, article_id: str, language: str, fallback: str, anywhere: bool = True) -> Article | None:
        """The article with this id in ``language``, else ``fallback``, else (with ``anywhere``)
        in whichever language it exists; None for an id the knowledge base does not have."""
        found = [a for a in self.articles if a.id == article_id]
        for lang in (language, fallback):
            for a in found:
                if a.language == lang:
                    return a
        return found[0] if found and anywhere else None


def offer(kb: KnowledgeBase | None, text: str, category: str, intent: str, actions: list[str],
          automated: bool, language: str, fallback_language: str, decline: str = "") -> Suggestions:
    """Whether articles are offered for a decided message, and which (the policy lives here);
    ``decline`` is the decision's refusal, if it gives one."""
    if automated:
        return Suggestions("kb-not-for-automated")
    if category not in HELPFUL:
        return Suggestions("kb-not-for-category")
    label = f"{category}/{intent}"
    refusing = [a for a in MISLEADING_ACTIONS if a in actions]
    if refusing == ["decline"] and decline in SELF_SERVICE_DECLINES:
        return _tagged(kb, "kb-suggested-with-decline", text, label, language, fallback_language)
    if refusing:
        return Suggestions("kb-not-for-decision")
    if "relay_to_company" in actions or not any(a in actions for a in HELPFUL_ACTIONS):
        if not any(a in actions for a in PASSED_ON_ACTIONS):
            return Suggestions("kb-not-for-decision")
        return _tagged(kb, "kb-suggested-for-intent", text, label, language, fallback_language)
    return kb.choose(text, label, language, fallback_language) if kb else Suggestions("kb-no-match")


def _tagged(kb: KnowledgeBase | None, rule: str, text: str, label: str, language: str,
            fallback_language: str) -> Suggestions:
    """The article chosen for the text if the tenant tagged it with the request's intent
    (``label``), under ``rule``; else none."""
    chosen = kb.choose(text, label, language, fallback_language) if kb else Suggestions("kb-no-match")
    found = [s for s in chosen.articles if label in s.article.intents]
    return Suggestions(rule, found) if found else Suggestions("kb-no-match" if chosen.articles else chosen.rule)


def import_export(path: Path, languages: list[str]) -> list[tuple[str, str]]:
    """(file name, Markdown text) for every article of a help centre's export: a CSV with the
    columns title, url, language, body (optional id, and intents, keywords, questions and
    not_answered, each separated by ';'), or a JSON list of objects with the same keys. Every
    article is validated as a file would be."""
    import csv

    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text("utf-8"))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ArticleError(f"{path}: must be a JSON list of objects")
    else:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    out = []
    for n, row in enumerate(rows, start=1):
        missing = [k for k in ("title", "url", "language", "body") if not str(row.get(k) or "").strip()]
        if missing:
            raise ArticleError(f"{path}: article {n} lacks {', '.join(missing)}")
        lists = {k: row.get(k) or [] for k in ("intents", "keywords", "questions", "not_answered")}
        lists = {k: [x.strip() for x in v.split(";") if x.strip()] if isinstance(v, str) else v for k, v in lists.items()}
        slug = _slug(str(row.get("id") or row["title"])) or f"article-{n}"
        meta = {"id": str(row.get("id") or slug), "title": str(row["title"]), "url": str(row["url"]),
                "language": str(row["language"]), **{k: v for k, v in lists.items() if v}}
        text = front_matter(meta) + "\n" + str(row["body"]).strip() + "\n"
        name = f"{meta['id']}.{meta['language']}.md"
        parse_article(Path(name), text, languages)
        out.append((name, text))
    return out
