"""Fixtures of the notify tests: settings, accounts and a real SMTP server."""

from __future__ import annotations

import socket
import ssl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from hippocrate.config import KeyProviderKind, Settings
from hippocrate.identity.models import Account, AccountStatus, Role
from tests.conftest import Store

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
PUBLIC_URL = "https://hippocrate.example.fr"
MAIL_FROM = "Hippocrate <ne-pas-repondre@notifications.hippocrate.example.fr>"


def settings_for(tmp_path: Path, store: Store, **changes: Any) -> Settings:
    """Settings naming everything, so no HIPPOCRATE_ variable of the caller leaks in."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": store.url,
        "key_provider": KeyProviderKind.FILE,
        "key_file": None,
        "public_url": PUBLIC_URL,
        "mail_from": MAIL_FROM,
        "smtp_host": None,
        "smtp_port": 25,
        "smtp_starttls": False,
        "smtp_username": None,
        "smtp_password": None,
    }
    values.update(changes)
    return Settings(**values)


AccountFactory = Callable[..., Account]


def new_account(
    store: Store, email: str = "camille.martin@example.org", role: Role = Role.PATIENT
) -> Account:
    """An active account with an email address, committed; returned detached (reload it
    in the test's own session)."""
    with store.sessions.begin() as session:
        account = Account(role=role, owner_id=uuid.uuid4(), status=AccountStatus.ACTIVE)
        account.email = email
        session.add(account)
        session.flush()
    return account


@pytest.fixture
def make_account(sqlite_store: Store) -> AccountFactory:
    def make(email: str = "camille.martin@example.org", role: Role = Role.PATIENT) -> Account:
        return new_account(sqlite_store, email, role)

    return make


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Inbox:
    """What the SMTP server accepted, and who authenticated."""

    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.received.append(
            Received(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.content)
        )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"hippocrate",
            b"s3cret-relay-password",
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox


def _serve(inbox: Inbox, **kwargs: Any) -> Iterator[SmtpServer]:
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on the loopback interface."""
    yield from _serve(Inbox())


@pytest.fixture
def tls_smtp_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A submission server that requires STARTTLS, then a login, with a certificate from
    a test CA that the process trusts (through SSL_CERT_FILE, as a deployment's system
    store would)."""
    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    inbox = Inbox()
    yield from _serve(
        inbox,
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=inbox.authenticate,
    )


@pytest.fixture
def untrusted_tls_smtp_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SmtpServer]:
    """The same server, with a certificate nobody trusts (a man in the middle)."""
    import trustme

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_context)
    trusted = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(trusted))
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    inbox = Inbox()
    yield from _serve(
        inbox,
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=inbox.authenticate,
    )
