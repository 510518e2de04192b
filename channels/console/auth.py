"""Sign-in for the console: signed session cookies, CSRF tokens and login rate limits.

A session is a cookie the browser cannot read (``HttpOnly``), that is not sent with
cross-site requests (``SameSite=Lax``) and that nobody can forge: its payload (agent,
password fingerprint, session id, expiry) is signed with HMAC-SHA256. The key comes from
``TRIAGE_CONSOLE_KEY``, or else a random key kept in the database's ``settings`` table (as
for the Message-ID signing key). Binding the cookie to the password's fingerprint means a
new password or a removed agent ends every open session.

CSRF: every form and state-changing request carries a token derived from the session id
(before sign-in, from a random login cookie), compared in constant time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from aiohttp import web

KEY_ENV = "TRIAGE_CONSOLE_KEY"
KEY_SETTING = "console_session_key"
SESSION_COOKIE = "triage_session"
LOGIN_COOKIE = "triage_login"
SESSION_SECONDS = 12 * 3600


def console_key(store_random_key: bytes) -> bytes:
    """The signing key: the environment's, else the one kept in the database."""
    value = os.environ.get(KEY_ENV, "")
    return value.encode() if value else store_random_key


@dataclass(frozen=True)
class Session:
    email: str
    fingerprint: str
    sid: str
    expires: int


class Signer:
    def __init__(self, key: bytes):
        self.key = key

    def _mac(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.key, data, hashlib.sha256).digest()).decode().rstrip("=")

    def session_cookie(self, email: str, fingerprint: str, now: float | None = None) -> str:
        payload = {"e": email, "f": fingerprint, "s": secrets.token_urlsafe(16),
                   "x": int((now or time.time()) + SESSION_SECONDS)}
        data = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{data}.{self._mac(data.encode())}"

    def session(self, cookie: str, now: float | None = None) -> Session | None:
        """The session in a cookie, or None when it is forged, malformed or expired."""
        data, _, mac = cookie.partition(".")
        if not data or len(cookie) > 2000 or not hmac.compare_digest(mac.encode(), self._mac(data.encode()).encode()):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
            session = Session(str(payload["e"]), str(payload["f"]), str(payload["s"]), int(payload["x"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > (now or time.time()) else None

    def csrf(self, purpose: str, sid: str) -> str:
        return self._mac(f"csrf|{purpose}|{sid}".encode())

    def csrf_ok(self, purpose: str, sid: str, token: str) -> bool:
        return bool(sid) and hmac.compare_digest(token.encode(), self.csrf(purpose, sid).encode())


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
               max_age: int | None, samesite: str = "Lax") -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite=samesite,
                        secure=request.secure)
