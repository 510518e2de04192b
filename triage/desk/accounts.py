"""Agents of the web console: who they are, their password, the tenants they may see.

Passwords are hashed with argon2id (argon2-cffi's defaults, rehashed when those change);
the database never holds a password. An agent with no tenants listed sees every tenant.
``fingerprint`` lets a session cookie be bound to the password it was opened with, so
changing a password or removing the agent ends every session at once; signing out ends one
session, by its id (``end_session``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from triage.store import Store, iso

_HASHER = PasswordHasher()
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a login request cheap
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")


@cache
def _dummy() -> str:
    """Checked against when the address is unknown, so a wrong address costs as much time as a
    wrong password. Made at the first sign-in, whoever signs in (so no address is told apart by
    paying for it), not at import: hashing takes argon2's 64 MiB and 0.2 s, which every process
    importing this module (the mail service included) paid at start for nothing."""
    return _HASHER.hash("not a password of anybody")


class AccountError(ValueError):
    """Bad input for an account (address, password, tenant): said back as it is."""


@dataclass(frozen=True)
class Agent:
    email: str
    name: str
    tenants: tuple[str, ...] | None  # None: every tenant
    fingerprint: str  # changes with the password

    def may_see(self, tenant: str | None) -> bool:
        return self.tenants is None or tenant in self.tenants

    def visible(self, all_tenants: list[str]) -> list[str]:
        return list(all_tenants) if self.tenants is None else [t for t in all_tenants if t in self.tenants]


def _agent(row: dict[str, Any]) -> Agent:
    tenants = json.loads(row["tenants"]) if row["tenants"] else None
    return Agent(row["email"], row["name"], tuple(tenants) if tenants is not None else None,
                 hashlib.sha256(row["password_hash"].encode()).hexdigest()[:16])


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")


class Accounts:
    """Agent accounts over the store (the CLI's own store, or the service's database thread)."""

    def __init__(self, store: Store, known_tenants: list[str]):
        self.store = store
        self.known_tenants = known_tenants

    def add(self, email: str, name: str, password: str, tenants: list[str] | None, now: datetime) -> Agent:
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise AccountError(f"{email!r} is not an email address")
        if not name.strip():
            raise AccountError("the agent needs a name")
        check_password(password)
        unknown = [t for t in tenants or [] if t not in self.known_tenants]
        if unknown:
            raise AccountError(f"unknown tenant {', '.join(unknown)} (known: {', '.join(self.known_tenants)})")
        with self.store.transaction():
            if self.get(email) is not None:
                raise AccountError(f"{email} is already an agent (use `triage agents password` to change it)")
            self.store.db["agents"].insert({
                "email": email, "name": name.strip(), "password_hash": _HASHER.hash(password),
                "tenants": json.dumps(sorted(set(tenants))) if tenants else None, "created_at": iso(now)})
        agent = self.get(email)
        assert agent is not None
        return agent

    def get(self, email: str) -> Agent | None:
        row = self.store._one("SELECT * FROM agents WHERE email = ?", [email.strip().lower()])
        return _agent(row) if row else None

    def list(self) -> list[Agent]:
        return [_agent(r) for r in self.store.db.query("SELECT * FROM agents ORDER BY email")]

    def remove(self, email: str) -> None:
        with self.store.transaction():
            if self.get(email) is None:
                raise AccountError(f"no agent {email}")
            self.store.db.execute("DELETE FROM agents WHERE email = ?", [email.strip().lower()])

    def set_password(self, email: str, password: str) -> None:
        check_password(password)
        with self.store.transaction():
            if self.get(email) is None:
                raise AccountError(f"no agent {email}")
            self.store.db.execute("UPDATE agents SET password_hash = ? WHERE email = ?",
                                  [_HASHER.hash(password), email.strip().lower()])

    def verify(self, email: str, password: str) -> Agent | None:
        """The agent when the password is right, None otherwise (same cost either way)."""
        dummy = _dummy()
        row = self.store._one("SELECT * FROM agents WHERE email = ?", [email.strip().lower()])
        if len(password) > MAX_PASSWORD:
            return None
        try:
            _HASHER.verify(row["password_hash"] if row else dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if _HASHER.check_needs_rehash(row["password_hash"]):
            with self.store.transaction():
                self.store.db.execute("UPDATE agents SET password_hash = ? WHERE email = ?",
                                      [_HASHER.hash(password), row["email"]])
            return self.get(row["email"])
        return _agent(row)

    def end_session(self, sid: str, expires: int, now: datetime) -> None:
        """Sign-out: the session id is refused from now until the cookie would expire anyway
        (``expires``, seconds since the epoch); rows of sessions expired since are dropped."""
        with self.store.transaction():
            self.store.db.execute("DELETE FROM console_signouts WHERE expires_at <= ?", [iso(now)])
            self.store.db.execute("INSERT OR REPLACE INTO console_signouts (sid, expires_at) VALUES (?, ?)",
                                  [sid, iso(datetime.fromtimestamp(expires, timezone.utc))])

    def session_agent(self, email: str, sid: str) -> Agent | None:
        """The agent of a session cookie's payload, or None once that session was signed out."""
        if self.store._one("SELECT 1 AS ended FROM console_signouts WHERE sid = ?", [sid]):
            return None
        return self.get(email)
