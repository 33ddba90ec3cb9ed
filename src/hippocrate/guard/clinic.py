"""Synthetic consultations, played through the consultations service as the API plays
them: the patient opens, a practitioner of the specialty takes from the queue, both
write (with attachment files checked and sealed like uploads), the practitioner closes
with a report, or the patient cancels. Each act is recorded as its author's own request
(``guard.acting``). The demo seeds its patients' cases with it, and the honeytokens
live theirs by it (``guard.honeytokens``): one generator for both, so a copy of the
database cannot tell their cases apart.

Timing is chosen so that taking always takes the consultation just opened: everything
a practitioner takes was opened earlier than anything left waiting in its specialty's
queue (and than anything already waiting there before seeding).

The guard counts how many distinct patients a practitioner reads in a window
(``guard_breadth_practitioner``); a practitioner can only read the patients in their
care. So no demo practitioner is given more than half that many real patients in care.
When every practitioner of a specialty is full, the case becomes an older, finished one
(closed before the care period), which no practitioner still sees.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hippocrate.blobs import BlobStore
from hippocrate.config import Settings
from hippocrate.consultations import service
from hippocrate.consultations.models import Consultation, ConsultationStatus
from hippocrate.consultations.schemas import CloseInput, ConsultationCreate
from hippocrate.consultations.uploads import UploadedFile
from hippocrate.guard.acting import actor_of, unsafe_acting_as
from hippocrate.guard.documents import pdf_document, skin_photo
from hippocrate.guard.people import DemoAccount
from hippocrate.guard.scenarios import (
    ALLERGIES,
    CANCEL_NOTES,
    INCIDENTS,
    SCENARIOS,
    THANKS,
    Document,
    Scenario,
    say,
)
from hippocrate.patients.schemas import PatientCreate

Status = ConsultationStatus
#: How often a case ends in each status (a patient's case, the demo's and a honeytoken's).
STATUS_WEIGHTS = {
    Status.REQUESTED: 20,
    Status.IN_PROGRESS: 25,
    Status.CLOSED: 40,
    Status.CANCELLED: 15,
}
#: How many consultations a patient has, drawn uniformly from these.
CASES_PER_PATIENT = (1, 1, 1, 2, 2, 3)


class SeedConflict(RuntimeError):
    """Taking from the queue gave another consultation than the one just opened
    (someone else is using the platform while it is seeded)."""


class _Clock:
    """The time of one consultation's events, moving forward by random steps."""

    def __init__(self, start: datetime, rng: random.Random) -> None:
        self.at = start
        self._rng = rng

    def after(self, low_minutes: float, high_minutes: float) -> datetime:
        self.at += timedelta(minutes=self._rng.uniform(low_minutes, high_minutes))
        return self.at


class Clinic:
    """Plays the demo's consultations; counts what it made."""

    def __init__(
        self,
        *,
        session: Session,
        settings: Settings,
        blobs: BlobStore,
        practitioners: Sequence[DemoAccount],
        now: datetime,
        seed: int | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        self._blobs = blobs
        self._now = now
        # Synthetic cases need reproducible, not secret, randomness.
        self._rng = random.Random(  # noqa: S311
            None if seed is None else f"hippocrate-demo-cases-{seed}"
        )
        self._by_specialty: dict[str, list[DemoAccount]] = defaultdict(list)
        for practitioner in practitioners:
            assert practitioner.specialty is not None
            self._by_specialty[practitioner.specialty].append(practitioner)
        self._in_care: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        self._cap = max(1, settings.guard_breadth_practitioner // 2)
        self._care = timedelta(days=settings.care_period_days)
        # Per specialty, the oldest consultation waiting in the queue.
        rows = session.execute(
            select(Consultation.specialty, func.min(Consultation.created_at))
            .where(Consultation.status == Status.REQUESTED)
            .group_by(Consultation.specialty)
        ).all()
        self._waiting_since: dict[str, datetime] = {str(s): at for s, at in rows}
        self.statuses: Counter[str] = Counter()
        self.messages = 0
        self.attachments = 0

    # -- choosing ------------------------------------------------------------------------

    def _scenario(self, data: PatientCreate) -> Scenario:
        return self._rng.choice(self._fitting(data) or SCENARIOS[:1])

    def _fitting(self, data: PatientCreate) -> list[Scenario]:
        born = data.birth_date
        today = self._now.date()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        return [
            s
            for s in SCENARIOS
            if s.fits(age=age, sex=data.sex) and s.specialty in self._by_specialty
        ]

    def _practitioner(
        self, specialty: str, patient: DemoAccount, *, in_care: bool
    ) -> DemoAccount | None:
        """The practitioner who takes the case: if it starts a care relationship that
        still lasts, the least busy one with room for this patient, else anyone."""
        candidates = self._by_specialty[specialty]
        if not in_care:
            return self._rng.choice(candidates)
        assert patient.patient_id is not None
        for practitioner in sorted(candidates, key=lambda p: len(self._in_care[p.account_id])):
            patients = self._in_care[practitioner.account_id]
            if patient.patient_id in patients or len(patients) < self._cap:
                patients.add(patient.patient_id)
                return practitioner
        return None

    def _before_waiting(self, specialty: str, opened: datetime) -> datetime:
        """``opened``, moved earlier if needed so that it precedes everything waiting."""
        waiting = self._waiting_since.get(specialty)
        if waiting is not None and opened >= waiting:
            return waiting - timedelta(minutes=self._rng.uniform(5, 120))
        return opened

    def _ago(self, *, low_hours: float, high_hours: float) -> datetime:
        return self._now - timedelta(hours=self._rng.uniform(low_hours, high_hours))

    # -- playing -------------------------------------------------------------------------

    def consult(
        self, patient: DemoAccount, data: PatientCreate, status: Status, *, closing: bool = False
    ) -> Status:
        """Play one consultation of ``patient`` ending in ``status``; returns the status
        it really ended in (an older closed case when practitioners are full). With
        ``closing``, a case in progress is played to its close (``recently_closed``)."""
        scenario = self._scenario(data)
        if status is Status.REQUESTED:
            self._waiting(patient, data, scenario)
        elif status is Status.CANCELLED and self._rng.random() < 0.5:
            self._cancelled_before_taken(patient, data, scenario)
        else:
            status = self._taken(patient, data, scenario, status, closing=closing)
        patient.consultations.append(status.value)
        self.statuses[status.value] += 1
        return status

    def recently_closed(
        self,
        patient: DemoAccount,
        data: PatientCreate,
        practitioner: DemoAccount | None = None,
        scenario: Scenario | None = None,
    ) -> Status:
        """What an open case is a few hours later: opened 8 to 72 hours ago (as one in
        progress), taken by ``practitioner`` (default: one of the specialty with room
        for a patient in care) and closed before now, so it stays in the practitioner's
        care. Returns the status it ended in (an older closed case when practitioners
        are full)."""
        scenario = scenario or self._scenario(data)
        if practitioner is None:
            return self.consult(patient, data, Status.IN_PROGRESS, closing=True)
        opened = self._before_waiting(scenario.specialty, self._ago(low_hours=8, high_hours=72))
        assert patient.patient_id is not None
        self._in_care[practitioner.account_id].add(patient.patient_id)
        self._exchange(
            patient=patient,
            practitioner=practitioner,
            data=data,
            scenario=scenario,
            status=Status.CLOSED,
            clock=_Clock(opened, self._rng),
        )
        practitioner.consultations.append(Status.CLOSED.value)
        patient.consultations.append(Status.CLOSED.value)
        self.statuses[Status.CLOSED.value] += 1
        return Status.CLOSED

    def scenario_in(self, specialty: str, data: PatientCreate) -> Scenario | None:
        """A scenario of ``specialty`` that fits this patient (age, sex), if any."""
        fitting = [s for s in self._fitting(data) if s.specialty == specialty]
        return self._rng.choice(fitting) if fitting else None

    def play_closed(
        self,
        patient: DemoAccount,
        data: PatientCreate,
        practitioner: DemoAccount,
        scenario: Scenario,
        opened: datetime,
    ) -> datetime:
        """Play a case of ``patient`` that ``practitioner`` takes and closes, opened at
        ``opened`` (earlier if something waits in the queue since then, so that taking
        hands out this case); returns when it was really opened."""
        opened = self._before_waiting(scenario.specialty, opened)
        assert patient.patient_id is not None
        self._in_care[practitioner.account_id].add(patient.patient_id)
        self._exchange(
            patient=patient,
            practitioner=practitioner,
            data=data,
            scenario=scenario,
            status=Status.CLOSED,
            clock=_Clock(opened, self._rng),
        )
        practitioner.consultations.append(Status.CLOSED.value)
        patient.consultations.append(Status.CLOSED.value)
        self.statuses[Status.CLOSED.value] += 1
        return opened

    def _waiting(self, patient: DemoAccount, data: PatientCreate, scenario: Scenario) -> None:
        opened = self._ago(low_hours=0.1, high_hours=5)
        files = (
            [self._document(scenario.document, data, opened)] if self._rng.random() < 0.5 else []
        )
        self._open(patient, data, scenario, opened, files)
        known = self._waiting_since.get(scenario.specialty)
        self._waiting_since[scenario.specialty] = min(opened, known) if known else opened

    def _cancelled_before_taken(
        self, patient: DemoAccount, data: PatientCreate, scenario: Scenario
    ) -> None:
        clock = _Clock(self._ago(low_hours=6, high_hours=45 * 24), self._rng)
        consultation = self._open(patient, data, scenario, clock.at, [])
        self._write(
            patient,
            consultation,
            say(self._rng.choice(CANCEL_NOTES), sex=data.sex),
            clock.after(20, 240),
        )
        with self._as(patient):
            service.cancel(
                session=self._session,
                settings=self._settings,
                principal=patient.principal,
                consultation=consultation,
                now=clock.after(0.5, 1),
            )

    def _taken(
        self,
        patient: DemoAccount,
        data: PatientCreate,
        scenario: Scenario,
        status: Status,
        *,
        closing: bool = False,
    ) -> Status:
        if status is Status.IN_PROGRESS:
            opened = self._ago(low_hours=8, high_hours=72)
        elif status is Status.CANCELLED:
            opened = self._ago(low_hours=10, high_hours=45 * 24)
        else:
            opened = self._ago(low_hours=24, high_hours=90 * 24)
        opened = self._before_waiting(scenario.specialty, opened)
        # Care lasts care_period_days after the end, which comes within 12 hours, and
        # ends at the following midnight (care relationships keep whole days).
        in_care = (
            status is Status.IN_PROGRESS
            or opened + self._care + timedelta(hours=12, days=1) > self._now
        )
        practitioner = self._practitioner(scenario.specialty, patient, in_care=in_care)
        if practitioner is None:
            status = Status.CLOSED
            opened = self._now - self._care - timedelta(days=self._rng.uniform(5, 90))
            opened = self._before_waiting(scenario.specialty, opened)
            practitioner = self._practitioner(scenario.specialty, patient, in_care=False)
            assert practitioner is not None
        if closing and status is Status.IN_PROGRESS:
            status = Status.CLOSED
        self._exchange(
            patient=patient,
            practitioner=practitioner,
            data=data,
            scenario=scenario,
            status=status,
            clock=_Clock(opened, self._rng),
        )
        practitioner.consultations.append(status.value)
        return status

    def _exchange(
        self,
        *,
        patient: DemoAccount,
        practitioner: DemoAccount,
        data: PatientCreate,
        scenario: Scenario,
        status: Status,
        clock: _Clock,
    ) -> None:
        rng, sex = self._rng, data.sex
        consultation = self._open(patient, data, scenario, clock.at, [])
        # Taking changes the row with a conditional UPDATE: read it again afterwards.
        self._session.expire(consultation)
        with self._as(practitioner):
            # With the settings, as the API takes: the patient is emailed that it was
            # taken, so a honeytoken's mail is a real patient's.
            taken = service.take_next(
                session=self._session,
                settings=self._settings,
                principal=practitioner.principal,
                now=clock.after(10, 180),
            )
        if taken.id != consultation.id:
            raise SeedConflict(
                "the queue gave another consultation than the one just opened: seed while "
                "nobody else uses the platform"
            )
        self._write(practitioner, consultation, say(scenario.question, sex=sex), clock.after(2, 15))
        if status is Status.CANCELLED:
            self._write(
                patient, consultation, say(rng.choice(CANCEL_NOTES), sex=sex), clock.after(20, 240)
            )
            with self._as(patient):
                service.cancel(
                    session=self._session,
                    settings=self._settings,
                    principal=patient.principal,
                    consultation=consultation,
                    now=clock.after(0.5, 1),
                )
            return
        sent = clock.after(10, 120)
        document = self._document(scenario.document, data, sent)
        self._write(patient, consultation, say(scenario.answer, sex=sex), sent, [document])
        if status is Status.IN_PROGRESS:
            if rng.random() < 0.5:
                self._write(
                    practitioner, consultation, say(scenario.advice, sex=sex), clock.after(5, 60)
                )
            return
        self._write(practitioner, consultation, say(scenario.advice, sex=sex), clock.after(5, 60))
        if rng.random() < 0.4:
            self._write(patient, consultation, rng.choice(THANKS), clock.after(3, 40))
        if rng.random() < 0.15:
            with self._as(practitioner):
                service.record_incident(
                    session=self._session,
                    principal=practitioner.principal,
                    consultation=consultation,
                    description=rng.choice(INCIDENTS),
                    now=clock.after(1, 5),
                )
        # Closing issues the signed report and prescription PDFs (the documents service).
        with self._as(practitioner):
            service.close(
                session=self._session,
                settings=self._settings,
                blobs=self._blobs,
                principal=practitioner.principal,
                consultation=consultation,
                data=CloseInput(
                    report=say(scenario.report, sex=sex),
                    prescription=scenario.prescription,
                    acts=list(scenario.acts),
                ),
                now=clock.after(1, 10),
            )

    # -- the service calls -----------------------------------------------------------------

    def _as(self, who: DemoAccount) -> AbstractContextManager[None]:
        """Each act is recorded as its author's own request (``demo.actors``)."""
        return unsafe_acting_as(self._session, actor_of(who.principal))

    def _open(
        self,
        patient: DemoAccount,
        data: PatientCreate,
        scenario: Scenario,
        at: datetime,
        files: list[UploadedFile],
    ) -> Consultation:
        questionnaire = {
            "symptoms_duration": scenario.duration,
            "current_treatments": scenario.treatments,
            "allergies": self._rng.choice(ALLERGIES),
            "pregnancy": "no" if data.sex == "F" and scenario.ages[0] >= 14 else "not_applicable",
        }
        with self._as(patient):
            consultation = service.open_consultation(
                session=self._session,
                settings=self._settings,
                blobs=self._blobs,
                principal=patient.principal,
                data=ConsultationCreate(
                    specialty=scenario.specialty,
                    subject=say(scenario.subject, sex=data.sex),
                    description=say(scenario.description, sex=data.sex),
                    questionnaire=questionnaire,
                ),
                files=files,
                now=at,
            )
        if files:
            self.messages += 1
            self.attachments += len(files)
        return consultation

    def _write(
        self,
        author: DemoAccount,
        consultation: Consultation,
        body: str,
        at: datetime,
        files: Sequence[UploadedFile] = (),
    ) -> None:
        with self._as(author):
            service.post_message(
                session=self._session,
                settings=self._settings,
                blobs=self._blobs,
                principal=author.principal,
                consultation=consultation,
                body=body,
                files=files,
                now=at,
            )
        self.messages += 1
        self.attachments += len(files)

    # -- files -----------------------------------------------------------------------------

    def _document(self, document: Document, data: PatientCreate, at: datetime) -> UploadedFile:
        if document.kind == "photo":
            jpeg = document.filename.endswith(".jpg")
            content = skin_photo(seed=self._rng.randrange(2**31), kind="JPEG" if jpeg else "PNG")
            return UploadedFile(document.filename, "image/jpeg" if jpeg else "image/png", content)
        lines = [
            *document.lines,
            "",
            f"Patient : {data.given_names} {data.family_name}",
            f"Document du {at:%d/%m/%Y}",
        ]
        content = pdf_document(document.title, lines)
        return UploadedFile(document.filename, "application/pdf", content)
