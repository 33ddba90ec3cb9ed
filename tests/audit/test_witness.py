"""Every checkpoint the app writes reaches the witnesses; a witness that fails never
stops the app and loses nothing: its checkpoints wait and go at a later round."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hippocrate.audit.scheduler import checkpoint_once, checkpoint_round
from hippocrate.audit.service import append, read_checkpoints
from hippocrate.audit.witness import limits, pending_dir
from hippocrate.config import Settings
from hippocrate.runtime import Runtime
from tests.audit.helpers import WebhookWitness, event, serve_webhook
from tests.conftest import Store
from tests.notify.conftest import Inbox, SmtpServer, _serve, free_port


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[WebhookWitness]:
    yield from serve_webhook(tmp_path / "witness-copy.jsonl")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    yield from _serve(Inbox())


def app_runtime(store: Store, tmp_path: Path, **settings: object) -> Runtime:
    values: dict[str, object] = {
        "data_dir": tmp_path / "var",
        "database_url": store.url,
        "audit_checkpoint_mirror": None,
        "audit_witness_webhook": None,
        "audit_witness_email": None,
        "smtp_host": None,
        **settings,
    }
    return Runtime(Settings(**values), store.sessions)  # type: ignore[arg-type]


def traffic(store: Store, start: int, count: int) -> None:
    with store.sessions.begin() as session:
        append(session, [event(n, datetime.now(UTC)) for n in range(start, start + count)])


def test_each_checkpoint_the_app_writes_is_posted_to_the_webhook(
    sqlite_store: Store, tmp_path: Path, webhook: WebhookWitness
) -> None:
    runtime = app_runtime(sqlite_store, tmp_path, audit_witness_webhook=webhook.url)
    for batch in range(3):
        traffic(sqlite_store, batch * 4, 4)
        assert checkpoint_once(runtime) == (batch + 1) * 4
    assert checkpoint_once(runtime) is None  # the chain did not move: nothing new is sent

    written = [c.to_line() for c in read_checkpoints(runtime.settings.checkpoint_files[0])]
    assert webhook.lines() == written
    assert [json.loads(line)["seq"] for line in webhook.lines()] == [4, 8, 12]


def test_a_failing_webhook_is_logged_kept_pending_and_retried_in_order(
    sqlite_store: Store,
    tmp_path: Path,
    webhook: WebhookWitness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = app_runtime(sqlite_store, tmp_path, audit_witness_webhook=webhook.url)
    webhook.status = 500
    with caplog.at_level(logging.WARNING, logger="hippocrate.audit.witness"):
        for batch in range(2):
            traffic(sqlite_store, batch * 3, 3)
            done = checkpoint_round(runtime)  # does not raise
            assert done.written is not None
            assert done.delivery.pending == {"webhook": batch + 1}
    assert "checkpoint 3 not taken (HTTPError); kept pending" in caplog.text
    assert webhook.lines() == []
    pending = pending_dir(runtime.settings) / "webhook.jsonl"
    assert [c.seq for c in read_checkpoints(pending)] == [3, 6]

    webhook.status = 200
    done = checkpoint_round(runtime)  # no new event: the round still sends what waits
    assert done.written is None
    assert (done.delivery.sent, done.delivery.pending) == ({"webhook": 2}, {"webhook": 0})
    assert [json.loads(line)["seq"] for line in webhook.lines()] == [3, 6]
    assert not pending.exists()


def test_an_unreachable_webhook_never_fails_the_round(
    sqlite_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/witness"
    runtime = app_runtime(sqlite_store, tmp_path, audit_witness_webhook=nobody)
    traffic(sqlite_store, 0, 2)
    with caplog.at_level(logging.WARNING, logger="hippocrate.audit.witness"):
        assert checkpoint_once(runtime) == 2
    assert "URLError" in caplog.text
    pending = pending_dir(runtime.settings) / "webhook.jsonl"
    assert [c.seq for c in read_checkpoints(pending)] == [2]


def test_the_email_witness_sends_the_signed_head_to_the_dpo(
    sqlite_store: Store, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    runtime = app_runtime(
        sqlite_store,
        tmp_path,
        audit_witness_email="dpo@hippocrate.example.fr",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
    )
    traffic(sqlite_store, 0, 7)
    assert checkpoint_once(runtime) == 7
    (mail,) = smtp_server.inbox.received
    assert mail.recipients == ["dpo@hippocrate.example.fr"]
    assert mail.message["Subject"] == "Hippocrate audit checkpoint 7"
    body = mail.message.get_body(("plain",))
    assert body is not None
    (line,) = read_checkpoints(runtime.settings.checkpoint_files[0])
    assert line.to_line() in body.get_content().splitlines()


def test_a_failing_email_witness_keeps_the_checkpoint_for_later(
    sqlite_store: Store, tmp_path: Path
) -> None:
    runtime = app_runtime(
        sqlite_store,
        tmp_path,
        audit_witness_email="dpo@hippocrate.example.fr",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nobody listens
    )
    traffic(sqlite_store, 0, 1)
    done = checkpoint_round(runtime)
    assert done.delivery.pending == {"email": 1}
    assert "email" in done.delivery.failures


def test_verify_names_a_signing_key_inside_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "var"
    inside = Settings(data_dir=data, key_file=None, audit_signing_key_file=None)
    assert any("signing key file is inside the data folder" in n for n in limits(inside, []))
    outside = Settings(
        data_dir=data, key_file=None, audit_signing_key_file=tmp_path / "keys" / "signing.key"
    )
    assert not any("signing key file is inside" in n for n in limits(outside, []))
