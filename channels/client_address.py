"""Who a web request comes from, also behind a reverse proxy (``web.trusted_proxies``).

Behind nginx or a load balancer every request arrives from the proxy's address, so the
widget's per-address rate limit and the console's sign-in limit would count every visitor
as one, and one visitor's flood would lock all the others out. A proxy the operator names
writes the client's address into X-Forwarded-For; anyone else's X-Forwarded-For is the
client's own claim and is ignored, or a script could rotate it to escape every limit.
"""
from __future__ import annotations

import ipaddress

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> str:
    """The request's peer, or, when the peer is a trusted proxy, the right-most address in
    X-Forwarded-For that is not one (each proxy appends the address it received from, so
    what is left of the first untrusted one was written by the client). A hop that is not an
    address ends the walk at the last proxy: a client that writes garbage is counted as its
    proxy, never as an address of its choosing."""
    peer = request.remote or "-"
    if not _trusted(_ip(peer), trusted):
        return peer
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            return peer
        if not _trusted(ip, trusted):
            return str(ip)
        peer = str(ip)
    return peer


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: tuple[Network, ...]) -> bool:
    return ip is not None and any(ip in network for network in trusted)
