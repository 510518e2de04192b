"""The IMAP channel against a real Dovecot on loopback (tests/dovecot.py): mail is read,
filed and moved; restarts, crashes, renumbered folders and dropped connections neither
lose a mail nor file one twice; ``triage imap-check`` names what is wrong."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from channels import imap
from tests.dovecot import PASSWORD, Dovecot, free_port
from tests.servicekit import mail, write_config
from tests.waiting import until
from triage.cli import main
from triage.config import IMAP_KEYS, ConfigError, load_config
from triage.service.app import Service
from triage.store import Store

ENV = "TRIAGE_TEST_IMAP_PASSWORD"
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
FAST = {"backoff": (0.1, 0.5)}


def imap_table(port: int, folder: str = "INBOX", password_env: str = ENV, poll: int = 1,
               host: str = "127.0.0.1", user: str = "support") -> str:
    return (f'\n[[imap]]\nhost = "{host}"\nport = {port}\nsecurity = "none"\nuser = "{user}"\n'
            f'password_env = "{password_env}"\nfolder = "{folder}"\nprocessed_folder = "Processed"\n'
            f"poll_seconds = {poll}\n")


@pytest.fixture
def dovecot() -> Dovecot:
    server = Dovecot()
    yield server
    server.remove()


@pytest.fixture
def folder(tmp_path: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV, PASSWORD)
    config = write_config(tmp_path / "config")
    with (config / "tenants" / "acme.toml").open("a") as f:
        f.write(imap_table(dovecot.port))
    return config


def messages(n: int, start: int = 0) -> list[bytes]:
    return [mail(subject=f"Cannot log in ({i})", message_id=f"<imap-{i}@steelworks.example>")
            for i in range(start, start + n)]


@asynccontextmanager
async def running(folder: Path, deliver: Callable | None = None, lines: list[str] | None = None,
                  **options) -> AsyncIterator[Service]:
    service = Service(load_config(folder), out=(lines.append if lines is not None else lambda line: None))
    service.imap_options = {**FAST, **options}
    if deliver is not None:
        real = service.deliver_fetched
        service.deliver_fetched = lambda raw, mail_from, rcpts: deliver(real, raw, mail_from, rcpts)  # type: ignore[method-assign]
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def db(folder: Path, sql: str, params: list | None = None) -> list[dict]:
    store = Store(load_config(folder).database)
    try:
        return list(store.db.query(sql, params or []))
    finally:
        store.close()


def count(folder: Path, sql: str) -> int:
    return next(iter(db(folder, sql)[0].values()))


def tickets(folder: Path) -> int:
    return count(folder, "SELECT count(*) FROM tickets")


def inbound(folder: Path) -> list[str]:
    return sorted(r["message_id"] for r in db(folder, "SELECT message_id FROM messages WHERE direction = 'in'"))


def ids(n: int, start: int = 0) -> list[str]:
    return sorted(f"<imap-{i}@steelworks.example>" for i in range(start, start + n))


async def test_new_mail_is_filed_marked_read_and_moved(folder: Path, dovecot: Dovecot):
    dovecot.append(messages(3))
    # poll_seconds is 30: the fourth mail arriving within seconds proves IDLE, not polling
    text = (folder / "tenants" / "acme.toml").read_text().replace("poll_seconds = 1", "poll_seconds = 30")
    (folder / "tenants" / "acme.toml").write_text(text)
    async with running(folder) as service:
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 3)
        dovecot.append(messages(1, start=3))
        await until(blocking=True, check=lambda: len(dovecot.uids("Processed")) == 4, timeout=10)
        assert dovecot.uids("INBOX") == []
        assert all(b"\\Seen" in flags for flags in dovecot.flags("Processed").values())
        key = service.pollers[0].box.key
    assert inbound(folder) == ids(4)
    rows = db(folder, "SELECT tenant, channel FROM tickets")
    assert {(r["tenant"], r["channel"]) for r in rows} == {("acme", "email")}
    assert db(folder, "SELECT uidvalidity, last_uid FROM imap_state WHERE mailbox = ?", [key])[0]["last_uid"] == 4


async def test_restart_resumes_where_it_stopped(folder: Path, dovecot: Dovecot):
    dovecot.append(messages(2))
    async with running(folder):
        await until(blocking=True, timeout=20, check=lambda: tickets(folder) == 2 and len(dovecot.uids("Processed")) == 2)
    dovecot.append(messages(3, start=2))  # arrives while the service is down
    delivered: list[bytes] = []

    async def counting(real, raw, mail_from, rcpts):  # noqa: ANN001
        delivered.append(raw)
        return await real(raw, mail_from, rcpts)

    async with running(folder, counting):
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 5)
    assert len(delivered) == 3  # only the new mail was read again
    assert inbound(folder) == ids(5)


async def test_kill_between_fetch_and_commit_loses_and_duplicates_nothing(folder: Path, dovecot: Dovecot):
    dovecot.append(messages(10))
    calls = 0
    crashed = asyncio.Event()

    async def crashing(real, raw, mail_from, rcpts):  # noqa: ANN001
        nonlocal calls
        calls += 1
        n = calls
        if n == 8:  # fetched, never committed
            crashed.set()
            await asyncio.Event().wait()
        result = await real(raw, mail_from, rcpts)
        if n == 7:  # committed, but the process dies before \Seen and the move
            await asyncio.Event().wait()
        return result

    async with running(folder, crashing, batch=4) as service:
        await asyncio.wait_for(crashed.wait(), 20)
        await until(blocking=True, timeout=20, check=lambda: tickets(folder) == 7)
        for task in service.imap_tasks:  # the kill: the poller dies where it stands
            task.cancel()
        await asyncio.gather(*service.imap_tasks, return_exceptions=True)
    assert len(dovecot.uids("Processed")) == 4  # only the first batch was moved
    assert tickets(folder) == 7

    async with running(folder, batch=4):
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 10)
    assert inbound(folder) == ids(10)
    assert tickets(folder) == 10
    duplicates = count(folder, "SELECT count(*) FROM events WHERE rules LIKE '%intake-duplicate-message-id%'")
    assert duplicates == 3  # 5, 6 and 7 were committed before the kill and came again
    assert dovecot.uids("INBOX") == []


async def test_uidvalidity_change_resyncs_without_duplicates(tmp_path: Path, dovecot: Dovecot,
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ENV, PASSWORD)
    folder = write_config(tmp_path / "config")
    with (folder / "tenants" / "acme.toml").open("a") as f:
        f.write(imap_table(dovecot.port, folder="Support"))
    first = messages(2)
    dovecot.append(first, folder="Support")
    async with running(folder):
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 2)
    with dovecot.client() as c:  # the folder is deleted and made again: new UIDVALIDITY, UIDs from 1
        c.delete_folder("Support")
        c.create_folder("Support")
    dovecot.append([first[0]] + messages(1, start=2), folder="Support")
    lines: list[str] = []
    async with running(folder, lines=lines):
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 4)
    assert inbound(folder) == ids(3)
    assert tickets(folder) == 3
    assert any("UIDVALIDITY changed" in line for line in lines)
    events = db(folder, "SELECT rules, detail FROM events WHERE kind = 'imap-resync'")
    assert len(events) == 1 and json.loads(events[0]["rules"]) == ["imap-uidvalidity-changed"]
    assert count(folder, "SELECT count(*) FROM events WHERE rules LIKE '%intake-duplicate-message-id%'") == 1


async def test_connection_dropped_mid_fetch_reconnects_and_catches_up(folder: Path, dovecot: Dovecot):
    dovecot.append(messages(40))
    calls = 0
    dropped = asyncio.Event()

    async def dropping(real, raw, mail_from, rcpts):  # noqa: ANN001
        nonlocal calls
        calls += 1
        if calls == 15:  # the server dies while a batch is being delivered
            await asyncio.to_thread(dovecot.kill)
            dropped.set()
        return await real(raw, mail_from, rcpts)

    lines: list[str] = []
    async with running(folder, dropping, lines=lines, batch=10):
        await asyncio.wait_for(dropped.wait(), 20)
        await asyncio.sleep(0.5)  # a few refused reconnects
        await asyncio.to_thread(dovecot.start)
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 40)
        dovecot.append(messages(3, start=40))  # and the service is live again
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 43)
    assert inbound(folder) == ids(43)
    assert tickets(folder) == 43
    assert any("reconnecting in" in line for line in lines)
    assert sum("connected" in line and "reconnecting" not in line for line in lines) >= 2


async def test_mail_that_keeps_failing_is_quarantined_once(folder: Path, dovecot: Dovecot):
    bad = mail(subject="Poison", message_id="<poison@steelworks.example>")
    dovecot.append([messages(1)[0], bad] + messages(1, start=1))
    tries = 0

    async def failing(real, raw, mail_from, rcpts):  # noqa: ANN001
        nonlocal tries
        if b"<poison@" in raw:
            tries += 1
            raise ValueError("cannot process this one")
        return await real(raw, mail_from, rcpts)

    async with running(folder, failing, max_attempts=2):
        await until(blocking=True, timeout=20, check=lambda: len(dovecot.uids("Processed")) == 2
                    and count(folder, "SELECT count(*) FROM quarantine") == 1)
        await asyncio.sleep(2.5)  # two more poll cycles: the poison mail is not fetched again
    assert tries == 2
    assert inbound(folder) == ids(2)
    (row,) = db(folder, "SELECT raw, error FROM quarantine")
    assert row["raw"] == bad and "cannot process" in row["error"]
    (event,) = db(folder, "SELECT rules, detail FROM events WHERE kind = 'quarantined'")
    assert json.loads(event["rules"]) == ["imap-quarantined"]
    left = dovecot.flags("INBOX")
    assert len(left) == 1
    (flags,) = left.values()
    assert b"\\Flagged" in flags and imap.QUARANTINE_KEYWORD in flags and b"\\Seen" not in flags


def test_imap_check_says_what_is_wrong(folder: Path, dovecot: Dovecot, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch):
    dovecot.append(messages(2))
    with dovecot.client() as c:
        uidvalidity = c.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    monkeypatch.setenv("TRIAGE_TEST_WRONG_PASSWORD", "not-the-password")
    closed = free_port()
    with (folder / "tenants" / "acme.toml").open("a") as f:
        f.write(imap_table(dovecot.port, folder="Nope"))
        f.write(imap_table(closed))
        f.write(imap_table(dovecot.port, password_env="TRIAGE_TEST_UNSET_PASSWORD"))
        f.write(imap_table(dovecot.port, host="no-such-host.invalid"))
        # last: after a failed login Dovecot delays the next ones from the same address
        f.write(imap_table(dovecot.port, password_env="TRIAGE_TEST_WRONG_PASSWORD"))
    code = main(["--config", str(folder), "imap-check", "acme", "--timeout", "5"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert len(out) == 6
    assert "OK: 2 messages in INBOX" in out[0] and f"UIDVALIDITY {uidvalidity}" in out[0] and "IDLE" in out[0]
    assert "folder: 'Nope' does not exist" in out[1] and "INBOX" in out[1]
    assert f"connection refused by 127.0.0.1:{closed}" in out[2]
    assert "TRIAGE_TEST_UNSET_PASSWORD is not set" in out[3]
    assert "DNS: cannot resolve 'no-such-host.invalid'" in out[4]
    assert "login: failed for user 'support'" in out[5] and "[AUTHENTICATIONFAILED]" in out[5]


def test_imap_check_ok_exits_zero(folder: Path, dovecot: Dovecot, capsys: pytest.CaptureFixture[str]):
    assert main(["--config", str(folder), "imap-check", "acme"]) == 0
    assert "OK: 0 messages in INBOX" in capsys.readouterr().out


@pytest.mark.parametrize("line, error", [
    ('security = "ssl"', "security must be one of"),
    ("port = 70000", "port must be 0..65535"),
    ('processed_folder = "INBOX"', "processed_folder must differ"),
    ("poll_seconds = 0", "poll_seconds must be at least 1"),
    ('colour = "blue"', "unknown key imap[0].'colour'"),
])
def test_bad_imap_settings_are_named(tmp_path: Path, line: str, error: str):
    folder = write_config(tmp_path / "config")
    key = line.split(" =")[0]
    table = "\n".join(row for row in imap_table(143).splitlines() if not row.startswith(key + " ="))
    with (folder / "tenants" / "acme.toml").open("a") as f:
        f.write(table + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("(", r"\(")):
        load_config(folder)


def test_imap_keys_and_rules_documented():
    missing = [k for k in IMAP_KEYS if f"`imap.{k}`" not in README]
    missing += [r for r in imap.RULES if f"`{r}`" not in README]
    assert not missing, f"missing from README: {missing}"
    assert "triage imap-check" in README
