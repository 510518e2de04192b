"""Who wrote, to which tenant: tenant from the recipient, requester role from the directory.

Requester is ``internal`` (the tenant's own staff: its directory or its domains),
``external`` (a supplier: in the directory, or a company mail domain that is not the
tenant's) or ``unknown`` (a public mailbox or no address: anyone could be behind it).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from triage.config import Config, Tenant
from triage.core.directory import User
from triage.core.domains import domain_of, is_public, same_organisation
from triage.core.message import Message


@dataclass
class Identity:
    tenant: Tenant | None
    requester: str  # internal / external / unknown
    user: User | None  # the sender's directory entry, if any
    company: str  # the sender's company as far as we know it
    public_provider: bool
    colleagues: list[User] = field(default_factory=list)  # others at the sender's company
    reasons: list[str] = field(default_factory=list)

    @property
    def active_external_admins(self) -> list[User]:
        """Admins of the sender's company who can add users in the portal themselves."""
        return [u for u in self.colleagues if u.role == "external_admin" and u.status == "active"]


def find_tenant(msg: Message, config: Config, reasons: list[str]) -> Tenant | None:
    """The tenant from the chat line or the recipient addresses (shared addresses: the sender)."""
    if msg.tenant_hint:
        tenant = config.tenants.get(msg.tenant_hint)
        reasons.append("tenant-from-channel" if tenant else "tenant-unknown-slug")
        return tenant
    candidates: list[Tenant] = []
    for rcpt in msg.recipients:
        for tenant in config.tenant_for_address(rcpt):
            if tenant not in candidates:
                candidates.append(tenant)
    if len(candidates) == 1:
        reasons.append("tenant-from-recipient")
        return candidates[0]
    if candidates:
        known = [t for t in candidates if t.directory.get(msg.sender)]
        if len(known) == 1:
            reasons.append("tenant-from-sender-directory")
            return known[0]
        reasons.append("tenant-ambiguous-shared-address")
        return None
    if config.email["from_address"] in msg.recipients:
        return _tenant_of_bounced(msg, config, reasons)
    reasons.append("tenant-not-found")
    return None


def _tenant_of_bounced(msg: Message, config: Config, reasons: list[str]) -> Tenant | None:
    """Mail to the bot's own address (bounces of its replies) names a tenant only when the
    returned message's headers carry one of the tenant's support addresses."""
    for text in msg.returned_headers():
        for tenant in config.tenants.values():
            if any(a in text.lower() for a in tenant.support_addresses):
                reasons.append("tenant-from-bounced-message")
                return tenant
    reasons.append("tenant-none-for-bot-address")
    return None


def identify(msg: Message, config: Config) -> Identity:
    reasons: list[str] = []
    tenant = find_tenant(msg, config, reasons)
    domain = domain_of(msg.sender)
    public = bool(domain) and is_public(domain)
    user = tenant.directory.get(msg.sender) if tenant and msg.sender else None
    if tenant is None and msg.sender:
        # No tenant (mail to the bot's own address): the sender may still be known to one.
        known = [u for t in config.tenants.values() if (u := t.directory.get(msg.sender))]
        if known and len({u.internal for u in known}) == 1:
            user = known[0]
    colleagues: list[User] = []
    company = ""
    if user:
        requester = "internal" if user.internal else "external"
        company = user.company
        reasons.append(f"requester-in-directory-{user.role}-{user.status}")
    elif tenant and domain and any(same_organisation(domain, d) for d in tenant.internal_domains):
        requester = "internal"
        company = tenant.name
        reasons.append("requester-internal-domain")
    elif not domain or public:
        requester = "unknown"
        reasons.append("requester-public-provider" if public else "requester-no-address")
    else:
        requester = "external"
        reasons.append("requester-company-domain")
    if tenant and domain and not public:
        colleagues = [u for u in tenant.directory.users
                      if u.email != msg.sender and same_organisation(u.domain, domain)]
    if user and tenant:
        colleagues += [u for u in tenant.directory.of_company(user.company)
                       if u.email != msg.sender and u not in colleagues]
    if not company and colleagues:
        company = colleagues[0].company
    return Identity(tenant, requester, user, company, public, colleagues, reasons)


def mail_system(who: Identity) -> Identity:
    """A bounce was written by a mail server, not by a supplier: the requester is unknown
    (unless the bounce comes from an address in the directory)."""
    if who.user is not None or who.requester == "unknown":
        return who
    return replace(who, requester="unknown", reasons=[*who.reasons, "requester-mail-system"])
