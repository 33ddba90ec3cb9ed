"""Forwarded headers are believed only from configured trusted proxies (issue 8, item 12).

The attack: a client changes ``X-Forwarded-For`` on every guess, so the per-address
sign-in limit never sees the same address twice. Served the way ``hippocrate serve``
serves (uvicorn, whose own middleware believed the header from 127.0.0.1), and through
the app with and without a trusted proxy in front.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hippocrate.api.client import resolve
from hippocrate.app import create_app
from hippocrate.cli.demo import server_config
from hippocrate.config import ProxyHeader, Settings
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.identity.conftest import TestClient, settings_for
from tests.identity.helpers import fast_password_hashing

LIMIT = 3
LIMITS = {"login_failures_per_client": LIMIT, "login_failures_per_account": 100}


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


def _guesses(post: Any, count: int, *, rotate: bool) -> list[int]:
    """``count`` wrong sign-ins for unknown addresses, each claiming a new forwarded
    address if ``rotate`` (else always the same one)."""
    answers = []
    for i in range(count):
        forwarded = f"198.51.100.{i + 1}" if rotate else "198.51.100.1"
        response = post(
            "/api/v1/auth/login",
            json={"email": f"guess-{i}@example.org", "password": "not-the-password"},
            headers={"X-Forwarded-For": forwarded},
        )
        answers.append(response.status_code)
    return answers


@contextmanager
def app_with_peer(
    store: Store, tmp_path: Path, peer: tuple[str, int], **changes: Any
) -> Iterator[TestClient]:
    settings = settings_for(tmp_path, store, **LIMITS, **changes)
    app = create_app(runtime=Runtime(settings, store.sessions))
    with TestClient(app, client=peer) as client:
        yield client


def test_the_header_from_an_untrusted_peer_does_not_change_the_address(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with app_with_peer(sqlite_store, tmp_path, ("203.0.113.7", 5000)) as client:
        answers = _guesses(client.post, LIMIT + 2, rotate=True)
    assert answers == [401] * LIMIT + [429, 429]


def test_the_header_from_a_trusted_proxy_names_the_client(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with app_with_peer(
        sqlite_store, tmp_path, ("10.1.2.3", 5000), trusted_proxies="10.0.0.0/8"
    ) as client:
        # Distinct clients behind the proxy are distinct addresses...
        assert _guesses(client.post, LIMIT + 2, rotate=True) == [401] * (LIMIT + 2)
        # ... and one client is limited, whatever else shares the proxy.
        assert _guesses(client.post, LIMIT + 1, rotate=False)[-1] == 429


@pytest.fixture
def served(sqlite_store: Store, tmp_path: Path) -> Iterator[str]:
    """The app served as ``hippocrate serve`` serves it, on a free local port."""
    settings = settings_for(tmp_path, sqlite_store, **LIMITS)
    app = create_app(runtime=Runtime(settings, sqlite_store.sessions))
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_served_a_local_client_cannot_choose_its_address(served: str) -> None:
    with httpx.Client(base_url=served, timeout=20) as client:
        answers = _guesses(client.post, LIMIT + 2, rotate=True)
    assert answers == [401] * LIMIT + [429, 429]


# -- the one function ----------------------------------------------------------------------

TRUSTED = Settings(trusted_proxies="10.0.0.0/8, 192.0.2.1, 2001:db8::/32").trusted_proxy_networks
XFF = ProxyHeader.X_FORWARDED_FOR


@pytest.mark.parametrize(
    ("peer", "values", "expected"),
    [
        ("203.0.113.7", ["1.2.3.4"], "203.0.113.7"),  # untrusted peer: header ignored
        ("10.0.0.1", [], "10.0.0.1"),  # trusted, no header: the proxy itself
        ("10.0.0.1", ["1.2.3.4"], "1.2.3.4"),
        ("10.0.0.1", ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),  # the client wrote the left part
        ("10.0.0.1", ["6.6.6.6", "1.2.3.4, 10.9.9.9"], "1.2.3.4"),  # two trusted hops
        ("10.0.0.1", ["1.2.3.4, unknown"], "10.0.0.1"),  # garbage: the last trusted hop
        ("10.0.0.1", ["10.0.0.2, 10.0.0.3"], "10.0.0.2"),  # only proxies: the leftmost
        ("192.0.2.1", ["1.2.3.4:5678"], "1.2.3.4"),
        ("2001:db8::1", ["[2001:db8:1::9]:443, 2a00::1"], "2a00::1"),
        ("::ffff:10.0.0.1", ["1.2.3.4"], "1.2.3.4"),  # IPv4-mapped peer
        (None, ["1.2.3.4"], "unknown"),
        ("testclient", ["1.2.3.4"], "testclient"),  # not an address: never trusted
    ],
)
def test_x_forwarded_for(peer: str | None, values: list[str], expected: str) -> None:
    assert resolve(peer, values, trusted=TRUSTED, header=XFF) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # The right hop is a trusted proxy (2001:db8::/32): the client is the next one.
        (['for=1.2.3.4;proto=https, for="[2001:db8::7]:80"'], "1.2.3.4"),
        (["for=6.6.6.6, for=1.2.3.4;by=10.0.0.1"], "1.2.3.4"),
        (["for=_hidden"], "10.0.0.1"),  # an obfuscated identifier is not believed
        (["proto=https"], "10.0.0.1"),
    ],
)
def test_forwarded(values: list[str], expected: str) -> None:
    found = resolve("10.0.0.1", values, trusted=TRUSTED, header=ProxyHeader.FORWARDED)
    assert found == expected


def test_an_entry_that_is_not_an_address_stops_the_start() -> None:
    with pytest.raises(ValueError, match="not an address or a network"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.internal")
