"""Tenant, requester role, company and similar/public domains."""
from __future__ import annotations

import pytest

from tests.conftest import make_email
from triage.core.domains import is_public, registrable, similar
from triage.core.identify import identify, mail_system
from triage.core.message import Message
from triage.core.parse import parse_chat, parse_email


@pytest.mark.parametrize("domain, expected", [
    ("kyivcable.com.ua", "kyivcable.com.ua"), ("norr.skogpack.se", "skogpack.se"),
    ("us.company.com", "company.com"), ("mail.helios-energy.co.uk", "helios-energy.co.uk"),
])
def test_registrable_domain_uses_the_public_suffix_list(domain, expected):
    assert registrable(domain) == expected


@pytest.mark.parametrize("a, b, expected", [
    ("us.company.com", "company.com", True),
    ("xyz-inc.com", "xyz-solutions.com", True),
    ("norr.skogpack.se", "skogpack.se", True),
    ("kyivcable.com.ua", "cable.com.ua", False),
    ("balticsteel.lt", "nordvik.se", False),
    ("gmail.com", "gmail.com", False),  # public providers are never "the same company"
    ("acme-group.com", "other-group.com", False),  # generic words do not make a match
])
def test_similar_domains(a, b, expected):
    assert similar(a, b) is expected


@pytest.mark.parametrize("domain", ["gmail.com", "mail.ru", "ukr.net", "i.ua", "web.de", "gmx.de",
                                    "yandex.ru", "outlook.com", "hotmail.com", "yahoo.com"])
def test_public_providers(domain):
    assert is_public(domain)


def test_no_network_for_tldextract(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("tldextract tried the network")
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert registrable("a.b.example.co.uk") == "example.co.uk"


def _who(config, raw: bytes):
    return identify(parse_email(raw), config)


def test_tenant_from_recipient_and_roles(config):
    who = _who(config, make_email("petra.admin@steelworks.lt"))
    assert who.tenant.slug == "acme" and who.requester == "external"
    assert who.company == "Steelworks UAB"
    assert [u.email for u in who.colleagues] == ["tom.user@steelworks.lt"]
    assert "requester-in-directory-external_admin-active" in who.reasons


def test_internal_by_domain_even_when_not_in_directory(config):
    who = _who(config, make_email("new.buyer@acme.se"))
    assert who.requester == "internal"


def test_unknown_company_domain_is_external_public_is_unknown(config):
    assert _who(config, make_email("ceo@new-supplier.ee")).requester == "external"
    who = _who(config, make_email("someone@gmail.com"))
    assert who.requester == "unknown" and who.public_provider


def test_colleague_found_by_domain_for_unknown_sender(config):
    who = _who(config, make_email("new.person@steelworks.lt"))
    assert who.requester == "external"
    assert [u.email for u in who.active_external_admins] == ["petra.admin@steelworks.lt"]
    assert who.company == "Steelworks UAB"


def test_shared_noreply_address_resolved_by_sender_directory(config):
    who = _who(config, make_email("jo.smith@zenith-power.co.uk", to="noreply@support.test"))
    assert who.tenant.slug == "zenith"
    who = _who(config, make_email("stranger@example.org", to="noreply@support.test"))
    assert who.tenant is None and "tenant-ambiguous-shared-address" in who.reasons


def test_chat_line_names_its_tenant(config):
    msg = parse_chat({"id": "c1", "channel": "widget", "tenant": "zenith", "from": "x@y.com", "text": "hi"})
    assert identify(msg, config).tenant.slug == "zenith"


def test_bounce_to_bot_address_tenant_only_from_bounced_headers(config):
    bare = Message(channel="email", id="<b@x>", sender="mailer-daemon@mx.example",
                   recipients=["support@support.test"])
    assert identify(bare, config).tenant is None


def test_a_bounce_is_written_by_a_mail_system_not_by_a_supplier(config):
    """A company's mail server returning our reply is nobody the desk can help: requester
    unknown, unless the address itself is in the directory."""
    server = identify(parse_email(make_email(sender="mailer-daemon@mail.steelworks.lt")), config)
    assert server.requester == "external"
    got = mail_system(server)
    assert got.requester == "unknown" and got.reasons[-1] == "requester-mail-system"
    listed = identify(parse_email(make_email(sender="tom.user@steelworks.lt")), config)
    assert mail_system(listed).requester == "external"
