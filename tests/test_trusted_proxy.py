"""The client's address behind a reverse proxy (``web.trusted_proxies``), over the real
socket: the widget's per-address limit counts each client behind a named proxy, and a
client's own X-Forwarded-For, from anywhere else, moves nothing."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from channels.client_address import client_address
from tests.test_widget_api import LOGIN, PORTAL, SECRET, widget_config
from triage.config import ConfigError, load_config
from triage.core.trust import widget_hash
from triage.service.app import Service

LIMIT = 4  # the test configuration's widget_rate_limits: 4 a minute per conversation and per address


async def started(folder: Path, trusted: str = "") -> Service:
    if trusted:
        path = folder / "triage.toml"
        path.write_text(path.read_text().replace('listen = "127.0.0.1:0"\n\n[tenants]',
                                                 f'listen = "127.0.0.1:0"\ntrusted_proxies = {trusted}\n\n[tenants]'))
    service = Service(load_config(folder), out=lambda line: None)
    await service.start()
    return service


async def post(service: Service, session: aiohttp.ClientSession, forwarded: str | None) -> int:
    """A first line of a new conversation each time: only the address's allowance is spent."""
    host, port = service.web_address
    body = {"text": LOGIN, "email": "anna@steelworks.example", "name": "Anna", "client_id": uuid.uuid4().hex,
            "token": "", "user_hash": widget_hash(SECRET, "anna@steelworks.example"), "browser": ""}
    headers = {"Origin": PORTAL} | ({"X-Forwarded-For": forwarded} if forwarded else {})
    async with session.post(f"http://{host}:{port}/widget/api/acme/messages", json=body, headers=headers) as r:
        return r.status


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def test_a_forged_x_forwarded_for_does_not_escape_the_limit(tmp_path, session):
    service = await started(widget_config(tmp_path / "config"))
    try:
        statuses = [await post(service, session, f"203.0.113.{n}") for n in range(LIMIT + 1)]
        assert statuses == [200] * LIMIT + [429]  # every one counted as 127.0.0.1
    finally:
        await service.stop()


async def test_behind_a_trusted_proxy_each_client_has_its_own_allowance(tmp_path, session):
    service = await started(widget_config(tmp_path / "config"), '["127.0.0.1"]')
    try:
        assert [await post(service, session, "203.0.113.1") for _ in range(LIMIT)] == [200] * LIMIT
        assert await post(service, session, "203.0.113.1") == 429
        # a prefix the client wrote itself is not its address: the proxy's entry is the last one
        assert await post(service, session, "198.51.100.9, 203.0.113.1") == 429
        assert await post(service, session, "203.0.113.2") == 200
    finally:
        await service.stop()


def request(peer: str, forwarded: list[str]):  # noqa: ANN201 - aiohttp's mocked request
    headers = [("X-Forwarded-For", value) for value in forwarded]
    return make_mocked_request("GET", "/", headers=headers, transport=_Transport(peer))


class _Transport:
    def __init__(self, peer: str):
        self.peer = peer

    def get_extra_info(self, name: str, default=None):  # noqa: ANN001, ANN201
        return (self.peer, 1234) if name == "peername" else default


@pytest.mark.parametrize("peer,forwarded,trusted,client", [
    ("203.0.113.5", ["198.51.100.1"], [], "203.0.113.5"),  # nobody trusted: the peer
    ("203.0.113.5", ["198.51.100.1"], ["10.0.0.0/8"], "203.0.113.5"),  # the peer is not a proxy we named
    ("10.0.0.2", ["198.51.100.1"], ["10.0.0.0/8"], "198.51.100.1"),
    ("10.0.0.2", ["198.51.100.1, 10.0.0.7"], ["10.0.0.0/8"], "198.51.100.1"),  # two proxies of ours
    ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], ["10.0.0.0/8"], "198.51.100.1"),  # the client's own claim left of it
    ("10.0.0.2", ["198.51.100.1", "10.0.0.7"], ["10.0.0.0/8"], "198.51.100.1"),  # the header twice
    ("10.0.0.2", ["garbage, 10.0.0.7"], ["10.0.0.0/8"], "10.0.0.7"),  # garbage: the last proxy
    ("10.0.0.2", [], ["10.0.0.0/8"], "10.0.0.2"),
    ("::1", ["2001:db8::5"], ["::1/128"], "2001:db8::5"),
])
def test_the_right_most_untrusted_hop_is_the_client(peer, forwarded, trusted, client):
    import ipaddress

    networks = tuple(ipaddress.ip_network(n) for n in trusted)
    assert client_address(request(peer, forwarded), networks) == client


def test_a_trusted_proxy_that_is_not_an_address_is_a_configuration_error(tmp_path):
    folder = widget_config(tmp_path / "config")
    path = folder / "triage.toml"
    path.write_text(path.read_text().replace('listen = "127.0.0.1:0"\n\n[tenants]',
                                             'listen = "127.0.0.1:0"\ntrusted_proxies = ["nginx"]\n\n[tenants]'))
    with pytest.raises(ConfigError, match=r"web\.trusted_proxies: 'nginx' is not an IP address"):
        load_config(folder)
