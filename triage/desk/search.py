"""Search queries as agents type them, checked and rewritten into safe SQLite FTS5 syntax.

The syntax is FTS5's own, so what the README documents is what SQLite does: words (all must
match), ``"a phrase"``, ``prefix*``, ``AND``, ``OR``, ``NOT`` (upper case; ``a NOT b`` means
a without b) and parentheses. A query is parsed here first instead of being handed to
SQLite as it is, for two reasons: a malformed query becomes a message that says what is
wrong (never an ``sqlite3.OperationalError`` and a 500), and every word is re-quoted, so
FTS5's column filters (``subject:x``), ``NEAR`` and ``^`` cannot be reached from user input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LENGTH = 500
MAX_TERMS = 40
MAX_DEPTH = 8
OPERATORS = ("AND", "OR", "NOT")
_TOKEN = re.compile(r'\s*(?:(")|(\()|(\))|([^\s"()]+))')


class QueryError(ValueError):
    """The query cannot be searched; the message says why, in words an agent understands."""


@dataclass
class _Token:
    kind: str  # word, phrase, op, open, close
    text: str
    prefix: bool = False


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:  # only trailing blanks are left
            break
        if m.group(1):
            end = text.find('"', m.end())
            if end < 0:
                raise QueryError('a phrase is missing its closing quote (")')
            phrase = text[m.end():end]
            at = end + 1
            prefix = text.startswith("*", at)
            at += prefix
            if not phrase.strip():
                raise QueryError('an empty phrase ("") matches nothing')
            tokens.append(_Token("phrase", phrase, prefix))
            continue
        at = m.end()
        if m.group(2):
            tokens.append(_Token("open", "("))
        elif m.group(3):
            tokens.append(_Token("close", ")"))
        else:
            word = m.group(4)
            if word in OPERATORS:
                tokens.append(_Token("op", word))
                continue
            prefix = word.endswith("*")
            word = word.rstrip("*")
            if not word or "*" in word:
                raise QueryError(f"{m.group(4)!r}: '*' goes at the end of a word, as in login*")
            tokens.append(_Token("word", word, prefix))
    return tokens


class _Parser:
    """Recursive descent with FTS5's precedence: NOT binds tighter than AND, AND than OR."""

    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> str:
        out = self.or_expr()
        left = self.peek()
        if left is not None:
            raise QueryError("a ')' has no matching '('" if left.kind == "close" else f"unexpected {left.text!r}")
        return out

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while self._op("OR"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.not_expr()]
        while True:
            token = self.peek()
            if token is None or token.kind == "close" or (token.kind == "op" and token.text == "OR"):
                break
            self._op("AND")
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_expr(self) -> str:
        out = self.operand()
        while self._op("NOT"):
            out = f"({out} NOT {self.operand()})"
        return out

    def operand(self) -> str:
        token = self.peek()
        if token is None:
            raise QueryError("the query ends where a word was expected" if self.tokens else "the query is empty")
        if token.kind == "op":
            where = "at the start" if self.at == 0 else f"after {self.tokens[self.at - 1].text!r}"
            raise QueryError(f"{token.text} {where} needs a word before it and after it")
        if token.kind == "close":
            raise QueryError("a ')' comes where a word was expected")
        self.take()
        if token.kind == "open":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QueryError(f"at most {MAX_DEPTH} levels of parentheses")
            inner = self.or_expr()
            closing = self.peek()
            if closing is None or closing.kind != "close":
                raise QueryError("a '(' is missing its ')'")
            self.take()
            self.depth -= 1
            return inner
        quoted = '"' + token.text.replace('"', '""') + '"'
        return quoted + ("*" if token.prefix else "")

    def _op(self, name: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == name:
            self.take()
            return True
        return False


def fts_query(text: str) -> str:
    """The FTS5 MATCH expression for what an agent typed; raises :class:`QueryError`."""
    if len(text) > MAX_LENGTH:
        raise QueryError(f"the query is longer than {MAX_LENGTH} characters")
    tokens = _tokens(text)
    if sum(t.kind in ("word", "phrase") for t in tokens) > MAX_TERMS:
        raise QueryError(f"at most {MAX_TERMS} words and phrases in one query")
    return _Parser(tokens).parse()
