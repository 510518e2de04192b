"""Who a reply greets by name, and whether it may point to contacts the sender has."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from triage.core.parse import parse_chat
from triage.core.pipeline import Pipeline
from triage.core.trust import widget_hash

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)  # a Tuesday, inside support hours


@pytest.fixture(scope="module")
def pipeline(config):
    return Pipeline(config)


def widget_line(sender: str, text: str, signed: bool, name: str = "") -> dict:
    line = {"id": "w1", "channel": "widget", "tenant": "acme", "from": sender, "name": name, "text": text}
    if signed:
        line["user_hash"] = widget_hash("acme-secret", sender)
    return line


def test_a_verified_visitor_in_the_directory_is_greeted_by_name(pipeline):
    out = pipeline.run(parse_chat(widget_line("tom.user@steelworks.lt", "I cannot log in", signed=True)), 7, NOW)
    assert out.trust.verified and out.reply is not None
    assert out.reply.splitlines()[0].startswith("Hello Tom User")


def test_an_unverified_visitor_never_learns_the_directory_name(pipeline):
    """Anyone can type a supplier's address into the widget: the reply must not tell them whose it is."""
    out = pipeline.run(parse_chat(widget_line("tom.user@steelworks.lt", "I cannot log in", signed=False)), 7, NOW)
    assert not out.trust.verified and out.reply is not None
    assert "Tom User" not in out.reply


def test_the_name_the_sender_gave_wins(pipeline):
    out = pipeline.run(parse_chat(widget_line("tom.user@steelworks.lt", "I cannot log in", signed=True,
                                              name="Tommy")), 7, NOW)
    assert out.reply is not None and "Tommy" in out.reply.splitlines()[0]


def test_a_new_company_is_not_told_about_existing_contacts(pipeline):
    text = "What delivery terms and volumes does your RFQ 4411 expect? We would like to quote."
    known = pipeline.run(parse_chat(widget_line("tom.user@steelworks.lt", text, signed=True)), 8, NOW)
    new = pipeline.run(parse_chat(widget_line("sales@brandnew-supplier.pl", text, signed=False)), 9, NOW)
    assert known.cls.category == new.cls.category == "business"
    assert "existing contacts" in (known.reply or "")  # English text: the reply follows the sender's language
    assert "existing contacts" not in (new.reply or "")
