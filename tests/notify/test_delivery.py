"""Sending through a real SMTP server (aiosmtpd on the loopback interface): what
arrives, with which headers and which code, and what happens when delivery fails."""

from __future__ import annotations

import logging
import re
import stat
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.config import Settings
from hippocrate.identity.models import Account, Role
from hippocrate.notify import service
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import send
from hippocrate.notify.templates import (
    UnknownTemplate,
    UnsafeLink,
    names,
    template_for,
    token_link,
)
from tests.conftest import Store
from tests.notify.conftest import (
    MAIL_FROM,
    NOW,
    PUBLIC_URL,
    AccountFactory,
    SmtpServer,
    free_port,
    new_account,
    settings_for,
)

ADDRESS = "camille.martin@example.org"
TOKEN = "k" * 43
CODE = re.compile(r"Code de vérification : ([A-Z2-9]{4}-[A-Z2-9]{4})")


def links_for(template: str) -> dict[str, str] | None:
    if template_for(template).link_path is None:
        return None
    return {"link": token_link(template=template, token=TOKEN, public_url=PUBLIC_URL)}


def send_one(
    store: Store, settings: Settings, account_id: uuid.UUID, template: str = "new_message"
) -> uuid.UUID:
    """Send one email in a unit of work of its own, as a request would; its record id."""
    with store.sessions.begin() as session:
        account = session.get(Account, account_id)
        assert account is not None
        record = send(
            session=session,
            settings=settings,
            account=account,
            template=template,
            now=NOW,
            links=links_for(template),
        )
        return record.id


def stored(store: Store, record_id: uuid.UUID) -> tuple[OutboundEmail, str]:
    """The record as a fresh session reads it, with its unsealed code."""
    with store.sessions() as session:
        record = session.get(OutboundEmail, record_id)
        assert record is not None
        code = record.verification_code
        assert code is not None
        session.expunge(record)
        return record, code


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    markup = message.get_body(preferencelist=("html",))
    assert text is not None
    assert markup is not None
    return text.get_content(), markup.get_content()


@pytest.mark.parametrize("template", names())
def test_each_template_arrives_with_its_headers_and_its_sealed_code(
    template: str,
    sqlite_store: Store,
    tmp_path: Path,
    make_account: AccountFactory,
    smtp_server: SmtpServer,
) -> None:
    settings = settings_for(
        tmp_path, sqlite_store, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    account = make_account(ADDRESS)

    record_id = send_one(sqlite_store, settings, account.id, template)

    [received] = smtp_server.inbox.received
    assert received.recipients == [ADDRESS]
    assert received.envelope_from == "ne-pas-repondre@notifications.hippocrate.example.fr"
    message = received.message
    assert message["From"] == MAIL_FROM
    assert message["To"] == ADDRESS
    assert message["Subject"].startswith("Hippocrate : ")
    assert message["Date"] == "Thu, 15 Jan 2026 09:30:00 +0000"
    # Folding may put it on a line of its own (RFC 5322 allows white space before it).
    assert message["Message-ID"].strip() == f"<{record_id}@notifications.hippocrate.example.fr>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "fr"
    assert message["List-Unsubscribe"] is None
    assert message.get_content_type() == "multipart/alternative"
    text, markup = parts(message)
    # The code the recipient reads is the one the app keeps, sealed, for this message.
    record, code = stored(sqlite_store, record_id)
    assert CODE.findall(text) == [code]
    assert code in markup
    assert (record.template, record.sent_at, record.failed_at) == (template, NOW, None)
    # The address is in the To header only.
    headers_and_body = received.raw.replace(f"To: {ADDRESS}".encode(), b"")
    assert b"camille" not in headers_and_body.lower()
    assert b"martin" not in headers_and_body.lower()


def test_the_outcome_is_recorded_after_the_commit_on_every_backend(
    store: Store, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = settings_for(tmp_path, store, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    down = settings.model_copy(update={"smtp_port": free_port()})
    account = new_account(store, ADDRESS)

    sent = send_one(store, settings, account.id)
    failed = send_one(store, down, account.id)

    assert len(smtp_server.inbox.received) == 1
    assert (stored(store, sent)[0].sent_at, stored(store, sent)[0].failed_at) == (NOW, None)
    assert (stored(store, failed)[0].sent_at, stored(store, failed)[0].failed_at) == (None, NOW)


def test_each_message_gets_a_code_of_its_own(
    sqlite_store: Store,
    tmp_path: Path,
    make_account: AccountFactory,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(
        tmp_path, sqlite_store, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    account = make_account()
    # The generator draws the same code twice before a new one.
    draws = iter(["AAAA-BBBB", "AAAA-BBBB", "AAAA-BBBB", "CCCC-DDDD"])
    monkeypatch.setattr(service, "new_code", lambda: next(draws))

    with sqlite_store.sessions.begin() as session:
        me = session.get(Account, account.id)
        assert me is not None
        first = send(
            session=session, settings=settings, account=me, template="new_message", now=NOW
        )
        second = send(
            session=session, settings=settings, account=me, template="report_ready", now=NOW
        )
        ids = [first.id, second.id]

    assert [stored(sqlite_store, i)[1] for i in ids] == ["AAAA-BBBB", "CCCC-DDDD"]
    assert [CODE.findall(parts(r.message)[0]) for r in smtp_server.inbox.received] == [
        ["AAAA-BBBB"],
        ["CCCC-DDDD"],
    ]


def test_nothing_is_sent_when_the_callers_work_is_rolled_back(
    sqlite_store: Store,
    tmp_path: Path,
    make_account: AccountFactory,
    smtp_server: SmtpServer,
) -> None:
    """An email whose record is gone would carry a code the app does not know."""
    settings = settings_for(
        tmp_path, sqlite_store, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    account = make_account()

    def failing_unit_of_work() -> None:
        with sqlite_store.sessions.begin() as session:
            me = session.get(Account, account.id)
            assert me is not None
            send(session=session, settings=settings, account=me, template="new_message", now=NOW)
            raise RuntimeError("a later step failed")

    with pytest.raises(RuntimeError, match="later step failed"):
        failing_unit_of_work()

    assert smtp_server.inbox.received == []
    with sqlite_store.sessions() as session:
        assert session.scalars(select(OutboundEmail)).all() == []

    # And the next unit of work does not send the dropped message either.
    send_one(sqlite_store, settings, account.id, "report_ready")
    assert [r.message["Subject"] for r in smtp_server.inbox.received] == [
        "Hippocrate : un compte rendu est disponible"
    ]


def test_a_message_in_a_savepoint_rolled_back_is_not_sent(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory, smtp_server: SmtpServer
) -> None:
    settings = settings_for(
        tmp_path, sqlite_store, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    account = make_account()

    with sqlite_store.sessions.begin() as session:
        me = session.get(Account, account.id)
        assert me is not None
        savepoint = session.begin_nested()
        send(session=session, settings=settings, account=me, template="new_message", now=NOW)
        savepoint.rollback()
        kept = send(
            session=session, settings=settings, account=me, template="report_ready", now=NOW
        )

    assert [r.message["Message-ID"].strip() for r in smtp_server.inbox.received] == [
        f"<{kept.id}@notifications.hippocrate.example.fr>"
    ]


def test_smtp_server_down_records_the_failure_and_the_callers_work_commits(
    sqlite_store: Store,
    tmp_path: Path,
    make_account: AccountFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(tmp_path, sqlite_store, smtp_host="127.0.0.1", smtp_port=free_port())
    account = make_account(ADDRESS)
    caplog.set_level(logging.DEBUG, logger="hippocrate.notify")

    with sqlite_store.sessions.begin() as session:
        me = session.get(Account, account.id)
        assert me is not None
        record = send(
            session=session, settings=settings, account=me, template="new_message", now=NOW
        )
        # The caller's own work in the same unit.
        colleague = Account(role=Role.SUPPORT, owner_id=uuid.uuid4())
        session.add(colleague)

    stored_record, code = stored(sqlite_store, record.id)
    assert (stored_record.sent_at, stored_record.failed_at) == (None, NOW)
    assert (record.sent_at, record.failed_at) == (None, NOW)  # the caller's object says so too
    with sqlite_store.sessions() as session:
        assert session.get(Account, colleague.id) is not None
    # Logged, without the address or the code.
    assert f"email {record.id} not delivered: ConnectionRefusedError" in caplog.messages
    logged = "\n".join(caplog.messages)
    assert ADDRESS not in logged
    assert code not in logged


def test_an_account_without_address_is_recorded_as_failed(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory, smtp_server: SmtpServer
) -> None:
    settings = settings_for(
        tmp_path, sqlite_store, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    account = make_account()
    with sqlite_store.sessions.begin() as session:
        me = session.get(Account, account.id)
        assert me is not None
        me.email = None

    record_id = send_one(sqlite_store, settings, account.id)

    assert stored(sqlite_store, record_id)[0].failed_at == NOW
    assert smtp_server.inbox.received == []


def test_an_address_that_would_inject_headers_is_not_used(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory, smtp_server: SmtpServer
) -> None:
    settings = settings_for(
        tmp_path, sqlite_store, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    account = make_account("camille@example.org\r\nBcc: collector@attacker.test")

    record_id = send_one(sqlite_store, settings, account.id)

    assert stored(sqlite_store, record_id)[0].failed_at == NOW
    assert smtp_server.inbox.received == []


def test_a_wrong_template_or_link_fails_loudly_and_records_nothing(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory, smtp_server: SmtpServer
) -> None:
    settings = settings_for(
        tmp_path, sqlite_store, smtp_host=smtp_server.host, smtp_port=smtp_server.port
    )
    account = make_account()
    calls = [
        (UnknownTemplate, "lab_results", None),
        (UnsafeLink, "new_message", {"subject": "Votre sérologie"}),
        (UnsafeLink, "new_message", {"link": PUBLIC_URL + "/account/verify-email?token=" + TOKEN}),
        (UnsafeLink, "verify_email", {"link": "https://hippocrate-verif.fr/?token=" + TOKEN}),
        (UnsafeLink, "verify_email", None),
    ]
    for error, template, links in calls:
        with sqlite_store.sessions() as session:
            me = session.get(Account, account.id)
            assert me is not None
            with pytest.raises(error):
                send(
                    session=session,
                    settings=settings,
                    account=me,
                    template=template,
                    now=NOW,
                    links=links,
                )
            assert not [o for o in session.new if isinstance(o, OutboundEmail)]
            session.commit()

    assert smtp_server.inbox.received == []


# -- SMTP submission with STARTTLS and a login ------------------------------------------


def test_starttls_then_login_then_send(
    sqlite_store: Store,
    tmp_path: Path,
    make_account: AccountFactory,
    tls_smtp_server: SmtpServer,
) -> None:
    settings = settings_for(
        tmp_path,
        sqlite_store,
        smtp_host=tls_smtp_server.host,
        smtp_port=tls_smtp_server.port,
        smtp_starttls=True,
        smtp_username="hippocrate",
        smtp_password="s3cret-relay-password",
    )
    account = make_account(ADDRESS)

    record_id = send_one(sqlite_store, settings, account.id)

    assert tls_smtp_server.inbox.logins == ["hippocrate"]
    [received] = tls_smtp_server.inbox.received
    assert received.recipients == [ADDRESS]
    assert stored(sqlite_store, record_id)[0].sent_at == NOW


def test_a_certificate_nobody_trusts_is_refused(
    sqlite_store: Store,
    tmp_path: Path,
    make_account: AccountFactory,
    untrusted_tls_smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """smtplib's own STARTTLS default verifies nothing: the password would go to anyone
    in the middle. Ours verifies the certificate and the host name."""
    settings = settings_for(
        tmp_path,
        sqlite_store,
        smtp_host=untrusted_tls_smtp_server.host,
        smtp_port=untrusted_tls_smtp_server.port,
        smtp_starttls=True,
        smtp_username="hippocrate",
        smtp_password="s3cret-relay-password",
    )
    account = make_account()

    record_id = send_one(sqlite_store, settings, account.id)

    assert untrusted_tls_smtp_server.inbox.logins == []
    assert untrusted_tls_smtp_server.inbox.received == []
    assert stored(sqlite_store, record_id)[0].failed_at == NOW
    assert any("SSLCertVerificationError" in m for m in caplog.messages)


def test_no_clear_text_fallback_when_the_server_offers_no_starttls(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory, smtp_server: SmtpServer
) -> None:
    settings = settings_for(
        tmp_path,
        sqlite_store,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_starttls=True,
    )
    account = make_account()

    record_id = send_one(sqlite_store, settings, account.id)

    assert smtp_server.inbox.received == []
    assert stored(sqlite_store, record_id)[0].failed_at == NOW


def test_credentials_are_never_sent_without_tls(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory, smtp_server: SmtpServer
) -> None:
    settings = settings_for(
        tmp_path,
        sqlite_store,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_username="hippocrate",
        smtp_password="s3cret-relay-password",
    )
    account = make_account()

    record_id = send_one(sqlite_store, settings, account.id)

    assert smtp_server.inbox.received == []
    assert stored(sqlite_store, record_id)[0].failed_at == NOW


# -- the outbox: the embedded default ---------------------------------------------------


def test_without_smtp_each_message_is_a_private_file_in_a_private_folder(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory
) -> None:
    settings = settings_for(tmp_path, sqlite_store)
    account = make_account(ADDRESS)

    first = send_one(sqlite_store, settings, account.id, "verify_email")
    second = send_one(sqlite_store, settings, account.id, "new_message")

    outbox = settings.outbox_dir
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    files = sorted(outbox.iterdir())
    assert sorted(p.name for p in files) == sorted([f"{first}.eml", f"{second}.eml"])
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    message = message_from_bytes((outbox / f"{first}.eml").read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == ADDRESS
    text, _ = parts(message)
    assert CODE.findall(text) == [stored(sqlite_store, first)[1]]
    assert stored(sqlite_store, first)[0].sent_at == NOW


def test_an_outbox_folder_open_to_others_is_closed_first(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory
) -> None:
    settings = settings_for(tmp_path, sqlite_store)
    settings.outbox_dir.mkdir(parents=True)
    settings.outbox_dir.chmod(0o755)
    account = make_account()

    send_one(sqlite_store, settings, account.id)

    assert stat.S_IMODE(settings.outbox_dir.stat().st_mode) == 0o700
    assert len(list(settings.outbox_dir.iterdir())) == 1


def test_an_outbox_that_cannot_be_written_records_a_failure(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory
) -> None:
    # A file where the folder should be.
    settings = settings_for(tmp_path, sqlite_store)
    settings.outbox_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.outbox_dir.write_text("not a folder")
    account = make_account()

    record_id = send_one(sqlite_store, settings, account.id)

    assert stored(sqlite_store, record_id)[0].failed_at == NOW
