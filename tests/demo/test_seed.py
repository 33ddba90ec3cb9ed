"""What seeding leaves in the database: accounts of every role, practitioners of several
specialties, consultations in every status with messages and genuine attachments, and
no practitioner with more patients in care than the guard lets them read."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from stdnum import luhn

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.recorder import Actor, attach
from hippocrate.blobs import FileBlobStore
from hippocrate.consultations import service
from hippocrate.consultations.files import check_file
from hippocrate.consultations.models import (
    Attachment,
    CareRelationship,
    Consultation,
    ConsultationStatus,
    Message,
)
from hippocrate.consultations.schemas import SPECIALTIES
from hippocrate.demo.seed import seed_demo
from hippocrate.guard.service import Guard
from hippocrate.guard.state import LocalState
from hippocrate.identity.models import Account, AccountStatus, Practitioner, Role
from hippocrate.tags import Purpose
from tests.conftest import Store
from tests.consultations.helpers import settings_for
from tests.demo.helpers import seed
from tests.identity.helpers import fast_password_hashing

Status = ConsultationStatus
COUNT = 12


def test_seeding_makes_every_role_several_specialties_and_every_status(
    store: Store, tmp_path: Path
) -> None:
    report, settings = seed(store, tmp_path, count=COUNT, seed=7)
    blobs = FileBlobStore(settings.blob_dir)
    principals = {p.account_id: p.principal for p in report.patients}
    now = datetime.now(UTC)

    with store.sessions() as session:
        accounts = session.scalars(select(Account)).all()
        assert Counter(a.role for a in accounts) == {
            Role.PATIENT: COUNT,
            Role.PRACTITIONER: 2 * len(SPECIALTIES),
            Role.ADMIN: 2,
            Role.SUPPORT: 1,
            Role.DPO: 2,
        }
        assert all(a.status is AccountStatus.ACTIVE and a.password_hash for a in accounts)
        patients = [a for a in accounts if a.role is Role.PATIENT]
        assert all(a.email_verified_at is not None for a in patients)
        assert 0 < sum(a.totp_enabled for a in patients) < COUNT
        assert all(a.totp_enabled and a.totp_secret for a in accounts if a.role.is_staff)

        practitioners = session.scalars(select(Practitioner)).all()
        per_specialty = Counter(p.specialty for p in practitioners)
        assert len(per_specialty) >= 4
        assert min(per_specialty.values()) >= 2
        for practitioner in practitioners:
            rpps = practitioner.rpps
            assert rpps is not None
            assert len(rpps) == 11
            assert rpps.isdigit()
            assert luhn.is_valid(rpps)
            assert rpps.startswith("997"), "outside the range of real RPPS numbers"

        consultations = session.scalars(select(Consultation)).all()
        by_status = Counter(c.status for c in consultations)
        assert set(by_status) == set(Status)
        assert by_status == Counter({Status(k): v for k, v in report.consultations.items()})
        owner = {a.patient_id: a for a in patients}
        staff_of = {p.id: p.account_id for p in practitioners}
        media: Counter[str] = Counter()
        for consultation in consultations:
            messages = session.scalars(
                select(Message).where(Message.consultation_id == consultation.id)
            ).all()
            attachments = session.scalars(
                select(Attachment).where(Attachment.consultation_id == consultation.id)
            ).all()
            patient = owner[consultation.patient_id]
            assert consultation.subject
            assert consultation.description
            if consultation.status is Status.REQUESTED:
                assert consultation.practitioner_id is None
                continue
            if consultation.status is Status.CANCELLED:
                assert consultation.cancelled_at is not None
                assert messages, "the patient says why they cancel"
                continue
            # In progress or closed: taken, and written both ways, with a file.
            assert consultation.practitioner_id is not None
            assert consultation.taken_at is not None
            authors = {m.author_account_id for m in messages}
            assert authors == {patient.id, staff_of[consultation.practitioner_id]}
            assert attachments
            if consultation.status is Status.CLOSED:
                assert consultation.closed_at is not None
                assert consultation.report
                assert consultation.acts
                assert consultation.acts[0] in {"TC", "TCG"}
            principal = principals[patient.id]
            for attachment in attachments:
                found, content = service.read_attachment(
                    session=session,
                    blobs=blobs,
                    principal=principal,
                    attachment_id=attachment.id,
                    now=now,
                )
                assert found.media_type is not None
                checked = check_file(
                    position=1,
                    filename=found.filename,
                    declared_type=found.media_type,
                    content=content,
                    max_bytes=settings.attachment_max_bytes,
                )
                assert checked.media_type == found.media_type
                media[found.media_type] += 1
        assert media["application/pdf"]
        assert media["image/png"] + media["image/jpeg"]
        closed = [c for c in consultations if c.status is Status.CLOSED]
        assert any(c.prescription for c in closed)

    credentials = report.credentials()
    assert [p["id"] for p in credentials["patients"]] == [
        str(a.patient_id) for a in report.patients
    ]
    for entry in (*credentials["patients"], *credentials["practitioners"], *credentials["staff"]):
        assert entry["email"]
        assert len(entry["password"]) >= 20
        if entry["totp_secret"]:
            assert f"secret={entry['totp_secret']}" in entry["otpauth_uri"]
        else:
            assert entry["role"] == "patient"
            assert entry["otpauth_uri"] is None
    assert {e["role"] for e in credentials["staff"]} == {"admin", "support", "dpo"}


def test_no_practitioner_gets_more_patients_in_care_than_the_guard_lets_them_read(
    sqlite_store: Store, tmp_path: Path
) -> None:
    # A low threshold: at most 4 distinct patients an hour, so at most 2 in care each.
    report, _ = seed(sqlite_store, tmp_path, count=40, seed=3, guard_breadth_practitioner=4)
    now = datetime.now(UTC)

    with sqlite_store.sessions() as session:
        rows = session.execute(
            select(CareRelationship.practitioner_id, CareRelationship.patient_id).where(
                (CareRelationship.ends_at.is_(None)) | (CareRelationship.ends_at > now)
            )
        ).all()
        statuses = set(session.scalars(select(Consultation.status)).all())
    in_care: dict[uuid.UUID, set[uuid.UUID]] = {}
    for practitioner_id, patient_id in rows:
        in_care.setdefault(practitioner_id, set()).add(patient_id)
    assert in_care, "some practitioners have patients in care"
    assert max(len(patients) for patients in in_care.values()) <= 2
    assert statuses == set(Status)
    # The cases no practitioner had room for became older, finished ones.
    assert report.consultations["closed"] > report.consultations["in_progress"]


def test_seeding_records_each_act_as_its_author_which_the_guard_does_not_count(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Seeding plays each act through the services as its author (a registration is an
    anonymous request, a patient opens and writes, a practitioner takes, writes and
    closes), and the trail names that author, as the API would. The platform plays
    their part: with the guard's read check wired in as the API wires it, and
    thresholds of one patient, nothing is checked against them, nothing refused or
    contained."""
    settings = settings_for(
        tmp_path, sqlite_store, guard_breadth_practitioner=1, guard_breadth_patient=1
    )
    guard = Guard(settings, sqlite_store.sessions.vault, LocalState())
    checked: list[uuid.UUID] = []

    def check(actor: Actor, patient: uuid.UUID, _resource: str) -> None:
        checked.append(patient)
        guard.check_read(session, actor, patient)

    with fast_password_hashing(), sqlite_store.sessions.begin() as session:
        attach(session, Actor(role="operator", purpose=Purpose.DEMO_SEED), check)
        report = seed_demo(
            session=session,
            settings=settings,
            blobs=FileBlobStore(settings.blob_dir),
            count=8,
            seed=5,
            now=datetime.now(UTC),
        )

    assert checked == []
    with sqlite_store.sessions() as session:
        rows = session.execute(
            select(AuditEvent.actor_role, AuditEvent.actor_account_id, AuditEvent.purpose)
        ).all()
    roles = {role for role, _, _ in rows}
    assert {"anonymous", "patient", "practitioner"} <= roles
    patients = {p.account_id for p in report.patients}
    practitioners = {p.account_id for p in report.practitioners}
    assert {a for r, a, _ in rows if r == "patient"} <= patients
    assert {a for r, a, _ in rows if r == "practitioner"} <= practitioners
    assert {p for r, _, p in rows if r == "practitioner"} == {"care"}
    every_account = [*report.patients, *report.practitioners, *report.staff]
    assert all(guard.state.contained(a.account_id) is None for a in every_account)
