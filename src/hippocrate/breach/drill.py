"""``hippocrate drill``: the MédecinDirect scenario against a fresh demo deployment.

What it does, in a folder of its own (nothing of a real deployment is touched):

1. makes a deployment as ``init`` and ``seed`` do (SQLite, the key file *outside* the
   data folder, as docs/DEPLOYMENT.md recommends), with synthetic patients,
   practitioners, staff, consultations, files and honeytokens;
2. **the database copy**: reads the data folder as a thief who copied it would (the
   SQLite file with its journal, the blob files) and counts how many known plaintext
   values of the patients it holds (names, emails, phones, NIR, birth dates, addresses,
   consultation subjects, messages): the goal is 0; and says what the plaintext
   metadata still links;
3. **stolen sessions** through the real HTTP API, each attacking as fast as it can: a
   practitioner's, a patient's, an administrator's, a support account's: the patients
   whose data came back, the health data among it, the requests answered and the time
   until the guard contained it;
4. **the response**: the incident the containments opened, its scope computed from the
   trail, its ENISA severity and Art. 34 decision, the dossier, every notice queued;
   and the same for the database copy (a scope of the copy, its decision); with the
   time from detection (the first containment) to a complete dossier and all notices
   queued.

The report is text and JSON. Its figures are measured on the machine that runs it.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import uvicorn
from sqlalchemy import func, select

from hippocrate.app import create_app
from hippocrate.audit.recorder import Actor
from hippocrate.blobs import FileBlobStore
from hippocrate.breach import dossier, jobs, notices, service
from hippocrate.breach import scope as scopes
from hippocrate.breach.models import Incident, Notice
from hippocrate.breach.schemas import AssessmentIn
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.consultations.models import Consultation, Message
from hippocrate.db.engine import make_engine, unsafe_unaudited_sessions
from hippocrate.db.migrate import upgrade
from hippocrate.demo.seed import seed_demo
from hippocrate.guard.people import DemoAccount
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.models import Patient
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.vault.documents import create_document_signing_key
from hippocrate.vault.factory import initialise_provider
from hippocrate.work import unit_of_work

DPO_ACTOR_ROLE = "dpo"
APPROVER = Actor(role="operator", account_id=uuid.UUID(int=0xA99), purpose=Purpose.OPERATIONS)
REASON = "Patient injoignable, urgence signalée par le SAMU"

#: How the drill assesses a breach of confidentiality by stolen sessions: health data
#: read through the platform, with names beside it, by an intruder.
STOLEN_SESSIONS = {
    "category": {"value": 4, "justification": "consultation content: health data"},
    "identification": {"value": "maximum", "justification": "names and contact beside it"},
    "confidentiality": {"value": "severe", "justification": "read by an intruder"},
    "integrity": {"value": "none", "justification": "nothing altered"},
    "availability": {"value": "none", "justification": "the service stayed up"},
    "malicious": {"value": True, "justification": "stolen sessions"},
    "unintelligible": {"value": False, "justification": "the platform decrypted for them"},
}


@dataclass
class Attack:
    """What one stolen principal got."""

    role: str
    requests: int = 0
    answered: int = 0  # 2xx answers before the first refusal
    patients_exposed: int = 0  # distinct patients whose record or consultation came back
    health_exposed: int = 0  # of which a consultation's content came back
    others_records: int = 0  # patients not the principal's own (a patient's session)
    seconds_to_containment: float | None = None
    contained: bool = False
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DrillReport:
    patients: int
    copy: dict[str, Any] = field(default_factory=dict)
    attacks: list[Attack] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict)
    copy_response: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": "hippocrate.drill.v1",
            "patients": self.patients,
            "database_copy": self.copy,
            "attacks": [a.as_dict() for a in self.attacks],
            "response": self.response,
            "copy_response": self.copy_response,
        }

    def text(self) -> str:
        c = self.copy
        lines = [
            f"Drill on a demo of {self.patients} patients.",
            "",
            "1. A copy of the data folder (database and files):",
            f"   known plaintext values of patients found: {c['found']} of {c['searched']}"
            " searched (goal 0)",
            f"   what the plaintext metadata still links: {c['links']}",
            "",
            "2. Stolen sessions, each reading as fast as it can:",
        ]
        for a in self.attacks:
            contained = (
                f"contained after {a.seconds_to_containment:.2f} s ({a.reason})"
                if a.contained and a.seconds_to_containment is not None
                else "not contained"
            )
            lines.append(
                f"   {a.role:<13} {a.patients_exposed:>3} patients exposed, "
                f"{a.health_exposed:>3} with health data, {a.others_records} records of "
                f"others; {a.answered} answers of {a.requests} requests; {contained}"
            )
        r = self.response
        lines += [
            "",
            "3. The response:",
            f"   incident {r['reference']}: scope {r['scope_patients']} patients "
            f"(+{r['scope_honeytokens']} honeytokens, {r['honeytoken_containments']} "
            "honeytoken containments)",
            f"   severity {r['severity']['score']} ({r['severity']['band']}); notify the CNIL: "
            f"{_yes(r['notify_authority'])}; tell the people: {_yes(r['notify_people'])}",
            f"   dossier complete ({len(r['missing'])} items missing) and "
            f"{r['notices_queued']} notices queued in {r['seconds_detection_to_notices']:.2f} s "
            "of the platform's work on the incident the containment opened",
            f"   the database copy: severity {self.copy_response['severity']['band']}, tell the "
            f"people: {_yes(self.copy_response['notify_people'])} "
            f"(exception {self.copy_response['exemption'] or 'none'}: "
            f"{self.copy_response['keys']})",
        ]
        return "\n".join(lines) + "\n"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


#: The drill's steps after seeding: what it knows, the copy, four attacks, two responses.
STEPS_AFTER_SEED = 8


def run(
    workdir: Path,
    *,
    patients: int = 60,
    seed: int = 2025,
    progress: Callable[[int], None] | None = None,
    start: Callable[[int], None] | None = None,
) -> DrillReport:
    """The whole drill in ``workdir`` (made; must not exist). ``start`` is told how many
    steps there are (each account seeded, then :data:`STEPS_AFTER_SEED`), ``progress``
    each one done. Interrupted, ``workdir`` holds a deployment of no use: a new drill
    makes a new one."""
    workdir.mkdir(parents=True, exist_ok=False, mode=0o700)
    port = _free_port()
    settings = Settings(
        data_dir=workdir / "var",
        database_url=None,
        key_provider=KeyProviderKind.FILE,
        key_file=workdir / "keys" / "root.key",
        document_signing_key_file=workdir / "keys" / "document-signing.key",
        outbox_dir=workdir / "outbox",
        smtp_host=None,
        redis_url=None,
        public_url=f"http://127.0.0.1:{port}",
        audit_checkpoint_seconds=0,
    )
    settings.data_dir.mkdir(mode=0o700)
    initialise_provider(settings).close()
    create_document_signing_key(settings.resolved_document_signing_key_file)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings)
    try:
        return _drill(
            runtime,
            port,
            patients=patients,
            seed=seed,
            step=progress or (lambda _: None),
            start=start,
        )
    finally:
        runtime.close()


def _drill(
    runtime: Runtime,
    port: int,
    *,
    patients: int,
    seed: int,
    step: Callable[[int], None],
    start: Callable[[int], None] | None,
) -> DrillReport:
    settings = runtime.settings

    def seeding(accounts: int) -> None:
        if start is not None:
            start(accounts + STEPS_AFTER_SEED)

    assert runtime.guard is not None
    with unit_of_work(runtime, Actor(role="operator", purpose=Purpose.DEMO_SEED)) as session:
        seeded = seed_demo(
            session=session,
            settings=settings,
            blobs=FileBlobStore(settings.blob_dir),
            count=patients,
            seed=seed,
            now=datetime.now(UTC),
            guard=runtime.guard,
            honeytokens=max(1, patients // 20),
            start=seeding,
            progress=step,
        )
    report = DrillReport(patients=patients)
    known = unsafe_known_values(runtime)
    step(1)
    report.copy = _copy(settings, known)
    step(1)

    server = _Server(runtime, port)
    server.start()
    client = _Client(port)
    try:
        started = datetime.now(UTC)
        by_role = {a.role.value: a for a in seeded.staff}
        busiest = max(seeded.practitioners, key=lambda p: len(p.consultations))
        thieves = [busiest, seeded.patients[0], by_role["admin"], by_role["support"]]
        attacks: list[Callable[[], Attack]] = [
            lambda: _practitioner(client, busiest, known),
            lambda: _patient(client, seeded.patients[0]),
            lambda: _admin(client, by_role["admin"], known),
            lambda: _support(client, by_role["support"], known),
        ]
        report.attacks = []
        for play in attacks:
            report.attacks.append(play())
            step(1)
        for attack, thief in zip(report.attacks, thieves, strict=True):
            # The guard's own words for why (the answer said only "Account locked").
            attack.reason = runtime.guard.state.contained(thief.account_id) or attack.reason
    finally:
        client.connection.close()
        server.stop()
    report.response = _respond(runtime, since=started)
    step(1)
    report.copy_response = _respond_to_copy(runtime)
    step(1)
    return report


# -- 1. the copy -------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """What the drill knows of its synthetic patients, to look for it."""

    values: list[str]
    subjects: dict[uuid.UUID, str]  # consultation id -> subject (health data)
    patient_of: dict[uuid.UUID, uuid.UUID]  # consultation id -> patient id
    patients: list[uuid.UUID]


def unsafe_known_values(runtime: Runtime) -> Known:
    """The plaintext of every synthetic patient, read without the trail or the policy:
    unsafe, and allowed here only because it is the drill's own synthetic data, made a
    moment ago in a deployment of its own, read to know what a thief would search the
    copy for (the drill never runs against a real deployment's database)."""
    sessions = unsafe_unaudited_sessions(
        runtime.sessions.engine,
        runtime.sessions.vault,
        KEYRING,
        why="the drill reads its own synthetic patients to search the copy for them",
    )
    values: set[str] = set()
    subjects: dict[uuid.UUID, str] = {}
    owner: dict[uuid.UUID, uuid.UUID] = {}
    with sessions() as session:
        ids = list(session.scalars(select(Patient.id)))
        for patient in session.scalars(select(Patient)):
            born = patient.birth_date
            address = patient.address or {}
            values.update(
                v
                for v in (
                    patient.given_names,
                    patient.family_name,
                    patient.email,
                    patient.phone,
                    patient.nir,
                    born.isoformat() if born else None,
                    born.strftime("%d/%m/%Y") if born else None,
                    address.get("line1"),
                )
                if v and len(v) >= 6
            )
        for consultation in session.scalars(select(Consultation)):
            if consultation.subject:
                subjects[consultation.id] = consultation.subject
                values.add(consultation.subject)
            owner[consultation.id] = consultation.patient_id
        for message in session.scalars(select(Message).limit(500)):
            if message.body and len(message.body) >= 12:
                values.add(message.body[:40])
    return Known(sorted(values), subjects, owner, ids)


def _copy(settings: Settings, known: Known) -> dict[str, Any]:
    """Search every file of the data folder, as copied, for every known value."""
    blobs: list[bytes] = []
    for path in sorted(settings.data_dir.rglob("*")):
        if path.is_file():
            blobs.append(path.read_bytes())
    found = [v for v in known.values if any(v.encode("utf-8") in b for b in blobs)]
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            consultations = connection.execute(
                select(func.count()).select_from(Consultation.__table__)
            ).scalar_one()
            with_cases = connection.execute(
                select(func.count(func.distinct(Consultation.patient_id)))
            ).scalar_one()
    finally:
        engine.dispose()
    return {
        "searched": len(known.values),
        "found": len(found),
        "examples_found": found[:5],
        "files": len(blobs),
        "bytes": sum(len(b) for b in blobs),
        "links": (
            f"{consultations} consultations tie random patient ids to a specialty, a "
            f"status and times ({with_cases} patients have some); no name, address, NIR "
            "or content, and the lengths of sealed values are padded to buckets"
        ),
    }


# -- 2. the attacks ----------------------------------------------------------------------


def _practitioner(client: _Client, doctor: DemoAccount, known: Known) -> Attack:
    attack = Attack(role="practitioner")
    token = client.sign_in(doctor)
    start = time.perf_counter()
    status, listing = client.get("/api/v1/consultations?limit=100", token)
    attack.requests += 1
    items = listing.get("items", []) if status == 200 else []
    exposed: set[str] = set()
    health: set[str] = set()
    for item in items:
        status, body = client.get(f"/api/v1/consultations/{item['id']}", token)
        attack.requests += 1
        if status != 200:
            _contained(attack, start, body)
            return _counted(attack, exposed, health)
        attack.answered += 1
        patient = str(body.get("patient_id"))
        exposed.add(patient)
        if body.get("subject") and body["subject"] in known.subjects.values():
            health.add(patient)
        status, body = client.get(f"/api/v1/patients/{patient}", token)
        attack.requests += 1
        if status != 200:
            _contained(attack, start, body)
            return _counted(attack, exposed, health)
        attack.answered += 1
    return _counted(attack, exposed, health)


def _patient(client: _Client, patient: DemoAccount) -> Attack:
    """A patient's session walks guessed record ids (a thief does not know others' ids)."""
    attack = Attack(role="patient")
    token = client.sign_in(patient)
    start = time.perf_counter()
    for _ in range(200):
        guess = uuid.uuid4()
        status, body = client.get(f"/api/v1/patients/{guess}", token)
        attack.requests += 1
        if status == 200:
            attack.others_records += 1
        elif status in (401, 403):
            _contained(attack, start, body)
            break
    return attack


def _admin(client: _Client, admin: DemoAccount, known: Known) -> Attack:
    attack = Attack(role="admin")
    token = client.sign_in(admin)
    start = time.perf_counter()
    exposed: set[str] = set()
    for patient in known.patients:
        status, body = client.post(
            "/api/v1/admin/break-glass",
            token,
            {"patient_id": str(patient), "reason": REASON, "minutes": 30},
        )
        attack.requests += 1
        if status not in (200, 201):
            if status in (401, 403):
                _contained(attack, start, body)
                break
            continue
        status, body = client.get(f"/api/v1/patients/{patient}", token)
        attack.requests += 1
        if status != 200:
            _contained(attack, start, body)
            break
        attack.answered += 1
        exposed.add(str(patient))
    return _counted(attack, exposed, set())


def _support(client: _Client, support: DemoAccount, known: Known) -> Attack:
    attack = Attack(role="support")
    token = client.sign_in(support)
    start = time.perf_counter()
    exposed: set[str] = set()
    for patient in known.patients[:50]:
        status, body = client.get(f"/api/v1/patients/{patient}", token)
        attack.requests += 1
        if status == 200:
            exposed.add(str(patient))
        elif status == 401 or body.get("title") in ("Account locked", "Compte verrouillé"):
            _contained(attack, start, body)
            break
    return _counted(attack, exposed, set())


def _contained(attack: Attack, start: float, body: dict[str, Any]) -> None:
    attack.contained = True
    attack.seconds_to_containment = round(time.perf_counter() - start, 3)
    attack.reason = str(body.get("title", ""))


def _counted(attack: Attack, exposed: set[str], health: set[str]) -> Attack:
    attack.patients_exposed = len(exposed)
    attack.health_exposed = len(health)
    return attack


# -- 3. the response ---------------------------------------------------------------------


def _respond(runtime: Runtime, *, since: datetime) -> dict[str, Any]:
    """The DPO's response to the guard's incident, timed from the first containment."""
    dpo = Actor(role=DPO_ACTOR_ROLE, account_id=uuid.uuid4())
    policy = service.policy_of(runtime.settings)
    provider = runtime.sessions.vault.provider
    assert runtime.guard is not None
    guard = runtime.guard
    begun = time.perf_counter()
    with unit_of_work(runtime, dpo) as session:
        incident = session.scalars(select(Incident).order_by(Incident.opened_at)).first()
        if incident is None:
            raise RuntimeError("no incident was opened: the guard contained nobody")
        named = [p.id for p in service.details_of(incident).nature.principals]
        computed = scopes.sign(
            scopes.of_principals(
                session,
                principals=named,
                since=since,
                until=None,
                now=datetime.now(UTC),
                is_honeytoken=lambda p: guard.is_honeytoken(session, p),
            ),
            provider,
        )
        kept = service.record_scope(
            session=session,
            actor=dpo,
            incident=incident,
            version=incident.version,
            scope=computed,
            now=datetime.now(UTC),
        )
        service.amend(
            session=session,
            actor=dpo,
            incident=incident,
            version=incident.version,
            patch={
                "nature": {"cause": "stolen sessions (drill)", "malicious": True},
                "contacts": {"dpo": {"name": "DPO (drill)", "email": "dpo@example.org"}},
                "consequences": "targeted phishing and extortion quoting health details",
                "measures": {"taken": "accounts contained, sessions ended"},
            },
            now=datetime.now(UTC),
        )
        decision = service.assess(
            session=session,
            actor=dpo,
            incident=incident,
            version=incident.version,
            assessment=AssessmentIn.model_validate(STOLEN_SESSIONS),
            now=datetime.now(UTC),
            policy=policy,
        )
        document = dossier.build(
            incident,
            clock=service.clock_of(session, incident, datetime.now(UTC), policy),
            decision=decision,
            scope=kept.document,
            notifications=[],
            phase="initial",
            now=datetime.now(UTC),
        )
        dossier.pdf(document)
        notices.request(
            session=session,
            actor=dpo,
            incident=incident,
            scope=kept,
            required=decision.notify_people,
            voluntary_reason=None if decision.notify_people else "drill",
            now=datetime.now(UTC),
        )
        # The second pair of eyes: an operator at the command line approves.
        notices.approve(session=session, actor=APPROVER, incident=incident, now=datetime.now(UTC))
        reference, incident_id = incident.reference, incident.id
    queue = jobs.open_queue(runtime)
    jobs.enqueue_prepare(queue, incident_id)
    task = queue.dequeue()
    if task is not None:
        queue.execute(task)  # the prepare task: every notice created and queued
    with unit_of_work(runtime, dpo) as session:
        queued = session.scalar(
            select(func.count()).select_from(Notice).where(Notice.incident_id == incident_id)
        )
    elapsed = time.perf_counter() - begun
    return {
        "reference": reference,
        "scope_patients": len(computed.patients),
        "scope_honeytokens": computed.honeytokens,
        "honeytoken_containments": computed.honeytoken_containments,
        "severity": decision.severity.as_dict(),
        "notify_authority": decision.notify_authority,
        "notify_people": decision.notify_people,
        "missing": document["missing"],
        "notices_queued": int(queued or 0),
        "seconds_detection_to_notices": round(elapsed, 3),
    }


def _respond_to_copy(runtime: Runtime) -> dict[str, Any]:
    """The same for a copy of the data folder: its scope and decision."""
    from hippocrate.breach.api import key_location

    assert runtime.guard is not None
    guard = runtime.guard
    location = key_location(runtime.settings)
    with unit_of_work(runtime, Actor(role=DPO_ACTOR_ROLE, account_id=uuid.uuid4())) as session:
        computed = scopes.of_database_copy(
            session,
            now=datetime.now(UTC),
            is_honeytoken=lambda p: guard.is_honeytoken(session, p),
            key_location=location,
        )
    assessment = dict(STOLEN_SESSIONS)
    assessment["unintelligible"] = {
        "value": not location["could_have_left"],
        "justification": location["why"],
    }
    decision = service.decision_of(
        AssessmentIn.model_validate(assessment), service.policy_of(runtime.settings)
    )
    return {
        "patients": len(computed.patients),
        "sealed_fields": len(computed.protection["sealed_fields"]),
        "keys": location["why"],
        "severity": decision.severity.as_dict(),
        "notify_authority": decision.notify_authority,
        "notify_people": decision.notify_people,
        "exemption": decision.exemption.value if decision.exemption else None,
    }


# -- the server and its client -----------------------------------------------------------


class _Server:
    def __init__(self, runtime: Runtime, port: int) -> None:
        config = uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the drill's server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class _Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(
        self, method: str, path: str, token: str | None, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "Accept-Language": "en"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {}
        return response.status, parsed if isinstance(parsed, dict) else {"items": parsed}

    def get(self, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
        return self.request("GET", path, token)

    def post(
        self, path: str, token: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return self.request("POST", path, token, body)

    def sign_in(self, account: DemoAccount) -> str:
        status, body = self.post(
            "/api/v1/auth/login", None, {"email": account.email, "password": account.password}
        )
        if status != 200:
            raise RuntimeError(f"the drill could not sign in as {account.role.value}: {status}")
        token = str(body["token"])
        if body.get("mfa_required"):
            assert account.totp_secret is not None
            code = pyotp.TOTP(account.totp_secret).now()
            status, body = self.post("/api/v1/auth/mfa", token, {"code": code})
            if status != 200:
                raise RuntimeError(f"the drill's second factor was refused: {status}")
            token = str(body["token"])
        return token


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_json(report: DrillReport, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(report.as_dict(), handle, indent=2, ensure_ascii=False)
