"""Widget identity from a short-lived JWT, the way Intercom and Chatwoot verify visitors.

The HMAC of the address (``data-user-hash``) is valid forever: once it leaks (a log, a
shared page, a browser extension), anyone can talk as that visitor for good. A JWT signed by
the portal's backend with the tenant's widget secret expires: ``exp`` is required and the
token may live at most :data:`MAX_LIFETIME`, so a leaked one is worth hours, not years.

Verification is PyJWT's, pinned to HS256: the algorithm in the token's header is never
trusted (``alg: none``, HS512 with a guessed key, or an RS256 token crafted with the secret
as a "public key" are all refused before any signature check). ``sub`` must be the address
the visitor writes from; ``name`` is optional and shown to agents in the trust evidence. Each refusal has its own rule id, so an agent
reading the ticket knows why the visitor is unverified.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, NamedTuple

import jwt

ALGORITHM = "HS256"
MAX_LIFETIME = 24 * 3600  # seconds from iat (or from now, without iat) to exp
LEEWAY = 30  # seconds of clock difference between the portal and the service

RULES = {
    "trust-widget-jwt": "the widget sent a valid JWT from the portal for this address: verified",
    "trust-widget-jwt-expired": "the widget's JWT has expired (exp is past): unverified",
    "trust-widget-jwt-not-yet-valid": "the widget's JWT is dated in the future (nbf or iat): unverified",
    "trust-widget-jwt-too-long-lived": "the widget's JWT lives longer than 24 hours: unverified",
    "trust-widget-jwt-bad-signature": "the widget's JWT is not signed with the tenant's widget secret: unverified",
    "trust-widget-jwt-bad-algorithm": "the widget's JWT is not HS256 (alg none, HS512, RS256, …): unverified",
    "trust-widget-jwt-sub-mismatch": "the widget's JWT names another address than the visitor's: unverified",
    "trust-widget-jwt-malformed": "the widget's JWT cannot be read or lacks exp or sub: unverified",
}


class Verdict(NamedTuple):
    """Fields in the order of :class:`triage.core.trust.Trust`, which is built from it."""

    verified: bool
    reason: str  # a rule id of RULES
    evidence: str


def verify(secret: str, email: str, token: str, now: float | None = None) -> Verdict:
    """The visitor's identity from ``token``, checked against the tenant's ``secret``."""
    if not secret:
        return Verdict(False, "trust-widget-jwt-bad-signature", "the tenant has no widget secret to check a JWT")
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError as e:
        return Verdict(False, "trust-widget-jwt-malformed", f"widget JWT unreadable: {e}")
    if algorithm != ALGORITHM:
        return Verdict(False, "trust-widget-jwt-bad-algorithm", f"widget JWT uses {str(algorithm)[:20]!r}, not HS256")
    try:
        with warnings.catch_warnings():  # a short tenant secret is a configuration matter, not a per-request one
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            claims: dict[str, Any] = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=LEEWAY,
                                                options={"require": ["exp", "sub"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        return Verdict(False, "trust-widget-jwt-expired", "widget JWT has expired")
    except jwt.ImmatureSignatureError as e:
        return Verdict(False, "trust-widget-jwt-not-yet-valid", f"widget JWT not valid yet: {e}")
    except jwt.InvalidSignatureError:
        return Verdict(False, "trust-widget-jwt-bad-signature", "widget JWT signature does not match")
    except jwt.InvalidAlgorithmError:
        return Verdict(False, "trust-widget-jwt-bad-algorithm", "widget JWT algorithm is not HS256")
    except jwt.InvalidTokenError as e:  # missing exp/sub, a sub that is not a string, bad base64
        return Verdict(False, "trust-widget-jwt-malformed", f"widget JWT refused: {e}")
    issued = claims.get("iat")
    start = issued if isinstance(issued, (int, float)) else (time.time() if now is None else now)
    if claims["exp"] - start > MAX_LIFETIME:
        return Verdict(False, "trust-widget-jwt-too-long-lived",
                       f"widget JWT lives {int(claims['exp'] - start)} s, more than {MAX_LIFETIME} s")
    if str(claims["sub"]).strip().lower() != email.strip().lower():
        return Verdict(False, "trust-widget-jwt-sub-mismatch", "widget JWT was issued for another address")
    name = claims.get("name")
    named = f" for {name[:100]}" if isinstance(name, str) and name else ""
    return Verdict(True, "trust-widget-jwt", f"widget identity in a JWT signed by the portal{named}")
