"""What planting makes: honeytokens with an account at the canary domain, consultations
taken by the platform's practitioners with messages both ways, emails sent, and a
history in the trail under the real actors; one in view of every practitioner; nothing
counted against anyone. And the canary domain is required once mail is delivered."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.recorder import Actor
from hippocrate.consultations.models import Consultation, ConsultationStatus, Message
from hippocrate.db.engine import make_engine
from hippocrate.guard.honeytokens import (
    CanaryDomainMissing,
    holds_one,
    plant,
    tend,
    unsafe_active_practitioners,
)
from hippocrate.guard.models import HoneytokenMarker
from hippocrate.guard.service import HONEYTOKEN_PURPOSE, Guard
from hippocrate.guard.state import LocalState
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.models import Patient
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.vault.providers.file import FileKeyProvider
from hippocrate.work import unit_of_work
from tests.cli.test_cli import Cli, assert_one_line_error
from tests.conftest import Store
from tests.consultations.helpers import settings_for
from tests.identity.helpers import fast_password_hashing, make_user

CANARY = "canary.example.org"
PLATFORM = Actor(role="operator", purpose=Purpose.SETUP)


def test_planted_honeytokens_live_like_patients_at_the_canary_domain(
    store: Store, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, store, canary_domain=CANARY)
    guard = Guard(settings, store.sessions.vault, LocalState())
    runtime = Runtime(settings, store.sessions, guard=guard)
    now = datetime.now(UTC)
    with fast_password_hashing():
        doctors = [
            make_user(store.sessions, Role.PRACTITIONER, specialty=s, now=now)
            for s in ("general-practice", "general-practice", "dermatology")
        ]
        with unit_of_work(runtime, PLATFORM) as session:
            plant(session=session, guard=guard, count=4, seed=3, now=now)
        with unit_of_work(runtime, PLATFORM) as session:
            placed = tend(session=session, guard=guard, now=now)

    with store.sessions() as session:
        markers = set(session.scalars(select(HoneytokenMarker.digest)))
        honey = [p for p in session.scalars(select(Patient.id)) if guard.marker(p) in markers]
        assert len(honey) == 4 + placed
        accounts = session.scalars(select(Account).where(Account.patient_id.in_(honey))).all()
        assert len(accounts) == len(honey)
        for account in accounts:
            assert account.role is Role.PATIENT
            assert account.status is AccountStatus.ACTIVE
            assert account.email_verified_at is not None
            assert account.email is not None
            assert account.email.endswith(f"@{CANARY}")
        mine = {a.id for a in accounts}
        cases = session.scalars(select(Consultation).where(Consultation.patient_id.in_(honey)))
        statuses = {c.status for c in cases}
        assert statuses <= {ConsultationStatus.CLOSED, ConsultationStatus.CANCELLED}
        assert ConsultationStatus.CLOSED in statuses
        authors = set(
            session.scalars(select(Message.author_account_id).where(Message.patient_id.in_(honey)))
        )
        doctor_accounts = {d.account_id for d in doctors}
        assert authors & mine, "the patients write"
        assert authors & doctor_accounts, "the practitioners write"
        emails = session.scalar(
            select(func.count())
            .select_from(OutboundEmail)
            .where(OutboundEmail.account_id.in_(mine))
        )
        assert emails, "the platform mailed them"
        trail = session.execute(
            select(AuditEvent.actor_role, AuditEvent.actor_account_id, AuditEvent.purpose).where(
                AuditEvent.patient_id.in_(honey)
            )
        ).all()
        roles = {role for role, _, _ in trail}
        assert {"anonymous", "patient", "practitioner"} <= roles
        assert {a for r, a, _ in trail if r == "patient"} <= mine
        assert {a for r, a, _ in trail if r == "practitioner"} <= doctor_accounts
        assert {p for r, _, p in trail if r == "practitioner"} == {"care"}
        # Every practitioner has one among the newest patients of their list.
        for practitioner in unsafe_active_practitioners(session):
            assert holds_one(session, guard, practitioner, now)
    # Playing their parts counted nothing against anyone.
    assert all(guard.state.contained(d.account_id) is None for d in doctors)
    with store.sessions() as session:
        contained = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("guard:%"))
        ).all()
    assert contained == []


def test_planting_needs_a_canary_domain_once_mail_is_delivered(
    sqlite_store: Store, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, sqlite_store, smtp_host="smtp.example.org")
    guard = Guard(settings, sqlite_store.sessions.vault, LocalState())
    runtime = Runtime(settings, sqlite_store.sessions, guard=guard)
    with pytest.raises(CanaryDomainMissing), unit_of_work(runtime, PLATFORM) as session:
        plant(session=session, guard=guard, count=1)
    with sqlite_store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


@pytest.mark.slow  # seven runs of the command line
def test_the_plant_and_tend_commands(tmp_path: Path) -> None:
    cli = Cli(tmp_path, {"HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"})
    # A deployment that delivers mail plants no honeytoken without its canary domain.
    refused = cli.run("init", HIPPOCRATE_SMTP_HOST="smtp.example.org")
    assert_one_line_error(refused, "HIPPOCRATE_CANARY_DOMAIN")
    assert "3 honeytoken patients planted" in cli.ok("init")
    refused = cli.run("guard", "plant", "--count", "1", HIPPOCRATE_SMTP_HOST="smtp.example.org")
    assert_one_line_error(refused, "HIPPOCRATE_CANARY_DOMAIN")
    assert "2 honeytokens planted" in cli.ok(
        "guard", "plant", "--count", "2", HIPPOCRATE_CANARY_DOMAIN=CANARY
    )
    # No practitioner yet: nothing to place, nothing refused.
    assert "0 honeytokens placed" in cli.ok("guard", "tend")
    # Seeding gives their lives to the five planted without one; tend then places one
    # with each practitioner still without one in view.
    cli.ok("seed", "--patients", "4", "--seed", "5", HIPPOCRATE_CANARY_DOMAIN=CANARY)
    placed = cli.ok("guard", "tend", HIPPOCRATE_CANARY_DOMAIN=CANARY)
    assert re.fullmatch(r"\d+ honeytokens placed\n", placed), placed
    key = FileKeyProvider(cli.key_file).derive_index_key(HONEYTOKEN_PURPOSE)
    engine = make_engine(f"sqlite:///{cli.database}")
    try:
        with engine.connect() as connection:
            markers = set(connection.scalars(select(HoneytokenMarker.digest)))
            ids = list(connection.scalars(select(Patient.id)))
            with_cases = set(connection.scalars(select(Consultation.patient_id)))
    finally:
        engine.dispose()
    honey = {p for p in ids if hmac.new(key, p.bytes, hashlib.sha256).digest() in markers}
    assert len(honey) == 5 + int(placed.split()[0])
    assert honey <= with_cases, "every honeytoken has its cases"
