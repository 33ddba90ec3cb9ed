"""Planting honeytokens: patients that live like real ones, and that only a thief reads.

A honeytoken is made by the services that make real data, in the order a real patient's
life takes (docs/GUARD.md, "Honeytokens"): an account with a verified address (one in
three with TOTP, one in four without NIR), then one to three consultations in the
demo's scenarios, taken by practitioners of the specialty from the queue, with messages
both ways, attachments, emails sent by the notify service, a report and acts, or
cancelled by the patient. Each act is recorded in the trail as its author's own
request (``demo.actors``). Only a keyed digest of the patient's id is kept, in
``guard_markers``: the list is secret to whoever lacks the provider's index key.

Placement: each honeytoken's first case is closed with a practitioner who has none in
view, and dated among that practitioner's most recent patients (between the 1st and the
10th), at least eight hours ago, inside the care period. A thief walking the
practitioner's consultations (newest first) opens it before the 20 patients of the
breadth limit; an honest practitioner does not reopen a closed case they have no reason
to. ``tend`` keeps it so as practitioners see new patients.

Canary contacts: every honeytoken's email address is at ``HIPPOCRATE_CANARY_DOMAIN``,
which the operator monitors (``canary_domain``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from hippocrate.audit.recorder import Actor
from hippocrate.blobs import BlobStore, FileBlobStore
from hippocrate.config import Settings
from hippocrate.consultations import service as consultations
from hippocrate.consultations.models import CareRelationship, Consultation, ConsultationStatus
from hippocrate.errors import HippocrateError
from hippocrate.guard.acting import unsafe_acting_as
from hippocrate.guard.clinic import CASES_PER_PATIENT, STATUS_WEIGHTS, Clinic
from hippocrate.guard.models import HoneytokenMarker
from hippocrate.guard.people import AccountMaker, DemoAccount
from hippocrate.guard.scenarios import Scenario
from hippocrate.guard.service import Guard
from hippocrate.i18n import _n
from hippocrate.identity.models import Account, AccountStatus, Practitioner, Role
from hippocrate.patients.models import Patient
from hippocrate.patients.schemas import Address, PatientCreate
from hippocrate.patients.synthetic import DEMO_DOMAIN, SyntheticPatients
from hippocrate.tags import Purpose

Status = ConsultationStatus
#: A thief meets a honeytoken among a practitioner's newest this many patients.
WINDOW = 10
# A placed case is closed this long ago at least (its whole exchange lies in the past).
_SETTLED = timedelta(hours=8)
# A placed case that the list shows past the window is followed by another (at most).
_PLACEMENT_TRIES = 2


class CanaryDomainMissing(HippocrateError):
    title = _n("Canary domain missing")

    def __init__(self) -> None:
        super().__init__(
            _n(
                "set HIPPOCRATE_CANARY_DOMAIN to a domain you monitor before planting "
                "honeytokens on a platform that delivers mail: their addresses must reach "
                "no one but you"
            )
        )


def canary_domain(settings: Settings) -> str:
    """The domain of the honeytokens' addresses: ``HIPPOCRATE_CANARY_DOMAIN``; unset, the
    demo patients' domain, but only while no mail is delivered (no SMTP host: the
    outbox). Raises ``CanaryDomainMissing`` otherwise."""
    if settings.canary_domain:
        return settings.canary_domain
    if settings.smtp_host:
        raise CanaryDomainMissing()
    return DEMO_DOMAIN


def unsafe_active_practitioners(session: Session) -> list[DemoAccount]:
    """Every active practitioner, with what a case needs of them (name and RPPS for the
    prescription), oldest account first.

    Unsafe, it skips the access policy: the platform plays a case in the practitioner's
    name; it shows nothing of them to anyone."""
    rows = session.scalars(
        select(Practitioner)
        .join(Account, Account.id == Practitioner.account_id)
        .where(Account.status == AccountStatus.ACTIVE)
        .order_by(Account.created_at, Account.id)
    ).all()
    return [
        DemoAccount(
            role=Role.PRACTITIONER,
            email="",
            password="",
            account_id=practitioner.account_id,
            practitioner_id=practitioner.id,
            specialty=practitioner.specialty,
            name=f"{practitioner.given_names} {practitioner.family_name}",
            rpps=practitioner.rpps,
        )
        for practitioner in rows
    ]


def _newest_in_care(practitioner: DemoAccount, now: datetime) -> Any:
    """The practitioner's patients in care, each with when their newest case opened,
    newest first: the order in which their consultations list shows them. Plaintext
    columns only."""
    newest = func.max(Consultation.created_at)
    return (
        select(Consultation.patient_id, newest)
        .join(CareRelationship, CareRelationship.consultation_id == Consultation.id)
        .where(
            Consultation.practitioner_id == practitioner.practitioner_id,
            CareRelationship.practitioner_id == practitioner.practitioner_id,
            CareRelationship.started_at <= now,
            or_(CareRelationship.ends_at.is_(None), CareRelationship.ends_at > now),
        )
        .group_by(Consultation.patient_id)
        .order_by(newest.desc(), Consultation.patient_id)
    )


def in_view(session: Session, practitioner: DemoAccount, now: datetime) -> list[datetime]:
    """When the newest case of each of the practitioner's patients in care opened."""
    rows = session.execute(_newest_in_care(practitioner, now)).all()
    return [_aware(at) for _, at in rows]


def holds_one(session: Session, guard: Guard, practitioner: DemoAccount, now: datetime) -> bool:
    """Whether a honeytoken is among the first ``WINDOW`` patients of the practitioner's
    consultations list, in the list's own order (its statement, plaintext columns)."""
    listed = consultations.list_consultations(principal=practitioner.principal, now=now)
    seen: list[uuid.UUID] = []
    for patient in session.scalars(
        listed.with_only_columns(Consultation.patient_id).limit(WINDOW * 5)
    ):
        if patient not in seen:
            seen.append(patient)
        if len(seen) == WINDOW:
            break
    return any(guard.is_honeytoken(session, patient) for patient in seen)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def unsafe_planted_patient(
    session: Session, patient_id: uuid.UUID
) -> tuple[DemoAccount, PatientCreate]:
    """A planted honeytoken's account, and what its cases need of its record (names,
    birth date, sex: the scenario that fits, the names on its documents).

    Unsafe, it skips the access policy and the guard: the platform reads its own
    honeytoken to give it its life, in its own unit of work, and shows nothing."""
    with unsafe_acting_as(session, Actor(role="operator", purpose=Purpose.SETUP)):
        account = session.scalars(select(Account).where(Account.patient_id == patient_id)).one()
        record = session.get(Patient, patient_id)
        assert record is not None
        data = PatientCreate.model_construct(
            given_names=record.given_names or "",
            family_name=record.family_name or "",
            birth_date=record.birth_date or date(1980, 1, 1),
            sex="F" if record.sex == "F" else "M",
            email="",
            phone="",
            address=Address.model_construct(line1="", postal_code="", city=""),
        )
    holder = DemoAccount(
        role=Role.PATIENT, email="", password="", account_id=account.id, patient_id=patient_id
    )
    return holder, data


class Planter:
    """Plants honeytokens in one unit of work of the platform (nothing here commits)."""

    def __init__(
        self,
        *,
        session: Session,
        guard: Guard,
        blobs: BlobStore | None = None,
        now: datetime | None = None,
        seed: int | None = None,
        maker: AccountMaker | None = None,
        clinic: Clinic | None = None,
        practitioners: Sequence[DemoAccount] | None = None,
    ) -> None:
        self._session = session
        self._guard = guard
        self._now = now or datetime.now(UTC)
        # The platform's own settings: honeytokens are mailed like every patient.
        settings = guard.settings
        self._domain = canary_domain(settings)
        # Reproducible when seeded (the demo, tests); unseeded, drawn from the system's
        # entropy: which practitioner and which place need no more than the markers do.
        self._rng = random.Random(  # noqa: S311
            None if seed is None else f"hippocrate-honeytokens-{seed}"
        )
        self._people = SyntheticPatients(None if seed is None else seed + 7919)
        self._maker = maker or AccountMaker(
            session=session, now=self._now, seed=None if seed is None else seed + 7919
        )
        self._practitioners = list(
            practitioners if practitioners is not None else unsafe_active_practitioners(session)
        )
        self._clinic = clinic
        if clinic is None and self._practitioners:
            self._clinic = Clinic(
                session=session,
                settings=settings,
                blobs=blobs or FileBlobStore(settings.blob_dir),
                practitioners=self._practitioners,
                now=self._now,
                seed=None if seed is None else seed + 7919,
            )
        self.planted: list[uuid.UUID] = []
        self._lifeless: list[uuid.UUID] | None = None

    def uncovered(self) -> list[DemoAccount]:
        """The practitioners who have no honeytoken among their newest patients."""
        return [
            p
            for p in self._practitioners
            if not holds_one(self._session, self._guard, p, self._now)
        ]

    def lifeless(self) -> list[uuid.UUID]:
        """Honeytokens planted before any practitioner could take their cases (``init``
        plants them in an empty deployment): they have an account and no consultation.
        Finding them costs one keyed digest per patient without a consultation, once
        per planter."""
        if self._lifeless is None:
            without = self._session.scalars(
                select(Patient.id)
                .where(
                    ~select(Consultation.id).where(Consultation.patient_id == Patient.id).exists()
                )
                .order_by(Patient.created_at, Patient.id)
            ).all()
            self._lifeless = [p for p in without if self._guard.is_honeytoken(self._session, p)]
        return list(self._lifeless)

    def plant(self, practitioner: DemoAccount | None = None, *, in_view: bool = False) -> uuid.UUID:
        """One honeytoken: a lifeless one given its life (``lifeless``), else a new one;
        without practitioners, an account whose cases come later (``tend``).

        Its cases are drawn as a real patient's are (how many, which status, when);
        one that would still be open is closed already, the first of them with
        ``practitioner`` (default: one who has none in view, else anyone). With
        ``in_view``, that practitioner gets a closed case placed among their newest
        patients whatever was drawn (``tend``)."""
        if practitioner is None and self._practitioners:
            uncovered = self.uncovered()
            practitioner = self._rng.choice(uncovered or self._practitioners)
        waiting = self.lifeless() if practitioner is not None else []
        if waiting:
            assert self._lifeless is not None
            self._lifeless.remove(waiting[0])
            patient, data = unsafe_planted_patient(self._session, waiting[0])
            practitioner, scenario = self._fitting(practitioner, data)
        else:
            data, scenario = self._identity(practitioner)
            patient = self._maker.patient(data, with_totp=self._rng.random() < 1 / 3)
            assert patient.patient_id is not None
            self._session.add(HoneytokenMarker(digest=self._guard.marker(patient.patient_id)))
        assert patient.patient_id is not None
        cases = self._rng.choice(CASES_PER_PATIENT)
        statuses = self._rng.choices(
            list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()), k=cases
        )
        if in_view and practitioner is not None and scenario is not None:
            self._place(patient, data, practitioner, scenario)
            statuses = statuses[1:]
            practitioner = scenario = None
        if self._clinic is not None:
            for status in statuses:
                if status in (Status.CLOSED, Status.CANCELLED):
                    self._clinic.consult(patient, data, status)
                elif practitioner is not None and scenario is not None:
                    # A case that would be open now is closed already (a honeytoken is
                    # never in a queue nor in a worklist): the first goes to the
                    # practitioner it is placed with.
                    self._clinic.recently_closed(patient, data, practitioner, scenario)
                    practitioner = scenario = None
                else:
                    self._clinic.recently_closed(patient, data)
        self._session.flush()
        self.planted.append(patient.patient_id)
        return patient.patient_id

    def _place(
        self,
        patient: DemoAccount,
        data: PatientCreate,
        practitioner: DemoAccount,
        scenario: Scenario,
    ) -> None:
        assert self._clinic is not None
        for _ in range(_PLACEMENT_TRIES):
            self._clinic.play_closed(
                patient, data, practitioner, scenario, opened=self._placement(practitioner)
            )
            self._session.flush()
            if holds_one(self._session, self._guard, practitioner, self._now):
                return

    def _fitting(
        self, wanted: DemoAccount | None, data: PatientCreate
    ) -> tuple[DemoAccount | None, Scenario | None]:
        """``wanted`` and a scenario of their specialty that fits this patient; else
        another practitioner (one with no honeytoken in view first) and theirs."""
        if self._clinic is None:
            return wanted, None
        uncovered = self.uncovered()
        others = [p for p in self._practitioners if p not in uncovered]
        self._rng.shuffle(uncovered)
        self._rng.shuffle(others)
        for candidate in [*([wanted] if wanted else []), *uncovered, *others]:
            scenario = self._clinic.scenario_in(candidate.specialty or "", data)
            if scenario is not None:
                return candidate, scenario
        return wanted, None

    def _identity(self, practitioner: DemoAccount | None) -> tuple[PatientCreate, Scenario | None]:
        """A synthetic identity at the canary domain that fits a scenario of the
        practitioner's specialty (age, sex), and that scenario."""
        data = self._people.patient(with_nir=self._rng.random() < 0.75, domain=self._domain)
        if practitioner is None or self._clinic is None:
            return data, None
        assert practitioner.specialty is not None
        for _ in range(200):
            scenario = self._clinic.scenario_in(practitioner.specialty, data)
            if scenario is not None:
                return data, scenario
            data = self._people.patient(with_nir=self._rng.random() < 0.75, domain=self._domain)
        return data, None

    def _placement(self, practitioner: DemoAccount) -> datetime:
        """When the placed case opens: among the practitioner's newest patients (after
        the k-th newest, k drawn from 1 to ``WINDOW`` - 1), settled, inside care."""
        latest = self._now - _SETTLED
        seen = [at for at in in_view(self._session, practitioner, self._now) if at < latest]
        if len(seen) >= 2:
            k = self._rng.randint(1, min(WINDOW - 1, len(seen) - 1))
            newer, older = seen[k - 1], seen[k]
            return older + (newer - older) * self._rng.uniform(0.2, 0.8)
        if seen:
            return seen[0] - timedelta(hours=self._rng.uniform(1, 24))
        return latest - timedelta(hours=self._rng.uniform(0, 72))


def plant(
    *,
    session: Session,
    guard: Guard,
    count: int,
    seed: int | None = None,
    blobs: BlobStore | None = None,
    now: datetime | None = None,
) -> int:
    """Plant ``count`` honeytokens (see the module docstring); returns how many."""
    planter = Planter(session=session, guard=guard, blobs=blobs, now=now, seed=seed)
    for _ in range(count):
        planter.plant()
    return count


def tend(
    *,
    session: Session,
    guard: Guard,
    blobs: BlobStore | None = None,
    now: datetime | None = None,
) -> int:
    """Place a new honeytoken with every active practitioner who has none among their
    newest ``WINDOW`` patients (they saw new patients since, or joined); returns how
    many were planted. Run it from the scheduler (``hippocrate guard tend``)."""
    planter = Planter(session=session, guard=guard, blobs=blobs, now=now)
    uncovered = planter.uncovered()
    for practitioner in uncovered:
        planter.plant(practitioner, in_view=True)
    return len(uncovered)


def planted(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(HoneytokenMarker)) or 0)
