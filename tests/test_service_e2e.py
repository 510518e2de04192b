"""The real service over loopback: an SMTP client in front, a recording relay behind.

The service runs in the test's event loop (same code as ``triage serve``, SMTP and HTTP on
port 0); one test also runs ``triage serve`` itself as a subprocess."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest

from tests.servicekit import (BUSINESS, CONTACT, OTHER_SUPPORT, SUPPORT, Sink, drained, free_port, mail, parse,
                              write_config)
from tests.waiting import until
from triage.config import load_config
from triage.service.app import Service
from triage.store import Store

TOM = "tom@steelworks.example"
REPO = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def running(folder: Path, **options) -> AsyncIterator[Service]:
    service = Service(load_config(folder), out=lambda line: None, **options)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def send(service: Service, raw: bytes, rcpts: list[str] | None = None, sender: str = TOM) -> str:
    """Deliver over SMTP and wait until the writer filed it: the server's answer to DATA
    (250 once queued) and the ticket the mail is on."""
    host, port = service.smtp_address
    _, response = await aiosmtplib.send(raw, sender=sender, recipients=rcpts or [SUPPORT], hostname=host,
                                        port=port, timeout=30)
    assert "queued as" in response
    await drained(service)
    [row] = await rows(service, "SELECT tickets.number FROM messages JOIN tickets ON tickets.id = messages.ticket "
                                "WHERE messages.direction = 'in' AND messages.message_id = ?",
                       [parse(raw)["Message-ID"]])
    return f"{response}; ticket #{row['number']}"


def data_without_size(service: Service, raw: bytes) -> int:
    import smtplib

    with smtplib.SMTP(*service.smtp_address, timeout=30) as client:
        client.ehlo()
        client.mail(TOM)
        client.rcpt(SUPPORT)
        code, _ = client.data(raw)
    return code


async def rows(service: Service, sql: str, params: list | None = None) -> list[dict]:
    return await service.run_db(lambda: list(service.store.db.query(sql, params or [])))


async def outbox_settled(service: Service, timeout: float = 15.0) -> list[dict]:
    """The outbox rows once none is still being handed over: the relay has the mail a moment
    before the service records that it was sent, so a test that looked at the sink alone would race."""
    for _ in range(int(timeout / 0.05)):
        found = await rows(service, "SELECT * FROM outbox ORDER BY id")
        if found and all(row["status"] not in ("queued", "sending") for row in found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox still busy after {timeout} s: {found}")


async def health(service: Service) -> dict:
    host, port = service.web_address
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{host}:{port}/healthz") as response:
            assert response.status == 200
            return await response.json()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


async def test_ticket_ack_threading_and_reopen(tmp_path, sink):
    async with running(write_config(tmp_path, relay_url=sink.url)) as service:
        original = mail(message_id="<first@steelworks.example>")
        assert "ticket #1001" in await send(service, original)
        await until(lambda: sink.messages)
        [ack] = sink.messages
        msg = ack.msg
        assert ack.mail_from == "support@support.test" and ack.rcpt_tos == [TOM]
        assert msg["From"].addresses[0].addr_spec == SUPPORT
        assert msg["Subject"] == "Re: [#1001] Cannot log in"
        assert msg["In-Reply-To"] == "<first@steelworks.example>"
        assert "<first@steelworks.example>" in msg["References"]
        assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
        [ticket] = await rows(service, "SELECT * FROM tickets")
        assert service.intake.signer.verify(msg["Message-ID"]) == ticket["id"]
        assert "[#1001]" in msg.get_content()

        reply = mail(subject="Re: [#1001] Cannot log in", body="It still does not work, the login page shows an error.",
                     headers={"In-Reply-To": msg["Message-ID"], "References": msg["Message-ID"]})
        assert "ticket #1001" in await send(service, reply)
        assert len(await rows(service, "SELECT * FROM tickets")) == 1
        inbound = await rows(service, "SELECT * FROM messages WHERE direction = 'in' AND ticket = ?", [ticket["id"]])
        assert len(inbound) == 2
        thread = await rows(service, "SELECT rules FROM events WHERE kind = 'thread' ORDER BY id")
        assert json.loads(thread[-1]["rules"]) == ["thread-signed-reference"]

        await service.run_db(service.store.update_ticket, ticket["id"], {"status": "resolved"})
        again = mail(subject="Re: [#1001] Cannot log in", body="Sorry, the error is back. I cannot log in.")
        assert "ticket #1001" in await send(service, again)  # joined by tag: tom is a participant
        [reopened] = await rows(service, "SELECT status FROM tickets")
        assert reopened["status"] == "open"

        stranger = mail(sender="mallory@evil.example", subject="Re: [#1001] Cannot log in", name="")
        assert "ticket #1002" in await send(service, stranger, sender="mallory@evil.example")


async def test_business_question_is_relayed_and_no_contact_leaks(tmp_path, sink):
    async with running(write_config(tmp_path, relay_url=sink.url)) as service:
        await send(service, mail(**BUSINESS))
        await until(lambda: len(sink.messages) == 2)
        by_rcpt = {tuple(m.rcpt_tos): m for m in sink.messages}
        relay, reply = by_rcpt[(CONTACT,)], by_rcpt[(TOM,)]
        assert relay.msg["Reply-To"].addresses[0].addr_spec == TOM
        assert relay.msg["Subject"].startswith("[#1001]")
        assert "What volumes apply for 2025" in relay.msg.get_content()
        assert reply.msg["Reply-To"] is None and reply.msg["Cc"] is None
        text = reply.raw.decode() + reply.msg.get_content()
        assert CONTACT not in text and "Eva" not in text and "Strand" not in text
        events = await rows(service, "SELECT kind FROM events ORDER BY id")
        assert {"reply", "relay"} <= {e["kind"] for e in events}


async def test_a_forged_business_question_over_smtp_is_never_relayed_into_the_company(tmp_path, sink):
    """An attacker mails a business question as a supplier; the trusted MX found DMARC fail.
    The redirect may go to that address, but nothing is forwarded to the company contacts."""
    verdict = "mx.support.test; dmarc=fail header.from=steelworks.example"  # added by the trusted MX
    forged = mail(**BUSINESS, headers={"Authentication-Results": verdict})
    async with running(write_config(tmp_path, relay_url=sink.url)) as service:
        await send(service, forged)
        await until(lambda: sink.messages)
        rows_out = await outbox_settled(service)
        assert [json.loads(r["recipients"]) for r in rows_out] == [[TOM]]  # the reply only
        assert all(CONTACT not in m.rcpt_tos for m in sink.messages)
        [decision] = await rows(service, "SELECT rules FROM events WHERE kind = 'decision'")
        assert "relay-withheld-forged-sender" in json.loads(decision["rules"])


async def test_duplicate_message_id_makes_no_second_ticket(tmp_path, sink):
    async with running(write_config(tmp_path, relay_url=sink.url)) as service:
        raw = mail(message_id="<same@steelworks.example>")
        assert "ticket #1001" in await send(service, raw)
        assert "ticket #1001" in await send(service, raw)  # 250 again (queued), filed as a duplicate
        await until(lambda: sink.messages)
        await outbox_settled(service)
        assert len(sink.messages) == 1
        assert len(await rows(service, "SELECT * FROM tickets")) == 1
        [dup] = await rows(service, "SELECT rules FROM events WHERE kind = 'duplicate'")
        assert json.loads(dup["rules"]) == ["intake-duplicate-message-id"]


async def test_foreign_recipients_and_oversized_mail_are_refused(tmp_path):
    async with running(write_config(tmp_path, max_size=20_000)) as service:
        for foreign in ("someone@elsewhere.example", CONTACT):  # never an open relay
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await send(service, mail(), rcpts=[foreign])
            assert refused.value.recipients[0].code == 550
            assert "5.1.1" in refused.value.recipients[0].message
        assert "ticket #1001" in await send(service, mail(to=OTHER_SUPPORT), rcpts=[OTHER_SUPPORT])
        big = mail(body="x" * 30_000)
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as announced:  # a client that announces SIZE=
            await send(service, big)
        assert announced.value.code == 552
        assert await asyncio.to_thread(data_without_size, service, big) == 552  # one that does not
        assert len(await rows(service, "SELECT * FROM messages WHERE direction = 'in'")) == 1


async def test_outbox_survives_a_restart_and_delivers_exactly_once(tmp_path, sink):
    folder = write_config(tmp_path, relay_url=f"smtp://127.0.0.1:{free_port()}")  # relay down
    async with running(folder) as service:
        await send(service, mail())
        await until(lambda: service.outbox.last_error)
    store = Store(load_config(folder).database)  # as if the process had died handing the mail over
    with store.transaction():
        store.db.execute("UPDATE outbox SET status = 'sending', next_attempt_at = ''")
    store.close()
    write_config(tmp_path, relay_url=sink.url)  # and the relay is back
    async with running(folder) as service:
        await until(lambda: sink.messages)
        [row] = await outbox_settled(service)
        assert row["status"] == "sent"
        assert [m.msg["Message-ID"] for m in sink.messages] == [row["message_id"]]
        rules = [json.loads(e["rules"]) for e in await rows(service, "SELECT rules FROM events ORDER BY id")]
        assert ["outbox-recovered"] in rules and ["outbox-delivered"] in rules


async def test_relay_down_then_up(tmp_path):
    port = free_port()
    async with running(write_config(tmp_path, relay_url=f"smtp://127.0.0.1:{port}"), retry_base=0.2) as service:
        await send(service, mail())
        await until(lambda: service.outbox.last_error)
        status = await health(service)
        assert status["database"] and status["outbox_backlog"] == 1 and status["last_error"]
        sink = Sink(port)
        try:
            await until(lambda: sink.messages)
            [row] = await outbox_settled(service)
            assert row["status"] == "sent" and row["attempts"] >= 2
            assert (await health(service))["outbox_backlog"] == 0
        finally:
            sink.close()


async def test_without_relay_mail_is_held_in_the_outbox(tmp_path):
    async with running(write_config(tmp_path)) as service:
        await send(service, mail())
        [row] = await rows(service, "SELECT status FROM outbox")
        assert row["status"] == "held_local"
        status = await health(service)
        assert status["relay"] == "" and status["outbox"] == {"held_local": 1} and status["outbox_backlog"] == 0
        assert status["status"] == "ok" and status["tasks"] == []  # no relay: no delivery loop, not a dead one


async def test_the_wal_is_checkpointed_while_the_service_runs(tmp_path):
    """A copy of the database file alone (what a naive backup takes) holds the mail filed a
    moment ago, and the WAL is emptied: the service's periodic checkpoint did it, not a stop."""
    import shutil
    import sqlite3

    async with running(write_config(tmp_path), checkpoint_every=0.2) as service:
        await send(service, mail())
        database = service.config.database
        wal = database.with_name(database.name + "-wal")

        def file_alone_holds_the_ticket() -> bool:
            copy = tmp_path / "copy.db"
            shutil.copyfile(database, copy)  # the main file only, never its -wal
            conn = sqlite3.connect(copy)
            try:
                tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
            except sqlite3.OperationalError:  # no tickets table yet: the schema is still only in the WAL
                return False
            finally:
                conn.close()
            return tickets == 1 and wal.stat().st_size == 0

        await until(file_alone_holds_the_ticket)
        assert service.last_error == "" and (await health(service))["status"] == "ok"


async def test_healthz_says_error_when_a_background_task_has_ended(tmp_path, sink, monkeypatch):
    from triage.service.outbox import Outbox

    async def crash(self, stop):  # noqa: ANN001, ANN202
        raise RuntimeError("boom")

    monkeypatch.setattr(Outbox, "run", crash)
    async with running(write_config(tmp_path, relay_url=sink.url)) as service:
        [task] = [t for t in service._tasks if t.get_name() == "triage-outbox"]
        await until(task.done)
        assert isinstance(task.exception(), RuntimeError)
        host, port = service.web_address
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{host}:{port}/healthz") as response:
                assert response.status == 503
                body = await response.json()
        assert body["status"] == "error" and body["database"] is True and body["tasks"] == ["triage-outbox"]


def test_triage_serve_runs_and_stops_cleanly_on_sigterm(tmp_path):
    import smtplib

    folder = write_config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "triage.cli", "--config", str(folder), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        lines = []
        while not lines or lines[-1] != "triage serve: ready\n":
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        smtp_port = int(next(x for x in lines if x.startswith("triage serve: smtp")).rpartition(":")[2])
        url = next(x for x in lines if x.startswith("triage serve: http")).split()[-1]
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail(TOM, [SUPPORT], mail())
        with urllib.request.urlopen(url, timeout=10) as response:
            assert json.load(response)["database"] is True
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "triage serve: stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_operator_commands(tmp_path, capsys):
    from triage.cli import main

    folder = write_config(tmp_path, smtp_port=free_port())
    config = ["--config", str(folder)]
    async with running(folder):
        assert await asyncio.to_thread(main, config + ["demo"]) == 0
    out = capsys.readouterr().out
    assert "sent 6 messages" in out and "#1001" in out and "#1006" in out
    assert "Hello Mikael Berg" in out  # a reply, as the supplier will read it
    assert "because:" in out and "reply-suppressed" not in out

    assert main(config + ["tickets", "--tenant", "acme", "--limit", "3"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 4 and listing[0].startswith("TICKET") and listing[1].startswith("#1006")
    assert main(config + ["tickets", "--category", "business"]) == 0
    assert "business/question" in capsys.readouterr().out

    assert main(config + ["ticket", "1002"]) == 0
    shown = capsys.readouterr().out
    assert "Conversation" in shown and "Audit trail" in shown and "thread-new-ticket" in shown
    assert main(config + ["ticket", "4242"]) == 1

    assert main(config + ["search", "аукцион"]) == 0
    assert "#1005" in capsys.readouterr().out
    assert main(config + ["outbox", "--status", "held_local"]) == 0
    assert "held_local" in capsys.readouterr().out

    csv = tmp_path / "users.csv"
    csv.write_text("email,name,company,role,status,invitation_expires\n"
                   + "".join(f"u{i}@steelworks.example,U {i},Steelworks,external_user,active,\n" for i in range(1200)))
    assert main(config + ["directory", "import", "acme", str(csv)]) == 0
    assert "imported 1200 users for acme" in capsys.readouterr().out
    csv.write_text("email,role\nnot-an-address,external_user\n")
    assert main(config + ["directory", "import", "acme", str(csv)]) == 2
    assert "is not an address" in capsys.readouterr().err
    assert main(config + ["directory", "import", "nobody", str(csv)]) == 2
