"""A thief who holds the data folder (database, checkpoint file, key file) tries to
rewrite the audit trail unnoticed; ``hippocrate audit verify`` must not say "intact".

Each test drives the installed ``hippocrate`` command against a real database (SQLite
and PostgreSQL): the app's traffic is appended as the app does it, checkpoints are
written by ``hippocrate audit checkpoint``, the thief works on the database and the
files directly, and the verdict is what an auditor reads on stdout and stderr.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from hippocrate.audit.service import read_checkpoints
from tests.audit.helpers import (
    Deployment,
    WebhookWitness,
    assert_refused,
    event,
    keep_first,
    minutes_ago,
    resign,
    rewrite_history,
    roll_back,
    serve_webhook,
)
from tests.conftest import Store
from tests.notify.conftest import Inbox, SmtpServer, _serve


@pytest.fixture
def deployment(store: Store, key_file: Path, tmp_path: Path) -> Deployment:
    home = tmp_path / "deployment"
    home.mkdir()
    return Deployment(store, home, key_file)


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[WebhookWitness]:
    yield from serve_webhook(tmp_path / "witness-copy.jsonl")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    yield from _serve(Inbox())


def test_rewritten_history_with_the_checkpoint_file_deleted_fails(deployment: Deployment) -> None:
    deployment.working_day()
    assert "audit trail intact: 50 events, 5 checkpoints" in deployment.ok("audit", "verify")

    rewrite_history(deployment.store, seq=12)
    deployment.checkpoint_file.unlink()

    error = assert_refused(deployment.run("audit", "verify"), "no checkpoint covers")
    assert "checkpoint file" in error
    assert "missing while the trail holds 50 events" in error


def test_resigning_with_the_key_file_is_exposed_by_the_mirror(deployment: Deployment) -> None:
    deployment.env["HIPPOCRATE_AUDIT_CHECKPOINT_MIRROR"] = str(deployment.mirror)
    deployment.working_day()
    assert "audit trail intact" in deployment.ok("audit", "verify")

    # The thief changes event 12, recomputes the chain, and re-signs every checkpoint
    # of the data folder with its key file: that file alone now verifies.
    rewrite_history(deployment.store, seq=12)
    resign(deployment.store, deployment.key_file, deployment.checkpoint_file)

    error = assert_refused(deployment.run("audit", "verify"), "disagrees with its mirror")
    assert "at sequence 11" in error  # after the last checkpoint (10) that still holds
    assert "history was rewritten" in error


def test_resigning_every_file_in_reach_is_exposed_by_the_webhook_witness(
    deployment: Deployment, webhook: WebhookWitness
) -> None:
    deployment.env["HIPPOCRATE_AUDIT_WITNESS_WEBHOOK"] = webhook.url
    deployment.working_day()
    written = deployment.checkpoint_file.read_text(encoding="ascii")
    assert webhook.copy.read_text(encoding="ascii") == written
    assert "5 witnessed head(s) matched" in deployment.ok(
        "audit", "verify", "--witness", str(webhook.copy)
    )

    rewrite_history(deployment.store, seq=33)
    resign(deployment.store, deployment.key_file, deployment.checkpoint_file)

    # Without the witness's copy nothing on the server can tell, and verify says so.
    alone = deployment.ok("audit", "verify")
    assert "no witness copy given (--witness FILE)" in alone
    # With it, the rewrite is plain.
    error = assert_refused(
        deployment.run("audit", "verify", "--witness", str(webhook.copy)),
        "that the checkpoint file does not: checkpoints were removed or re-signed",
    )
    assert "at sequence 31" in error
    assert "history was rewritten" in error


def test_a_checkpoint_file_shorter_than_its_mirror_fails(deployment: Deployment) -> None:
    deployment.env["HIPPOCRATE_AUDIT_CHECKPOINT_MIRROR"] = str(deployment.mirror)
    deployment.working_day()
    keep_first(deployment.checkpoint_file, 2)  # the thief trims the file in reach

    error = assert_refused(deployment.run("audit", "verify"))
    assert "the checkpoint file is shorter than its mirror" in error
    assert "lacks 3 checkpoint(s), from sequence 30" in error


def test_a_rolled_back_trail_and_checkpoint_file_is_exposed_by_the_mirror(
    deployment: Deployment,
) -> None:
    deployment.env["HIPPOCRATE_AUDIT_CHECKPOINT_MIRROR"] = str(deployment.mirror)
    deployment.working_day()
    # An old backup restored with the checkpoint file of its day: the two agree.
    roll_back(deployment.store, to=20)
    keep_first(deployment.checkpoint_file, 2)

    assert_refused(
        deployment.run("audit", "verify"),
        "the checkpoint file is shorter than its mirror",
        "the tail was removed",
    )


def test_events_beyond_the_last_checkpoint_older_than_the_interval_fail(
    deployment: Deployment,
) -> None:
    deployment.env["HIPPOCRATE_AUDIT_CHECKPOINT_MIRROR"] = str(deployment.mirror)
    deployment.working_day(at=minutes_ago(30))
    # The thief drops the last two checkpoints from every file in reach, then rewrites
    # what they covered: every remaining checkpoint still matches.
    keep_first(deployment.checkpoint_file, 3)
    keep_first(deployment.mirror, 3)
    rewrite_history(deployment.store, seq=41)

    ran = deployment.run("audit", "verify")
    error = assert_refused(ran, "last checkpoint at sequence 30")
    assert "20 event(s) lie beyond the last checkpoint (at 30)" in error
    assert "more than 90 s ago" in error  # 60 s between checkpoints, 30 s of grace


def test_a_fresh_tail_beyond_the_last_checkpoint_is_not_a_failure_until_it_is_old(
    deployment: Deployment,
) -> None:
    deployment.working_day(batches=2)
    deployment.traffic(5)  # the app signs these at its next tick
    out = deployment.ok("audit", "verify")
    assert "last checkpoint at sequence 20" in out
    assert "5 event(s) after it" in out
    # Had the app stopped signing, the same tail is a failure once past the interval.
    stopped = {
        "HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0",
        "HIPPOCRATE_AUDIT_CHECKPOINT_GRACE_SECONDS": "0",
    }
    assert_refused(deployment.run("audit", "verify", **stopped), "lie beyond the last checkpoint")


def test_verify_says_what_it_could_not_prove(deployment: Deployment) -> None:
    deployment.working_day(batches=1)
    out = deployment.ok("audit", "verify")
    assert "10 events chained from the first to the head" in out
    assert (
        "no witness configured: a rewrite by someone holding the data folder and the "
        "signing key is not excluded"
    ) in out
    assert "no mirror" in out


def test_the_webhook_witness_receives_every_checkpoint_and_pending_ones_later(
    deployment: Deployment, webhook: WebhookWitness
) -> None:
    deployment.env["HIPPOCRATE_AUDIT_WITNESS_WEBHOOK"] = webhook.url
    deployment.working_day(batches=2)
    webhook.status = 503  # the witness is down for a while
    deployment.traffic(10)
    out = deployment.ok("audit", "checkpoint")
    assert "checkpoint written at sequence 30" in out
    assert re.search(r"witness webhook: 0 sent, 1 pending \(HTTPError", out), out
    deployment.traffic(10)
    assert "1 sent" not in deployment.ok("audit", "checkpoint")

    webhook.status = 200
    deployment.traffic(10)
    out = deployment.ok("audit", "checkpoint")
    assert "witness webhook: 3 sent, 0 pending" in out

    written = deployment.checkpoint_file.read_text(encoding="ascii").splitlines()
    assert webhook.lines() == written  # every checkpoint, in order, as one line each
    assert set(webhook.content_types) == {"application/json"}
    assert [json.loads(line)["seq"] for line in webhook.lines()] == [10, 20, 30, 40, 50]
    out = deployment.ok("audit", "verify", "--witness", str(webhook.copy))
    assert "5 witnessed head(s) matched" in out


def test_the_email_witness_tells_the_dpo_every_checkpoint(
    deployment: Deployment, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    deployment.env.update(
        HIPPOCRATE_AUDIT_WITNESS_EMAIL="dpo@hippocrate.example.fr",
        HIPPOCRATE_SMTP_HOST=smtp_server.host,
        HIPPOCRATE_SMTP_PORT=str(smtp_server.port),
        HIPPOCRATE_MAIL_FROM="Hippocrate <audit@hippocrate.example.fr>",
    )
    deployment.working_day(batches=3)

    received = smtp_server.inbox.received
    assert [r.recipients for r in received] == [["dpo@hippocrate.example.fr"]] * 3
    written = [c.to_line() for c in read_checkpoints(deployment.checkpoint_file)]
    copy: list[str] = []
    for mail in received:
        message = message_from_bytes(mail.raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        assert body is not None
        lines = [line for line in body.get_content().splitlines() if line.startswith("{")]
        assert len(lines) == 1
        copy.append(lines[0])
        # The signed head and nothing about anyone: no patient, account or resource id.
        text = mail.raw.decode("utf-8", "replace") + body.get_content()
        for n in range(deployment.appended):
            touched = event(n, minutes_ago(0))
            for known in (touched.patient_id, touched.actor_account_id, *touched.resources):
                assert str(known) not in text
            assert touched.request_id not in text
    assert copy == written

    # The DPO keeps the lines; a later rewrite re-signed in the data folder is exposed.
    dpo_copy = tmp_path / "dpo-copy.jsonl"
    dpo_copy.write_text("".join(line + "\n" for line in copy), encoding="ascii")
    rewrite_history(deployment.store, seq=5)
    resign(deployment.store, deployment.key_file, deployment.checkpoint_file)
    assert_refused(
        deployment.run("audit", "verify", "--witness", str(dpo_copy)), "history was rewritten"
    )
