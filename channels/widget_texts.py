"""The widget's words in each language: its own texts and the errors its API answers with.

Both are data, one JSON file per language in ``static/i18n/`` (adding a language is adding a
file): the interface texts go to the browser with the support status, the ``errors`` are
the sentences the API puts in an error's ``error`` field, keyed by the error's ``code``, the
stable name a client branches on (the sentence may change, the code does not).

The language is the visitor's: the widget's ``lang`` hint (``data-lang``, else the
browser's), else the request's ``Accept-Language``, else the tenant's, else English — the
same choice for the texts and the errors, so a refusal reads in the language of the panel.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from triage.core.render import DEFAULT_LANGUAGE, normalise_language

I18N = Path(__file__).resolve().parent / "static" / "i18n"
TEXTS: dict[str, dict[str, Any]] = {path.stem: json.loads(path.read_text("utf-8"))
                                    for path in sorted(I18N.glob("*.json"))}
MAX_ACCEPT = 20  # Accept-Language entries read at most (the header is the client's to make long)


def accepted(header: str) -> list[str]:
    """The languages of an Accept-Language header, most wanted first (RFC 9110 §12.5.4)."""
    ranked = []
    for position, item in enumerate(header.split(",")[:MAX_ACCEPT]):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        if tag.strip() not in ("", "*") and weight > 0:
            ranked.append((-weight, position, normalise_language(tag)))
    return [lang for _, _, lang in sorted(ranked)]


def language(hint: str, accept_language: str, tenant_language: str = "") -> str:
    """The first of the hint, the Accept-Language languages and the tenant's that has texts."""
    for lang in (normalise_language(hint), *accepted(accept_language), tenant_language):
        if lang in TEXTS:
            return lang
    return DEFAULT_LANGUAGE


def request_language(request: web.Request, tenant_language: str = "") -> str:
    """The visitor's language for one API request (see the module docstring)."""
    return language(request.query.get("lang", ""), request.headers.get("Accept-Language", ""), tenant_language)


def interface(lang: str) -> dict[str, Any]:
    """The texts the widget shows itself (the errors stay on the server that sends them)."""
    return {key: value for key, value in TEXTS[lang].items() if key != "errors"}


def error(lang: str, code: str, **values: Any) -> str:
    """The visitor's sentence for an error code, its {placeholders} filled in."""
    return TEXTS[lang]["errors"][code].format(**values)
