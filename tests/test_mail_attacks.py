"""Every mail-side attack of SECURITY.md, performed over loopback SMTP the way an attacker
would: against the service in the test's event loop, and all together against
``triage serve`` started as a subprocess on a copy of ../shared/eval/config, watched by
tests/serving.py (/healthz 200 throughout, still up, no 500 at the end). The relay
is a recording aiosmtpd sink (it answers 500 to lines over 998 octets, as relays do)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests import mailattacks
from tests.mailattacks import ACME, EVAL, Ctx
from tests.servicekit import Sink, write_config
from tests.serving import serve_config, triage_serve
from tests.test_service_e2e import running


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


async def test_a_relay_flood_from_one_mailbox_reaches_the_contacts_five_times(tmp_path, sink):
    await in_process(tmp_path, sink, mailattacks.attack_relay_flood)


async def test_triage_serve_on_the_eval_config_holds_every_mail_attack(tmp_path, sink):
    async with triage_serve(serve_config(tmp_path / "config", sink.url)) as served:
        ctx = Ctx(EVAL, served.smtp, served.query, sink, served.healthz)
        for attack in mailattacks.ATTACKS:
            await attack(ctx)
