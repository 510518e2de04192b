"""Operator log lines: text and JSON, fields kept, addresses shortened unless debugging."""
from __future__ import annotations

import io
import json
import logging

import pytest

from triage.logs import configure, event, redact


@pytest.fixture(autouse=True)
def _restore_loggers():
    """configure() is for a process; give the next test back the loggers pytest expects."""
    yield
    for name in ("triage", "channels"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def _lines(fmt: str, level: str = "info") -> tuple[io.StringIO, logging.Logger]:
    stream = io.StringIO()
    configure(level, fmt, stream)
    return stream, logging.getLogger("triage.test")


def test_json_lines_carry_the_fields():
    stream, log = _lines("json")
    event(log, logging.INFO, "mail accepted", ticket=1042, tenant="acme", rule="technical-help", ms=3.2)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "mail accepted" and line["level"] == "info" and line["logger"] == "triage.test"
    assert (line["ticket"], line["tenant"], line["rule"], line["ms"]) == (1042, "acme", "technical-help", 3.2)


def test_text_lines_are_greppable():
    stream, log = _lines("text")
    event(log, logging.WARNING, "mail refused", code=550, reason="no such recipient here", ticket=None)
    line = stream.getvalue().strip()
    assert " warning " in line and "mail refused code=550" in line
    assert 'reason="no such recipient here"' in line and "ticket=" not in line


def test_addresses_are_shortened_unless_debugging():
    _lines("text", "info")
    assert redact("tom.user@steelworks.lt") == "t***@steelworks.lt"
    _lines("text", "debug")
    assert redact("tom.user@steelworks.lt") == "tom.user@steelworks.lt"
    _lines("text", "info")


def test_debug_lines_are_hidden_at_info():
    stream, log = _lines("text", "info")
    event(log, logging.DEBUG, "noise")
    event(log, logging.INFO, "signal")
    assert "noise" not in stream.getvalue() and "signal" in stream.getvalue()
