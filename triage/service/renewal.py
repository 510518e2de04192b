"""The second message of a portal renewal: "your invitation has been renewed".

The first reply only says the renewal is being carried out; this one is queued when the
portal answered 2xx, in the transaction that records the answer (called by
:class:`triage.service.webhooks.Deliveries` in the database thread). It is written in the language
of the first reply, threaded under the requester's mail, and passes the same loop gate as
every automatic mail.
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from triage.desk.agents import Agents
from triage.service.intake import Intake
from triage.service.outbox import Unencodable, compose, envelope_address, reply_subject
from triage.store import iso

RULES = {
    "portal-renewal-mail-suppressed": "the confirmation of a renewal was not mailed (loop gate or an unwritable address)",
}


def confirm(agents: Agents, intake: Intake, row: dict[str, Any], now: datetime) -> bool:
    """Queue the confirmation for the ticket of a confirmed portal call; False when not sent."""
    ticket = agents.ticket(row["ticket"])
    tenant = intake.config.tenants.get(ticket["tenant"] or "")
    out = agents.outcome(ticket["id"], now)
    to = ticket["requester_address"] or ""
    at = iso(now)
    body = agents.pipeline.draft_reply(out.msg, out.who, out.cls, replace(out.decision, actions=["renewal_confirmed"]),
                                       ticket["number"], now, out.trust.verified, out.suggestions)
    refused = intake.gate.check_relay(to, intake.store, now) if to else "portal-renewal-mail-suppressed"
    if tenant is None or not body or refused:
        intake.store.add_event(ticket["id"], "mail-suppressed", ["portal-renewal-mail-suppressed", *[refused or ""]][:2],
                               "not sent", at, detail={"to": to})
        return False
    inbound = intake.store.inbound_messages(ticket["id"])
    last = inbound[-1] if inbound else {"message_id": "", "recipients": "[]"}
    sender = intake.sender(tenant, json.loads(last["recipients"] or "[]"), ticket["language"] or tenant.language)
    subject = reply_subject(ticket["subject"] or "", ticket["number"])
    message_id = intake.signer.new_id(ticket["id"])
    try:
        rcpt = envelope_address(to)
        raw = compose(sender=sender, to=[(out.msg.sender_name, to)], subject=subject, body=body,
                      message_id=message_id, now=now, auto_submitted="auto-replied",
                      in_reply_to=last["message_id"], references=[m["message_id"] for m in inbound[:-1]][-5:])
    except Unencodable as e:
        intake.store.add_event(ticket["id"], "mail-suppressed", ["portal-renewal-mail-suppressed"], str(e), at)
        return False
    intake.queue(ticket["id"], "reply", [rcpt], subject, message_id, raw, body, sender[1], at)
    return True
