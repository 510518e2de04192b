"""What the ticket page shows, over real HTTP against the running service: each part the
README promises (attachments, the decision's confidence and evidence, relays to the tenant's
contacts, widget lines, the audit trail) is on the page with the values the store holds."""
from __future__ import annotations

import json
import re
from email.message import EmailMessage
from html import unescape

from tests.servicekit import BUSINESS, CONTACT, SUPPORT
from tests.test_console_http import KIM, WIDGET_LINE, client, console, relay  # noqa: F401 - shared fixtures
from tests.test_service_e2e import outbox_settled, rows, send
from tests.waiting import until

PNG = b"\x89PNG\r\n\x1a\n" + bytes(3000)  # 2.9 KiB
CSV = b"volume;price\n10;5\n"


def messages(page: str) -> list[tuple[str, str]]:
    """The conversation's items: (their type — in, out, relay, note — and their HTML)."""
    timeline = page.split('<ol class="timeline">', 1)[1].split('<form class="compose"', 1)[0]
    return [(part.split('"', 1)[0], part) for part in timeline.split('<li class="msg ')[1:]]


def audit(page: str) -> list[str]:
    """The audit trail's lines, in order."""
    trail = page.split('<ol class="audit small">', 1)[1].split("</ol>", 1)[0]
    return [re.sub(r"\s+", " ", line) for line in trail.split("<li>")[1:]]


async def test_the_ticket_page_shows_attachments_decision_evidence_relays_and_the_audit_trail(console, client):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Tom Steel <tom@steelworks.example>", SUPPORT, BUSINESS["subject"]
    msg["Message-ID"] = "<rfq@steelworks.example>"
    msg.set_content(BUSINESS["body"])
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="rfq-screen.png")
    msg.add_attachment(CSV, maintype="text", subtype="csv", filename="volumes.csv")
    await send(console, msg.as_bytes())
    await outbox_settled(console)  # the redirect to the supplier and the relay to the contact, sent
    await client.login()
    status, page, _ = await client.get("/tickets/acme/1001")
    assert status == 200
    items = messages(page)
    assert [kind for kind, _ in items] == ["in", "out", "relay"], [kind for kind, _ in items]

    incoming = items[0][1]
    attachments = re.findall(r'<li><span class="file">([^<]+)</span> <span class="muted small">([^<]+)</span>',
                             incoming)
    assert attachments == [("rfq-screen.png", "image/png, 2.9 KiB"), ("volumes.csv", f"text/csv, {len(CSV)} bytes")]

    relayed = items[2][1]
    [relay_row] = await rows(console, "SELECT recipients, status FROM outbox WHERE kind = 'relay'")
    assert json.loads(relay_row["recipients"]) == [CONTACT]
    assert f"Relayed to {CONTACT}" in relayed and f"· {relay_row['status']} ·" in relayed
    assert "What volumes apply for 2025" in relayed  # the supplier's question, passed on

    [decision] = await rows(console, "SELECT rules, detail FROM events WHERE ticket = 1 AND kind = 'decision'")
    detail = json.loads(decision["detail"])
    assert f"confidence {detail['confidence'] * 100:.0f}%" in page
    assert detail["evidence"], "the decision has no evidence to show"
    shown = re.findall(r"<li>([^<]*)</li>", page.split('<ul class="small evidence">', 1)[1].split("</ul>", 1)[0])
    assert [unescape(e) for e in shown] == detail["evidence"]
    for rule in json.loads(decision["rules"]):
        assert f'<code class="rule">{rule}</code>' in page

    status, _, _ = await client.post("/tickets/acme/1001/reopen", {"csrf": client.csrf})
    assert status == 303  # Agents.reopen refuses a ticket that is still open
    _, page, _ = await client.get("/tickets/acme/1001")
    assert "not done: only a resolved or closed ticket can be reopened" in page
    await client.post("/tickets/acme/1001/note", {"csrf": client.csrf, "text": "Asked Eva to answer."})
    _, page, _ = await client.get("/tickets/acme/1001")
    events = await rows(console, "SELECT kind, rules, outcome FROM events WHERE ticket = 1 ORDER BY id")
    lines = audit(page)
    assert len(lines) == len(events) and len(events) >= 3
    for line, event in zip(lines, events):
        outcome = re.sub(r"\s+", " ", (event["outcome"] or "").replace(",", ", "))  # a list reads with spaces
        assert f"<strong>{event['kind']}</strong> {outcome}" in unescape(line), (line, event)
        for rule in json.loads(event["rules"] or "[]"):
            assert f'<code class="rule">{rule}</code>' in line
    assert f"<em>{KIM}</em>" in lines[-1] and "agent-note" in lines[-1]  # who added the note
    notes = [html for kind, html in messages(page) if kind == "note"]
    assert len(notes) == 1 and "Asked Eva to answer." in notes[0] and f"Internal note · {KIM}" in notes[0]


async def test_widget_lines_and_the_agents_answer_are_in_the_conversation(console, client):
    async with client.session.post(client.base + "/widget/api/acme/messages", json=WIDGET_LINE) as r:
        assert r.status == 200
    await until(lambda: rows(console, "SELECT id FROM tickets"))
    await client.login()
    await client.post("/tickets/acme/1001/reply", {"csrf": client.csrf, "text": "Hi Anna, a new link is on its way."})
    _, page, _ = await client.get("/tickets/acme/1001")
    items = messages(page)
    widget = [(kind, html) for kind, html in items if '<span class="muted small">widget' in html]
    assert [kind for kind, _ in widget][:1] == ["in"] and WIDGET_LINE["text"] in widget[0][1]
    assert "anna@steelworks.example" in widget[0][1]
    answers = [html for kind, html in widget if kind == "out" and "Hi Anna, a new link is on its way." in html]
    assert len(answers) == 1, [kind for kind, _ in items]
    assert "in the widget" in page  # the reply box says where a reply goes
