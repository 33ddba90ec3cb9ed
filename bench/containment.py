"""The red-team scenario as a measurement: a stolen practitioner session reads the
patients in that practitioner's care one after another, as fast as it can. Reports how
many patients' data came back and how long containment took."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from hippocrate.app import create_app
from hippocrate.config import Settings
from hippocrate.consultations.models import CareRelationship, Consultation, ConsultationStatus
from hippocrate.db.engine import make_engine, unsafe_unaudited_sessions
from hippocrate.db.migrate import upgrade
from hippocrate.identity.models import Account, AccountStatus
from hippocrate.identity.service import create_practitioner
from hippocrate.identity.sessions import create_session
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.service import create_patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.vault import Vault
from hippocrate.vault.providers.file import FileKeyProvider


@dataclass
class ContainmentResult:
    patients_in_care: int
    patients_exposed: int
    requests_answered: int
    attack_seconds: float
    containment_ms: float
    contained: bool


def run(*, patients: int = 40) -> ContainmentResult:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = Settings(data_dir=root, database_url=f"sqlite:///{root / 'bench.db'}")
        vault = Vault(FileKeyProvider.create(root / "root.key"))
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        sessions = unsafe_unaudited_sessions(
            engine, vault, KEYRING, why="benchmarks of the store and the trail themselves"
        )
        now = datetime.now(UTC)
        generator = SyntheticPatients(seed=7)
        with sessions.begin() as session:
            account, practitioner = create_practitioner(
                session=session,
                email="dr.vol@example.fr",
                rpps="99700000016",
                specialty="general-practice",
                given_names="Claire",
                family_name="Volée",
                now=now,
            )
            account.status = AccountStatus.ACTIVE
            ids = []
            for _ in range(patients):
                patient = create_patient(session=session, data=generator.patient())
                consultation = Consultation(
                    patient_id=patient.id,
                    specialty="general-practice",
                    status=ConsultationStatus.IN_PROGRESS,
                    practitioner_id=practitioner.id,
                    taken_at=now,
                )
                consultation.subject = "Suivi"
                session.add(consultation)
                session.flush()
                session.add(
                    CareRelationship(
                        practitioner_id=practitioner.id,
                        patient_id=patient.id,
                        consultation_id=consultation.id,
                        started_at=now,
                    )
                )
                ids.append(patient.id)
            # The stolen session: a live token, second factor already passed.
            token, _ = create_session(
                session=session, settings=settings, account=account, mfa_passed=True, now=now
            )
            account_id = account.id
        runtime = Runtime(settings, sessions)
        exposed, answered, containment_ms = 0, 0, float("nan")
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(runtime=runtime)) as client:
            started = time.perf_counter()
            for patient_id in ids:
                sent = time.perf_counter()
                response = client.get(f"/api/v1/patients/{patient_id}", headers=headers)
                if response.status_code == 200:
                    exposed += 1
                    answered += 1
                    continue
                # The refusal comes back once containment is complete.
                containment_ms = (time.perf_counter() - sent) * 1000
                break
            attack = time.perf_counter() - started
        with sessions() as session:
            account_row = session.get(Account, account_id)
            contained = account_row is not None and account_row.status is AccountStatus.DISABLED
        engine.dispose()
        return ContainmentResult(patients, exposed, answered, attack, containment_ms, contained)


def report(result: ContainmentResult) -> str:
    return "\n".join(
        [
            "## Containment (red-team scenario)",
            "",
            "A stolen practitioner session reads, one after another and as fast as it can, "
            f"the {result.patients_in_care} patients in that practitioner's care "
            "(SQLite, one process, guard state in the database: the embedded default).",
            "",
            "| Figure | Value |",
            "|---|--:|",
            f"| patients whose data came back | {result.patients_exposed} |",
            f"| requests answered before the refusal | {result.requests_answered} |",
            f"| time from the first request to the refusal | {result.attack_seconds:.2f} s |",
            "| time from sending the over-threshold request to containment complete "
            f"(account disabled, sessions ended, event chained) | {result.containment_ms:.0f} ms |",
            f"| account disabled afterwards | {'yes' if result.contained else 'no'} |",
            "",
        ]
    )
