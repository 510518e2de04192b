"""Mail domains: registrable parts, public providers, and "obviously similar" companies.

The support policy lets an external admin's colleague in when the address is at an
obviously similar domain (``us.company.com`` vs ``company.com``, ``xyz-inc.com`` vs
``xyz-solutions.com``) and never for public mailboxes. Public suffixes come from
tldextract's bundled snapshot of the Public Suffix List: it must never touch the network.
"""
from __future__ import annotations

import re
from functools import lru_cache

import tldextract

from triage import DATA

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # bundled snapshot only
_PROVIDERS_FILE = DATA / "public_providers.txt"
# Words that name a company's legal form or line of business, not the company itself.
_GENERIC = {"inc", "llc", "ltd", "gmbh", "ag", "ab", "oy", "as", "sa", "srl", "sro", "uab", "tov",
            "group", "holding", "company", "co", "corp", "solutions", "services", "service",
            "international", "global", "sales", "mail", "the"}


def _load_providers() -> frozenset[str]:
    lines = _PROVIDERS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


PUBLIC_PROVIDERS = _load_providers()


@lru_cache(maxsize=65536)
def registrable(domain: str) -> str:
    """``norr.skogpack.se`` -> ``skogpack.se``; ``kyivcable.com.ua`` stays whole."""
    parts = _EXTRACT(domain.lower().strip("."))
    return parts.top_domain_under_public_suffix or domain.lower()


def is_public(domain: str) -> bool:
    """True for free mailbox providers (gmail.com, mail.ru, ukr.net, …)."""
    domain = domain.lower()
    return domain in PUBLIC_PROVIDERS or registrable(domain) in PUBLIC_PROVIDERS


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower() if "@" in address else ""


def _name_tokens(domain: str) -> set[str]:
    label = registrable(domain).split(".")[0]
    return {t for t in re.split(r"[-_.\d]+", label) if len(t) >= 3 and t not in _GENERIC}


def same_organisation(a: str, b: str) -> bool:
    """Same registrable domain: ``norr.skogpack.se`` and ``skogpack.se``."""
    return bool(a and b) and registrable(a) == registrable(b)


def similar(a: str, b: str) -> bool:
    """Obviously the same company under another domain, and neither is a public provider.

    Either the registrable domains are equal (subdomains) or their names share a
    distinctive word (``xyz-inc`` and ``xyz-solutions`` share ``xyz``).
    """
    if not a or not b or is_public(a) or is_public(b):
        return False
    if same_organisation(a, b):
        return True
    return bool(_name_tokens(a) & _name_tokens(b))


def base_address(address: str) -> str:
    """``local+detail@domain`` as ``local@domain``, lower-cased: a subaddress (RFC 5233)
    reaches the same mailbox, so for loop protection it is the same address."""
    local, at, domain = address.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if at else address.strip().lower()
