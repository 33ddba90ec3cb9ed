"""Lists of 50 consultations, with the health metadata sealed (revision 0008) and as
older versions stored it, in the same run.

Since 0008 a consultation out of the queue keeps its specialty and exact instants in a
sealed timeline: a patient's "my consultations" page opens one more value per
consultation (the subject was opened already). A practitioner's page opens nothing,
before and after. "before" lists a patient whose rows are in the form older versions
wrote (plaintext specialty and instants, no timeline), which the same code reads from
plaintext: the cost of the old layout, measured by today's code.

Each listing is what the route does, minus HTTP: one unit of work as the reader (audit
recorder, guard check, patient key from the cache), the policy's scoped statement, the
page of 50 and its total, the summaries built and dumped to JSON.

``python -m bench.lists [--postgres]``: SQLite in a temporary folder, and PostgreSQL
(a database created for the run and dropped after) with ``--postgres``.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.api import SEEDER, _init, _postgres_database, _settings
from bench.machine import describe
from bench.timing import Case, Timing, measure
from hippocrate.access.principal import Principal
from hippocrate.audit.recorder import Actor
from hippocrate.blobs import FileBlobStore
from hippocrate.config import Settings
from hippocrate.consultations import service, views
from hippocrate.consultations.models import Consultation
from hippocrate.consultations.schemas import ConsultationCreate
from hippocrate.db.sealed import unsafe_unaudited
from hippocrate.identity import factors
from hippocrate.identity import service as identity
from hippocrate.identity.models import Role
from hippocrate.patients.service import create_patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.work import unit_of_work

LISTED = 50
SPECIALTY = "psychiatry"
QUESTIONNAIRE = {
    "symptoms_duration": "1_to_4_weeks",
    "current_treatments": "aucun",
    "allergies": "aucune",
    "pregnancy": "not_applicable",
}


@dataclass(frozen=True)
class ListsResult:
    backend: str
    timings: dict[str, Timing]


def _patient(session: Session, generator: SyntheticPatients) -> Principal:
    patient = create_patient(session=session, data=generator.patient(with_nir=True))
    return Principal(account_id=uuid.uuid4(), role=Role.PATIENT, patient_id=patient.id)


def _seed(runtime: Runtime, settings: Settings) -> tuple[Principal, Principal, Principal]:
    """Two patients with 50 consultations each, all taken by one practitioner."""
    generator = SyntheticPatients(2026)
    blobs = FileBlobStore(settings.blob_dir)
    with unit_of_work(runtime, SEEDER) as session:
        _, made = identity.create_practitioner(
            session=session,
            email=f"psy.{uuid.uuid4().hex[:8]}@example.org",
            rpps="10099999990",
            specialty=SPECIALTY,
            given_names="Jeanne",
            family_name="Moreau",
            password="bench-" + uuid.uuid4().hex,
            totp_secret=factors.new_secret(),
            now=datetime.now(UTC),
        )
        practitioner = Principal(
            account_id=made.account_id,
            role=Role.PRACTITIONER,
            practitioner_id=made.id,
            specialty=SPECIALTY,
        )
        patients = (_patient(session, generator), _patient(session, generator))
    start = datetime.now(UTC) - timedelta(days=20)
    for index in range(LISTED):
        with unit_of_work(runtime, SEEDER) as session:
            for patient in patients:
                at = start + timedelta(hours=index, minutes=patients.index(patient))
                service.open_consultation(
                    session=session,
                    settings=settings,
                    blobs=blobs,
                    principal=patient,
                    data=ConsultationCreate(
                        specialty=SPECIALTY,
                        subject=f"Insomnie et anxiété depuis la rentrée ({index})",
                        description="Réveils à quatre heures, ruminations, fatigue le jour.",
                        questionnaire=QUESTIONNAIRE,
                    ),
                    now=at,
                )
                session.flush()
                # Taken, so out of the queue: its timeline holds the specialty and two
                # instants (a closed one's holds three, in the same 256-byte bucket).
                service.take_next(
                    session=session,
                    principal=practitioner,
                    now=at + timedelta(minutes=5),
                    settings=None,  # a benchmark: nobody is emailed
                )
    return patients[0], patients[1], practitioner


def _as_before(runtime: Runtime, patient: Principal) -> None:
    """Rewrite ``patient``'s rows as older versions stored them: specialty and instants
    in plaintext, no timeline (benchmark data only: nothing is shown)."""
    with runtime.sessions.begin() as session:
        unsafe_unaudited(session, "the list benchmark rewrites its own rows as before 0008")
        for consultation in session.scalars(
            select(Consultation).where(Consultation.patient_id == patient.patient_id)
        ):
            timeline = consultation.timeline or {}
            consultation.specialty = timeline["specialty"]
            consultation.created_at = consultation.updated_at = consultation.opened_at
            consultation.legacy_taken_at = consultation.taken_at
            consultation.timeline = None


def _listing(runtime: Runtime, principal: Principal) -> Case:
    actor = Actor(role=principal.role.value, account_id=principal.account_id)

    def run() -> None:
        now = datetime.now(UTC)
        with unit_of_work(runtime, actor) as session:
            statement = service.list_consultations(principal=principal, now=now)
            rows = list(session.scalars(statement.limit(LISTED)).all())
            assert len(rows) == LISTED
            for row in rows:
                views.summary(
                    row, with_subject=principal.is_patient, specialty=principal.specialty
                ).model_dump_json()

    return Case(f"{principal.role.value}", run, ops=1)


def run(*, postgres: bool = False, repeat: int = 7) -> ListsResult:
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-lists-") as folder:
        if postgres:
            with _postgres_database() as url:
                return _run(Path(folder), url, "PostgreSQL", repeat)
        return _run(Path(folder), f"sqlite:///{folder}/bench.db", "SQLite", repeat)


def _run(folder: Path, url: str, backend: str, repeat: int) -> ListsResult:
    settings = _settings(folder / "data", url, None)
    _init(settings)
    runtime = Runtime.open(settings)
    try:
        after, before, practitioner = _seed(runtime, settings)
        _as_before(runtime, before)
        cases = [
            Case("patient, sealed (after)", _listing(runtime, after).run, 1),
            Case("patient, plaintext (before)", _listing(runtime, before).run, 1),
            Case("practitioner (opens nothing)", _listing(runtime, practitioner).run, 1),
        ]
        return ListsResult(backend, measure(cases, repeat=repeat))
    finally:
        runtime.close()


def report(results: list[ListsResult]) -> str:
    lines = [
        f"| database | list of {LISTED} | median ms | best ms |",
        "|---|---|---:|---:|",
    ]
    for result in results:
        for name, timing in result.timings.items():
            lines.append(
                f"| {result.backend} | {name} | {timing.median / 1e6:.2f} | "
                f"{timing.best / 1e6:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lists", description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions per case")
    args = parser.parse_args(argv)
    results = [run(repeat=args.repeat)]
    if args.postgres:
        results.append(run(postgres=True, repeat=args.repeat))
    print(f"Machine: {describe()}.\n")
    print(report(results))


if __name__ == "__main__":
    main()
