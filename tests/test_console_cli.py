"""The console's command-line side: agents' accounts, the write commands for scripts (through
triage/desk/agents.py, straight into the database, sent by the running service's outbox), and the
search syntax shared by ``triage search`` and the inbox."""
from __future__ import annotations

import asyncio
import json

import pytest

from tests.servicekit import BUSINESS, CONTACT, Sink, mail, write_config
from tests.test_service_e2e import rows, running, send
from tests.waiting import until
from triage.cli import main
from triage.desk.search import QueryError, fts_query


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def test_agents_add_list_password_remove(tmp_path, capsys, monkeypatch):
    config = ["--config", str(write_config(tmp_path))]
    monkeypatch.setenv("TRIAGE_AGENT_PASSWORD", "a long enough password")
    assert main(config + ["agents", "add", "Kim@Desk.example", "--name", "Kim Berg"]) == 0
    assert main(config + ["agents", "add", "zed@desk.example", "--name", "Zed", "--tenant", "zenith"]) == 0
    assert main(config + ["agents", "list"]) == 0
    out = capsys.readouterr().out
    assert "kim@desk.example  'Kim Berg'  tenants: all" in out and "tenants: zenith" in out
    assert main(config + ["agents", "add", "kim@desk.example", "--name", "Again"]) == 2
    assert "already an agent" in capsys.readouterr().err
    assert main(config + ["agents", "add", "x@desk.example", "--name", "X", "--tenant", "nowhere"]) == 2
    assert "unknown tenant nowhere" in capsys.readouterr().err
    monkeypatch.setenv("TRIAGE_AGENT_PASSWORD", "short")
    assert main(config + ["agents", "password", "kim@desk.example"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    monkeypatch.setenv("TRIAGE_AGENT_PASSWORD", "another long password")
    assert main(config + ["agents", "password", "kim@desk.example"]) == 0
    assert main(config + ["agents", "remove", "zed@desk.example"]) == 0
    assert main(config + ["agents", "remove", "zed@desk.example"]) == 2
    stored = json.dumps(list(__import__("sqlite3").connect(tmp_path / "var" / "triage.db")
                             .execute("SELECT * FROM agents")))
    assert "another long password" not in stored and "$argon2id$" in stored


async def test_write_commands_go_through_agents_and_the_running_outbox_sends(tmp_path, sink, capsys):
    folder = write_config(tmp_path, relay_url=sink.url)
    config = ["--config", str(folder)]
    async with running(folder, retry_base=0.2) as service:
        await send(service, mail(message_id="<q1@steelworks.example>"))
        await send(service, mail(sender=CONTACT, name="Eva Strand", **BUSINESS))  # held for review
        await until(lambda: len(sink.messages) == 2)
        cli = lambda *args: asyncio.to_thread(main, config + list(args))  # noqa: E731
        assert await cli("reply", "1001", "Hi", "Tom,", "a", "new", "link", "is", "on", "its", "way.",
                         "--agent", "kim@desk.example") == 0
        await until(lambda: len(sink.messages) == 3, timeout=20)  # the service's outbox found the row
        answer = sink.messages[2].msg
        assert answer["In-Reply-To"] == "<q1@steelworks.example>" and "[#1001]" in answer["Subject"]
        assert "a new link is on its way." in answer.get_content()
        assert await cli("note", "1001", "called", "him", "too") == 0
        assert await cli("approve", "1001") == 1  # nothing held on #1001
        assert "holds nothing for review" in capsys.readouterr().err
        assert await cli("approve", "1002", "--tenant", "acme") == 0
        await until(lambda: len(sink.messages) == 4, timeout=20)
        assert await cli("assign", "1001", "kim@desk.example") == 0
        assert await cli("resolve", "1001") == 0
        assert await cli("close", "1001") == 0
        assert await cli("resolve", "4242") == 1
        [ticket] = await rows(service, "SELECT status, assignee FROM tickets WHERE number = 1001")
        assert ticket == {"status": "closed", "assignee": "kim@desk.example"}
        events = await rows(service, "SELECT kind, rules, detail FROM events WHERE ticket = 1 AND kind IN "
                                     "('agent-reply', 'note', 'assigned', 'status') ORDER BY id")
        assert [json.loads(e["rules"])[0] for e in events][-5:] == [
            "agent-reply", "agent-note", "agent-assigned", "agent-resolved", "agent-closed"]
        assert json.loads(events[-5]["detail"])["agent"] == "kim@desk.example"
        assert json.loads(events[-1]["detail"])["agent"].startswith("cli:")


async def test_search_syntax_in_the_cli(tmp_path, capsys):
    folder = write_config(tmp_path)
    config = ["--config", str(folder)]
    async with running(folder) as service:
        await send(service, mail(subject="Cannot log in"))
        await send(service, mail(**BUSINESS))
    assert main(config + ["search", '"reset link"']) == 0
    assert "#1001" in capsys.readouterr().out
    assert main(config + ["search", "expir*", "NOT", "volumes"]) == 0
    out = capsys.readouterr().out
    assert "#1001" in out and "#1002" not in out
    assert main(config + ["search", "expired", "OR", "volumes"]) == 0
    out = capsys.readouterr().out
    assert "#1001" in out and "#1002" in out
    assert main(config + ["search", '"unclosed']) == 2
    assert "closing quote" in capsys.readouterr().err


@pytest.mark.parametrize("query, expected", [
    ("login error", '("login" AND "error")'), ('"reset link"', '"reset link"'), ("invit*", '"invit"*'),
    ("a OR b NOT c", '("a" OR ("b" NOT "c"))'), ("(a OR b) c", '(("a" OR "b") AND "c")'),
    ("subject:x", '"subject:x"'), ("NEAR(a b)", '("NEAR" AND ("a" AND "b"))'), ('say "hi"', '("say" AND "hi")'),
])
def test_queries_become_safe_fts5(query, expected):
    assert fts_query(query) == expected


@pytest.mark.parametrize("query", ['"open', "NOT a", "a OR", "(a", "a)", "*", "a**b", "", "(" * 9 + "a" + ")" * 9,
                                   "x " * 41, "y" * 501])
def test_malformed_queries_are_clear_errors(query):
    with pytest.raises(QueryError):
        fts_query(query)
