"""Widget identity by a short-lived JWT (triage/core/widget_identity.py), attacked over HTTP: the
tokens an attacker would try — expired, dated in the future, ``alg: none``, signed with a
guessed key, HS512, an RS256 token forged with the secret as "public key", another address,
a token valid for a year — each leaves the visitor unverified, with its own rule id."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest

from tests.test_widget_api import ANNA, LOGIN, PORTAL, SECRET, rows, session, widget_config  # noqa: F401
from triage.config import load_config
from triage.core.widget_identity import LEEWAY, MAX_LIFETIME
from triage.service.app import Service


@pytest.fixture
async def service(tmp_path):  # noqa: ANN001, ANN201
    """The widget test service, with room for many messages from one address (the rate limit
    is not what these tests are about)."""
    folder = widget_config(tmp_path / "config")
    acme = folder / "tenants" / "acme.toml"
    acme.write_text(acme.read_text().replace('widget_rate_limits = ["4/60"]', 'widget_rate_limits = ["100/60"]'))
    service = Service(load_config(folder), out=lambda line: None)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def token(claims: dict | None = None, key: str = SECRET, algorithm: str = "HS256", **changes) -> str:
    now = int(time.time())
    body = {"sub": ANNA, "name": "Anna", "iat": now, "exp": now + 3600, **(claims or {})}
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return jwt.encode(body, key, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A token written by hand, as an attacker does when a library would refuse to make it."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signature)}"


async def post(service, session, user_token: str, email: str = ANNA) -> tuple[bool, list[str]]:  # noqa: ANN001
    host, port = service.web_address
    line = {"text": LOGIN, "email": email, "name": "Anna", "client_id": uuid.uuid4().hex, "token": "",
            "user_token": user_token}
    async with session.post(f"http://{host}:{port}/widget/api/acme/messages", json=line,
                            headers={"Origin": PORTAL}) as r:
        data = await r.json()
        assert r.status == 200, data
    [ticket] = await rows(service, "SELECT id, trust FROM tickets WHERE number = ?", [data["ticket"]])
    [decision] = await rows(service, "SELECT rules FROM events WHERE ticket = ? AND kind = 'decision'",
                            [ticket["id"]])
    assert (ticket["trust"] == "verified") is data["verified"]
    return data["verified"], json.loads(decision["rules"])


async def test_a_valid_token_verifies_the_visitor(service, session):
    verified, rules = await post(service, session, token())
    assert verified and "trust-widget-jwt" in rules


def rsa_confusion() -> str:
    """RS256 "signed" with the HMAC secret: the classic attack on libraries that let the token
    choose the algorithm and use the secret as the RSA public key."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"sub": ANNA, "iat": now, "exp": now + 600}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return hand_made(header, claims, hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())


def attacks() -> list[tuple[str, str, str]]:
    now = int(time.time())
    return [
        ("expired", token(iat=now - 7200, exp=now - 3600), "trust-widget-jwt-expired"),
        ("nbf in the future", token(nbf=now + 3600, exp=now + 7200), "trust-widget-jwt-not-yet-valid"),
        ("iat in the future", token(iat=now + 3600, exp=now + 7200), "trust-widget-jwt-not-yet-valid"),
        ("alg none", hand_made({"alg": "none", "typ": "JWT"}, {"sub": ANNA, "exp": now + 600}),
         "trust-widget-jwt-bad-algorithm"),
        ("alg None", hand_made({"alg": "None"}, {"sub": ANNA, "exp": now + 600}), "trust-widget-jwt-bad-algorithm"),
        ("wrong key", token(key="guessed-secret-guessed-secret-guessed"), "trust-widget-jwt-bad-signature"),
        ("HS512", token(algorithm="HS512"), "trust-widget-jwt-bad-algorithm"),
        ("RS256 confusion", rsa_confusion(), "trust-widget-jwt-bad-algorithm"),
        ("another address", token(sub="eva.strand@acme.example"), "trust-widget-jwt-sub-mismatch"),
        ("no exp", token(exp=None), "trust-widget-jwt-malformed"),
        ("no sub", token(sub=None), "trust-widget-jwt-malformed"),
        ("a year long", token(exp=now + 365 * 86400), "trust-widget-jwt-too-long-lived"),
        ("a year long, no iat", token(iat=None, exp=now + 365 * 86400), "trust-widget-jwt-too-long-lived"),
        ("garbage", "not.a.jwt", "trust-widget-jwt-malformed"),
        ("signature stripped", token().rsplit(".", 1)[0] + ".", "trust-widget-jwt-bad-signature"),
    ]


async def test_forged_and_stale_tokens_leave_the_visitor_unverified(service, session):
    for name, forged, rule in attacks():
        verified, rules = await post(service, session, forged)
        assert not verified and rule in rules, (name, rules)
        assert "trust-widget-jwt" not in rules, name


async def test_a_valid_token_beats_no_hash_and_an_invalid_one_does_not_fall_back_to_the_hash(service, session):
    """A portal that sends tokens has moved to JWT: a bad token is not rescued by an old hash."""
    from triage.core.trust import widget_hash

    host, port = service.web_address
    line = {"text": LOGIN, "email": ANNA, "client_id": uuid.uuid4().hex, "token": "",
            "user_hash": widget_hash(SECRET, ANNA), "user_token": token(exp=int(time.time()) - LEEWAY - 60)}
    async with session.post(f"http://{host}:{port}/widget/api/acme/messages", json=line) as r:
        assert (await r.json())["verified"] is False


def test_the_longest_lifetime_is_a_day():
    assert MAX_LIFETIME == 24 * 3600
    now = int(time.time())
    from triage.core.widget_identity import verify

    assert verify(SECRET, ANNA, token(iat=now, exp=now + MAX_LIFETIME)).verified
    assert verify(SECRET, ANNA, token(iat=now, exp=now + MAX_LIFETIME + 60)).reason == "trust-widget-jwt-too-long-lived"
    assert verify("", ANNA, token()).reason == "trust-widget-jwt-bad-signature"  # no secret, nothing to check


@pytest.mark.parametrize("field", ["user_token"])
async def test_an_overlong_or_binary_token_is_a_400(service, session, field):
    host, port = service.web_address
    for value, says in (("x" * 5000, "too long"), ("a\x00b", "control"), (12, "string")):
        line = {"text": LOGIN, "email": ANNA, "client_id": uuid.uuid4().hex, field: value}
        async with session.post(f"http://{host}:{port}/widget/api/acme/messages", json=line) as r:
            data = await r.json()
            assert r.status == 400 and field in data["detail"] and says in data["detail"], data
