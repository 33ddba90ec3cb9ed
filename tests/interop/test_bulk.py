"""The bulk path of ``hippocrate import`` on SQLite and PostgreSQL: a batch refuses a
duplicate against the platform and one within itself; every write is in the audit
trail and the trail verifies; invitations are queued, not delivered by the importing
process, and the delivery worker sends them with a link that works; two importing
processes (PostgreSQL) interrupted and then resumed leave nothing half-written and
nothing twice, and refuse an address given in batches of both."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.service import verify
from hippocrate.cli.interop import open_platform
from hippocrate.config import Settings
from hippocrate.identity import service as identity_service
from hippocrate.identity.models import Account, AccountToken
from hippocrate.interop.importer import ImportWorkerFailed, Outcome, Rejection
from hippocrate.interop.models import ImportBatch, ImportProgress
from hippocrate.keyring.models import DataKeyRecord
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.models import Patient
from hippocrate.tags import Tag
from tests.consultations.helpers import Api
from tests.identity.helpers import fast_password_hashing
from tests.interop.test_import import NOW, Importer, csv_row, nir_with_key, write_csv

PASSWORD = "une phrase de passe assez longue 42"


@pytest.fixture
def importer(api: Api) -> Importer:
    return Importer(api)


def test_a_batch_refuses_duplicates_against_the_platform_and_within_itself(
    importer: Importer, tmp_path: Path
) -> None:
    first = write_csv(
        tmp_path / "first.csv", [csv_row(1), csv_row(2, nir=nir_with_key("2850675116123"))]
    )
    assert importer.run(first, "csv").imported == 2

    rows = [
        csv_row(3),
        csv_row(1, family_name="Autre"),  # row 1's address: held on the platform
        csv_row(4, nir=nir_with_key("2850675116123")),  # row 2's NIR: held too
        csv_row(5, nir=nir_with_key("2850675116124")),
        csv_row(3, family_name="Bis"),  # the address of the first row of this file
        csv_row(6, nir=nir_with_key("2850675116124")),  # the NIR of row 5 of this file
        csv_row(7),
    ]
    second = write_csv(tmp_path / "second.csv", rows)
    outcome = importer.run(second, "csv", batch_size=50)

    assert outcome.imported == 3
    found = {(r.row, r.field): r.reason for r in outcome.rejected}
    assert found == {
        (3, "email"): "already registered on the platform",
        (4, "nir"): "already registered on the platform",
        (6, "email"): "the address of row 2 again",
        (7, "nir"): "the NIR of row 5 again",
    }
    assert importer.count(Patient) == 5
    assert importer.count(Account) == 5
    assert importer.count(DataKeyRecord) == 5
    assert importer.count(OutboundEmail) == 5


def test_every_write_of_an_import_is_in_the_trail_and_the_trail_verifies(
    importer: Importer, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "many.csv", [csv_row(i) for i in range(1, 24)])
    importer.run(source, "csv", batch_size=10)

    api = importer.api
    with api.store.sessions() as session:
        report = verify(
            session=session,
            public_key=api.store.sessions.vault.provider.signing_public_key(),
            checkpoint_files=[],
        )
        assert report.ok, report.problems
        patients = set(session.scalars(select(Patient.id)))
        accounts = {a.id: a.patient_id for a in session.scalars(select(Account))}
        events = session.scalars(select(AuditEvent)).all()
    written = {e.patient_id for e in events if e.action == Tag.PATIENT_RECORD_WRITE}
    assert written == patients
    profile = [e for e in events if e.action == Tag.ACCOUNT_PROFILE_WRITE]
    assert {e.patient_id for e in profile} == patients
    assert {r for e in profile for r in e.resources} == {f"profile:{a}" for a in accounts}
    assert all(e.actor_role == "operator" and e.purpose == "import" for e in events)


def _outbox(settings: Settings) -> list[Path]:
    folder = settings.outbox_dir
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def test_invitations_are_queued_and_the_worker_sends_them_with_a_link_that_works(
    importer: Importer, tmp_path: Path
) -> None:
    api = importer.api
    source = write_csv(tmp_path / "few.csv", [csv_row(i) for i in range(1, 6)])
    importer.run(source, "csv")

    # The importing process delivered nothing: five queued records, no file, no token.
    assert _outbox(api.settings) == []
    assert importer.count(OutboundEmail, OutboundEmail.sent_at.is_(None)) == 5
    assert importer.count(AccountToken) == 0

    with importer.begin() as session:
        taken = identity_service.send_invitations(
            session=session, settings=api.settings, now=NOW, limit=3
        )
    assert taken == 3
    with importer.begin() as session:
        identity_service.send_invitations(
            session=session, settings=api.settings, now=NOW, limit=100
        )
    files = _outbox(api.settings)
    assert len(files) == 5
    assert importer.count(OutboundEmail, OutboundEmail.sent_at.is_not(None)) == 5
    with importer.begin() as session:  # nothing left: nothing sent twice
        assert (
            identity_service.send_invitations(
                session=session, settings=api.settings, now=NOW, limit=100
            )
            == 0
        )
    assert len(_outbox(api.settings)) == 5

    message = next(
        m
        for m in (message_from_bytes(p.read_bytes(), policy=policy.default) for p in files)
        if m["To"] == "lucie.martin2@example.org"
    )
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(r"[?#]token=([A-Za-z0-9_\-]+)", body.get_content())
    assert match is not None
    api.clock.now = NOW
    with fast_password_hashing():
        done = api.client.post(
            "/api/v1/auth/password-reset/complete",
            json={"token": match.group(1), "password": PASSWORD},
        )
        assert done.status_code in (200, 204), done.text
        signin = api.client.post(
            "/api/v1/auth/login",
            json={"email": "lucie.martin2@example.org", "password": PASSWORD},
        )
    assert signin.status_code == 200, signin.text


# -- two importing processes -------------------------------------------------------------

CRASH_AFTER = "HIPPOCRATE_TEST_IMPORT_CRASH_AFTER"


@contextmanager
def crashing_platform(settings: Settings) -> Iterator[Callable[[], Any]]:
    """``open_platform``, whose process stops at the unit of work after the first
    ``$HIPPOCRATE_TEST_IMPORT_CRASH_AFTER`` (as a machine that stops would)."""
    limit = int(os.environ.get(CRASH_AFTER, "0"))
    with open_platform(settings) as begin:
        units = 0

        def counting() -> AbstractContextManager[Any]:
            nonlocal units
            units += 1
            if limit and units > limit:
                raise RuntimeError("the machine stopped")
            return begin()  # type: ignore[no-any-return]

        yield counting


# Several importing processes need PostgreSQL (SQLite has one writer: refused, tested
# in test_import_cli.py).
@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_importing_processes_interrupted_then_resumed_write_everything_once(
    importer: Importer, tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = importer.api
    rows = [csv_row(i) for i in range(1, 61)]
    # Batch k (10 records) goes to process k mod 2: each pair below is in batches of
    # both processes, and which one commits first is a race; one of each is refused.
    pairs = [(5, 15), (37, 45)]
    for kept, again in pairs:
        rows[again - 1] = csv_row(again, email=f"lucie.martin{kept}@example.org")
    source = write_csv(tmp_path / "sixty.csv", rows)
    settings = api.settings.model_copy(update={"key_file": key_file})
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # as init leaves it
    rejected: list[Rejection] = []

    def keep(outcome: Outcome) -> None:
        rejected[:] = outcome.rejected

    monkeypatch.setenv(CRASH_AFTER, "2")
    with pytest.raises(ImportWorkerFailed, match="stopped") as failed:
        importer.run(
            source,
            "csv",
            batch_size=10,
            workers=2,
            opener=crashing_platform,
            settings=settings,
            on_progress=keep,
        )
    _assert_whole(importer)
    with api.store.sessions() as session:
        committed = session.scalar(select(func.count()).select_from(ImportBatch))
    assert committed is not None
    assert 2 <= committed <= 4, str(failed.value)

    monkeypatch.delenv(CRASH_AFTER)
    first_run = list(rejected)
    outcome = importer.run(
        source, "csv", batch_size=10, workers=2, opener=crashing_platform, settings=settings
    )

    assert outcome.resumed_from == committed * 10
    _assert_whole(importer)
    assert importer.count(Patient) == 58
    assert importer.count(ImportBatch) == 6
    every = [*first_run, *outcome.rejected]
    assert {(r.field, r.reason) for r in every} <= {("email", "already registered on the platform")}
    refused = sorted(r.row - 1 for r in every)  # line numbers: the header is line 1
    # A batch that commits in the instant before the crash may not have reported its
    # refusals to the parent: the ones reported are of the pairs, at most one of each;
    # the counts below are the database's, which are whole.
    assert len(refused) <= 2
    assert all(len(set(pair) & set(refused)) <= 1 for pair in pairs), refused
    assert set(refused) <= {row for pair in pairs for row in pair}, refused
    with api.store.sessions() as session:
        assert session.scalar(select(func.sum(ImportBatch.rejected))) == 2
    with api.store.sessions() as session:
        progress = session.scalars(select(ImportProgress)).one()
        assert (progress.rows_done, progress.imported, progress.rejected) == (60, 58, 2)
        emails = session.scalars(select(Patient)).all()
        report = verify(
            session=session,
            public_key=api.store.sessions.vault.provider.signing_public_key(),
            checkpoint_files=[],
        )
    assert report.ok, report.problems
    assert len({p.email_index for p in emails}) == 58


def _assert_whole(importer: Importer) -> None:
    """Every patient has its data key, its account and its invitation, once."""
    patients = importer.count(Patient)
    assert importer.count(DataKeyRecord) == patients
    assert importer.count(Account) == patients
    assert importer.count(OutboundEmail) == patients
    with importer.api.store.sessions() as session:
        batches = session.scalars(select(ImportBatch)).all()
    assert sum(b.imported for b in batches) == patients
