"""Building blocks of the consultations and patients API tests: accounts of every role
signed in through a real session token, an app on a migrated store with a clock the
test moves, and genuine PDF, JPEG and PNG files.

Accounts are inserted directly and sessions created with
``create_session(mfa_passed=True)``, which is fast and lets a test sign in again at any
time of its clock; the token is then used exactly as a client would, in
``Authorization: Bearer``. ``test_flow.py`` also runs the flow with accounts signed in
the real way (tests/identity/helpers.py: password, then TOTP).
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hippocrate.access.principal import Principal
from hippocrate.api.deps import now as now_dependency
from hippocrate.app import create_app
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.consultations.files import check_file
from hippocrate.demo import files
from hippocrate.identity.models import Account, AccountStatus, Practitioner, Role
from hippocrate.identity.sessions import create_session
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.service import create_patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from tests.conftest import Store

with warnings.catch_warnings():
    # Starlette asks for httpx2 under its TestClient; the project pins httpx.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PROBLEM_JSON = "application/problem+json"

QUESTIONNAIRE = {
    "symptoms_duration": "4_to_7_days",
    "current_treatments": "aucun",
    "allergies": "aucune",
    "pregnancy": "not_applicable",
}


def settings_for(tmp_path: Path, store: Store, **changes: Any) -> Settings:
    """Settings naming everything, so no HIPPOCRATE_ variable of the caller leaks in."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "database_url": store.url,
        "key_provider": KeyProviderKind.FILE,
        "key_file": None,
        "smtp_host": None,
        "redis_url": None,
        "attachment_max_bytes": 256 * 1024,
        "attachments_per_message": 3,
    }
    values.update(changes)
    return Settings(**values)


class Clock:
    """The time the app believes it is; tests move it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Actor:
    """An account signed in: its ids, its token, and what it was created with."""

    role: Role
    account_id: uuid.UUID
    token: str
    patient_id: uuid.UUID | None = None
    practitioner_id: uuid.UUID | None = None
    specialty: str | None = None
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def principal(self) -> Principal:
        return Principal(
            account_id=self.account_id,
            role=self.role,
            patient_id=self.patient_id,
            practitioner_id=self.practitioner_id,
            specialty=self.specialty,
        )


def _session_token(store: Store, settings: Settings, account_id: uuid.UUID, now: datetime) -> str:
    with store.sessions.begin() as session:
        account = session.get(Account, account_id)
        assert account is not None
        token, _ = create_session(
            session=session, settings=settings, account=account, mfa_passed=True, now=now
        )
    return token


def new_patient(
    store: Store,
    settings: Settings,
    *,
    seed: int,
    now: datetime = T0,
    data: PatientCreate | None = None,
) -> Actor:
    data = data or SyntheticPatients(seed=seed).patient(with_nir=True)
    with store.sessions.begin() as session:
        patient = create_patient(session=session, data=data)
        account = Account(
            role=Role.PATIENT,
            owner_id=patient.id,
            patient_id=patient.id,
            status=AccountStatus.ACTIVE,
        )
        account.email = data.email
        session.add(account)
        session.flush()
        patient_id, account_id = patient.id, account.id
    token = _session_token(store, settings, account_id, now)
    return Actor(Role.PATIENT, account_id, token, patient_id=patient_id, data=data)


def new_staff(
    store: Store,
    settings: Settings,
    role: Role,
    *,
    specialty: str = "general-practice",
    names: tuple[str, str] = ("Claire", "Dubreuil"),
    rpps: str = "10101010101",
    now: datetime = T0,
) -> Actor:
    with store.sessions.begin() as session:
        owner = uuid.uuid4()
        account = Account(role=role, owner_id=owner, status=AccountStatus.ACTIVE)
        account.email = f"{role.value}.{owner.hex[:8]}@hippocrate.example.fr"
        session.add(account)
        session.flush()
        practitioner_id = None
        if role is Role.PRACTITIONER:
            practitioner = Practitioner(account_id=account.id, owner_id=owner, specialty=specialty)
            practitioner.given_names, practitioner.family_name = names
            practitioner.rpps = rpps
            session.add(practitioner)
            session.flush()
            practitioner_id = practitioner.id
        account_id = account.id
    token = _session_token(store, settings, account_id, now)
    return Actor(
        role,
        account_id,
        token,
        practitioner_id=practitioner_id,
        specialty=specialty if role is Role.PRACTITIONER else None,
        extra={"names": names, "rpps": rpps},
    )


@dataclass
class Api:
    """The app on a migrated store, a client, the clock and the blob folder."""

    client: TestClient
    store: Store
    settings: Settings
    clock: Clock
    _seed: int = 100

    @property
    def blob_dir(self) -> Path:
        return self.settings.blob_dir

    def patient(self, data: PatientCreate | None = None) -> Actor:
        self._seed += 1
        return new_patient(
            self.store, self.settings, seed=self._seed, now=self.clock.now, data=data
        )

    def practitioner(self, specialty: str = "general-practice", **kwargs: Any) -> Actor:
        return new_staff(
            self.store,
            self.settings,
            Role.PRACTITIONER,
            specialty=specialty,
            now=self.clock.now,
            **kwargs,
        )

    def staff(self, role: Role) -> Actor:
        return new_staff(self.store, self.settings, role, now=self.clock.now)

    def relogin(self, actor: Actor) -> Actor:
        """A fresh session at the clock's time (staff sessions idle out in minutes)."""
        actor.token = _session_token(self.store, self.settings, actor.account_id, self.clock.now)
        return actor

    # -- the calls every test makes ----------------------------------------------------

    def open(
        self,
        patient: Actor,
        *,
        subject: str = "Plaques rouges sur les avant-bras",
        description: str = "Depuis une semaine, elles démangent le soir.",
        specialty: str = "general-practice",
        files: list[tuple[str, bytes, str]] | None = None,
        questionnaire: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "specialty": specialty,
            "subject": subject,
            "description": description,
            "questionnaire": questionnaire or QUESTIONNAIRE,
        }
        if files:
            response = self.client.post(
                "/api/v1/consultations",
                headers=patient.headers,
                data={"consultation": json.dumps(body)},
                files=[("files", f) for f in files],
            )
        else:
            response = self.client.post("/api/v1/consultations", headers=patient.headers, json=body)
        assert response.status_code == 201, response.text
        opened: dict[str, Any] = response.json()
        return opened

    def take(self, practitioner: Actor) -> dict[str, Any]:
        response = self.client.post("/api/v1/queue/take", headers=practitioner.headers)
        assert response.status_code == 200, response.text
        taken: dict[str, Any] = response.json()
        return taken

    def write(
        self,
        actor: Actor,
        consultation_id: str,
        body: str,
        files: list[tuple[str, bytes, str]] | None = None,
    ) -> Any:
        if files:
            return self.client.post(
                f"/api/v1/consultations/{consultation_id}/messages",
                headers=actor.headers,
                data={"body": body},
                files=[("files", f) for f in files],
            )
        return self.client.post(
            f"/api/v1/consultations/{consultation_id}/messages",
            headers=actor.headers,
            json={"body": body},
        )

    def hand_back(
        self, practitioner: Actor, consultation_id: str, reason: str = "Hors de mon champ"
    ) -> Any:
        return self.client.post(
            f"/api/v1/consultations/{consultation_id}/hand-back",
            headers=practitioner.headers,
            json={"reason": reason},
        )

    def close(self, practitioner: Actor, consultation_id: str, **body: Any) -> Any:
        payload = {"report": "Eczéma de contact probable.", "acts": ["TCG"], **body}
        return self.client.post(
            f"/api/v1/consultations/{consultation_id}/close",
            headers=practitioner.headers,
            json=payload,
        )


@contextmanager
def running_api(store: Store, tmp_path: Path, **changes: Any) -> Iterator[Api]:
    settings = settings_for(tmp_path, store, **changes)
    clock = Clock()
    app = create_app(runtime=Runtime(settings, store.sessions))
    app.dependency_overrides[now_dependency] = clock
    with TestClient(app) as client:
        yield Api(client, store, settings, clock)


def blob_files(root: Path) -> list[Path]:
    """Every file under the blob folder (temporary ones included)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


# -- genuine files: the demo's generators, one implementation -------------------------

png_bytes = files.png_bytes
jpeg_bytes = files.jpeg_bytes
pdf_bytes = files.pdf_bytes


def stored_as(filename: str, content: bytes) -> bytes:
    """What the platform keeps of an upload, and hands back: an image re-encoded without
    its metadata, a PDF as sent."""
    return check_file(
        position=1, filename=filename, declared_type=None, content=content, max_bytes=len(content)
    ).content
