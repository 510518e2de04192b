"""The one place where what a browser sent the widget API is checked for shape.

Everything here is outside input: a body may be any bytes (not UTF-8, nested a hundred
thousand levels deep, a number of five thousand digits), a field any JSON type, a string
any code point (a lone surrogate cannot be stored or encoded; CR/LF in a name would end up
in a mail header). Each check raises :class:`BadRequest` with the HTTP status, an error code
(the visitor's sentence for it is per language, ``channels/widget_texts.py``) and an English
detail naming the problem for the portal's developers, so a malformed request is a 4xx JSON
error and never reaches the service, where it could only fail as a 500 or as a 503 "send it
again" that can never succeed.
"""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from aiohttp import web

from triage.service.chat import CLIENT_ID

MAX_BODY = 64 * 1024  # bytes of JSON read at most, whatever the tenant's limit
MAX_NAME = 200
MAX_HASH = 128
MAX_USER_TOKEN = 4096  # a JWT of a few claims is a few hundred bytes
MAX_EVENT_ID = 18  # digits: below 2**63, what SQLite's INTEGER holds
TOKEN = re.compile(r"[A-Za-z0-9_-]{0,100}")  # secrets.token_urlsafe, as the service hands it out
DIGITS = re.compile(r"[0-9]{1,%d}" % MAX_EVENT_ID)  # ASCII only: "²".isdigit() is True
TEXT_CONTROLS = frozenset("\n\r\t")  # a message may have lines; nothing else invisible


class BadRequest(Exception):
    """A request the widget API refuses: ``status`` is 4xx, ``code`` names the error's text in
    ``static/i18n`` (filled in with ``values``), ``detail`` says exactly what was wrong (English,
    for developers), ``rule`` is a rule id or ""."""

    def __init__(self, status: int, code: str, detail: str = "", rule: str = "", **values: Any):
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail
        self.rule = rule
        self.values = values


def malformed(detail: str) -> BadRequest:
    """A request no widget sends: one code for the visitor, the exact problem for the developer."""
    return BadRequest(400, "bad-request", detail)


async def read_json(request: web.Request, too_large: BadRequest) -> dict[str, Any]:
    """The body as a JSON object, read up to MAX_BODY bytes whether or not it announced its
    length (a chunked body is cut off at the limit, never buffered whole)."""
    if (request.content_length or 0) > MAX_BODY:
        raise too_large
    body = b""
    while len(body) <= MAX_BODY:  # read(n) gives what has arrived, up to n: a slow body comes in pieces
        piece = await request.content.read(MAX_BODY + 1 - len(body))
        if not piece:
            break
        body += piece
    if len(body) > MAX_BODY:
        raise too_large
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed("the request body must be UTF-8 encoded JSON") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise malformed("the request must be a JSON object, not nested this deeply") from None
    except ValueError as e:  # JSONDecodeError, and ints past Python's digit limit
        raise malformed(f"the request must be a JSON object: {str(e)[:120]}") from None
    if not isinstance(data, dict):
        raise malformed(f"the request must be a JSON object, not a JSON {type(data).__name__}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def string(data: dict[str, Any], name: str, limit: int, *, lines: bool = False) -> str:
    """A string field ("" when absent): no other JSON type, no lone surrogates, no control
    characters (only a message's text may have line breaks and tabs), at most ``limit`` characters."""
    value = data.get(name, "")
    if not isinstance(value, str):
        raise malformed(f"{name} must be a string, not a JSON {_json_type(value)}")
    return checked(value, name, limit, lines=lines)


def checked(value: str, name: str, limit: int, *, lines: bool = False) -> str:
    if len(value) > limit:
        raise malformed(f"{name} is too long: at most {limit} characters")
    for c in value:
        category = unicodedata.category(c)
        if category == "Cs":
            raise malformed(f"{name} contains a lone surrogate ({ord(c):#06x}), which is not text")
        if category == "Cc" and not (lines and c in TEXT_CONTROLS):
            raise malformed(f"{name} contains a control character ({ord(c):#04x})")
    return value


def token(value: str, name: str = "token") -> str:
    """A conversation token as the service hands them out (or "" for none)."""
    if not TOKEN.fullmatch(value):
        raise malformed(f"{name} must be at most 100 letters, digits, '-' or '_'")
    return value


def client_id(value: str) -> str:
    if not CLIENT_ID.fullmatch(value):
        raise malformed("client_id must be 8 to 64 letters, digits, '-' or '_'")
    return value


def email(value: str) -> str:
    address = value.strip().lower()
    if "@" not in address or len(address) > 254 or any(c.isspace() for c in address):
        raise BadRequest(400, "email-needed", "an email address is needed so support can answer")
    return address


def event_position(request: web.Request) -> int:
    """Where an event stream resumes: Last-Event-ID on a reconnect, else ``after``, else 0."""
    for name, value in (("Last-Event-ID", request.headers.get("Last-Event-ID")),
                        ("after", request.query.get("after"))):
        if value:
            if not DIGITS.fullmatch(value):
                raise malformed(f"{name} must be a message id: 1 to {MAX_EVENT_ID} digits 0-9")
            return int(value)
    return 0


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)
