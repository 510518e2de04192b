"""Every mail-side attack of SECURITY.md, performed over loopback SMTP the way an attacker
would: against the service in the test's event loop, and all together against
``triage serve`` started as a subprocess on a copy of ../shared/eval/config. The relay
is a recording aiosmtpd sink (it answers 500 to lines over 998 octets, as relays do)."""
from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests import mailattacks
from tests.conftest import need_shared
from tests.mailattacks import Ctx, Target
from tests.servicekit import BOT, CONTACT, OTHER_SUPPORT, SUPPORT, Sink, write_config
from tests.test_service_e2e import running

REPO = Path(__file__).resolve().parents[1]
ACME = Target(tenant="acme", support=SUPPORT, other_support=OTHER_SUPPORT, bot=BOT, trusted_id="mx.support.test",
              invited="ola@kyivcable.example", contact=CONTACT)
EVAL = Target(tenant="nordvik", support="nordvik@support.portal.example",
              other_support="helios@support.portal.example", bot="support@portal.example",
              trusted_id="mx.portal.example", invited="olena.koval@kyivcable.com.ua", contact="sara.holm@nordvik.se")


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


async def in_process(tmp_path: Path, sink: Sink, attack) -> None:  # noqa: ANN001 - one of mailattacks.ATTACKS
    async with running(write_config(tmp_path, relay_url=sink.url), retry_base=0.2) as service:
        async def query(sql: str, params: list) -> list[dict]:
            return await service.run_db(lambda: list(service.store.db.query(sql, params)))
        host, port = service.web_address
        await attack(Ctx(ACME, service.smtp_address, query, sink, f"http://{host}:{port}/healthz"))


async def test_forged_dmarc_below_the_mx_header_renews_no_invitation(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_forged_dmarc_below_the_mx_header)


async def test_a_forged_bounce_quoting_our_ack_silences_no_bystander(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_forged_bounce_silences_a_bystander)


async def test_a_long_display_name_loses_neither_reply_nor_relay(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_long_display_name)


async def test_unsendable_recipients_fail_alone_and_at_once(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_unsendable_recipients)


async def test_a_signed_reference_to_the_bot_address_joins_only_its_ticket_and_gets_no_reply(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_signed_reference_to_the_bot_address)


async def test_mail_from_a_subaddress_of_our_own_gets_no_reply(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_from_own_subaddress)


async def test_a_mime_tree_thousands_deep_is_still_the_tenants_ticket(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_deep_mime)


def serve_config(folder: Path, relay_url: str) -> Path:
    """A copy of the evaluation configuration on free loopback ports, its database in tmp."""
    shutil.copytree(need_shared("eval", "config"), folder)
    toml = (folder / "triage.toml").read_text()
    for key, value in (("database", '"var/triage.db"'), ("listen", '"127.0.0.1:0"'), ("relay_url", f'"{relay_url}"')):
        toml, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", toml)
        assert n, key
    (folder / "triage.toml").write_text(toml)
    return folder


async def test_triage_serve_on_the_eval_config_holds_every_mail_attack(tmp_path, sink):
    folder = serve_config(tmp_path / "config", sink.url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "triage.cli", "--config", str(folder), "serve", cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines: list[str] = []
        while not lines or lines[-1] != "triage serve: ready":
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "\n".join(lines)
            lines.append(line.decode().rstrip("\n"))
        smtp_port = int(next(x for x in lines if x.startswith("triage serve: smtp")).rpartition(":")[2])
        healthz = next(x for x in lines if x.startswith("triage serve: http")).split()[-1]
        database = folder / "var" / "triage.db"

        def read(sql: str, params: list) -> list[dict]:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
                db.row_factory = sqlite3.Row
                return [dict(r) for r in db.execute(sql, params)]

        async def query(sql: str, params: list) -> list[dict]:
            return await asyncio.to_thread(read, sql, params)

        ctx = Ctx(EVAL, ("127.0.0.1", smtp_port), query, sink, healthz)
        for attack in mailattacks.ATTACKS:
            await attack(ctx)
        await ctx.healthy()
        assert proc.returncode is None  # the service is still up after all of it
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
