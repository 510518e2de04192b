"""The tenant's user directory: who exists, in which company, with which role and status.

It is a CSV export of the portal's users (``email,name,company,role,status,invitation_expires``)
so that a desk can refresh it with one command; the decision rules read it to tell a
supplier's admin from a stranger, and an invited address from a deactivated one.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROLES = ("internal_admin", "internal_user", "external_admin", "external_user")
STATUSES = ("active", "invited", "deactivated")
COLUMNS = ("email", "name", "company", "role", "status", "invitation_expires")


class DirectoryError(ValueError):
    """A directory file has a wrong column or value."""


@dataclass(frozen=True)
class User:
    email: str
    name: str
    company: str
    role: str
    status: str
    invitation_expires: date | None

    @property
    def internal(self) -> bool:
        return self.role.startswith("internal")

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


class Directory:
    """Users of one tenant, indexed by address."""

    def __init__(self, users: list[User]):
        self.users = users
        self._by_email = {u.email: u for u in users}

    def get(self, email: str) -> User | None:
        return self._by_email.get(email.lower())

    def of_company(self, company: str) -> list[User]:
        key = company.casefold()
        return [u for u in self.users if u.company.casefold() == key]

    def __len__(self) -> int:
        return len(self.users)


def parse_rows(rows: list[dict[str, str]], source: str) -> list[User]:
    """Validate CSV rows into users; the line number is in every error."""
    users = []
    for line, row in enumerate(rows, start=2):
        email = (row.get("email") or "").strip().lower()
        role = (row.get("role") or "").strip()
        status = (row.get("status") or "active").strip()
        if "@" not in email:
            raise DirectoryError(f"{source}:{line}: email {email!r} is not an address")
        if role not in ROLES:
            raise DirectoryError(f"{source}:{line}: role {role!r} is not one of {ROLES}")
        if status not in STATUSES:
            raise DirectoryError(f"{source}:{line}: status {status!r} is not one of {STATUSES}")
        expires = (row.get("invitation_expires") or "").strip()
        try:
            when = date.fromisoformat(expires) if expires else None
        except ValueError:
            raise DirectoryError(f"{source}:{line}: invitation_expires {expires!r} is not YYYY-MM-DD") from None
        users.append(User(email, (row.get("name") or "").strip(), (row.get("company") or "").strip(),
                          role, status, when))
    return users


def read_csv(path: Path) -> list[User]:
    """Read a directory CSV file."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"email", "role"} - set(reader.fieldnames or [])
            if missing:
                raise DirectoryError(f"{path}: missing column(s) {sorted(missing)}; expected {COLUMNS}")
            return parse_rows(list(reader), str(path))
    except FileNotFoundError:
        raise DirectoryError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DirectoryError(f"{path}: cannot read: {e}") from None


def load_directory(path: Path) -> Directory:
    return Directory(read_csv(path))
