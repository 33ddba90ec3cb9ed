"""Building blocks of the red-team tests: the app with a guard that runs on the test's
clock, worlds of patients in a practitioner's care (built through the API, the way the
platform builds them), the sentinels that say whose data a response carries, the
containment as the database, the guard state and the audit trail see it, and real app
processes (uvicorn) for the tests that need several.

The world is built on a simulated clock moving faster than a real day, so that the
practitioner who builds it is never contained; the attacks then run as fast as the
machine allows, and their timings are wall-clock times (``time.perf_counter``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from hippocrate.api.deps import now as now_dependency
from hippocrate.app import create_app
from hippocrate.audit.models import AuditEvent, AuditPending
from hippocrate.audit.service import Verification, verify, write_checkpoint
from hippocrate.config import Settings
from hippocrate.consultations.models import CareRelationship, Consultation, ConsultationStatus
from hippocrate.guard.service import Guard
from hippocrate.guard.state import GuardState, LocalState
from hippocrate.identity.models import Account, AccountStatus, AuthSession, Role
from hippocrate.patients.models import Patient
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.consultations.helpers import (
    QUESTIONNAIRE,
    T0,
    Api,
    Clock,
    pdf_bytes,
    png_bytes,
    settings_for,
)
from tests.consultations.helpers import Actor as Signed
from tests.identity.helpers import TestUser, login_as, make_user

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

REFUSED = {401, 403}


# -- the app, its guard on the test's clock --------------------------------------------


@contextmanager
def guarded_api(
    store: Store,
    tmp_path: Path,
    *,
    start: datetime = T0,
    guard_clock: bool = True,
    **changes: Any,
) -> Iterator[Api]:
    """The app on ``store``. Its clock (``hippocrate.api.deps.now``) is the test's, and
    so is its guard's (``Guard(now=...)``), so the guard's sliding window moves with the
    simulated day. ``guard_clock=False`` leaves the guard on real time and the state the
    settings name (``HIPPOCRATE_REDIS_URL``), exactly as a deployed app opens it."""
    settings = settings_for(tmp_path, store, **changes)
    clock = Clock(start)
    guard = None
    if guard_clock:

        def guard_time() -> float:
            return clock.now.timestamp()

        guard = Guard(settings, store.sessions.vault, LocalState(), now=guard_time)
    app = create_app(runtime=Runtime(settings, store.sessions, guard=guard))
    app.dependency_overrides[now_dependency] = clock
    with TestClient(app) as client:
        yield Api(client, store, settings, clock)


def guard_of(api: Api) -> Guard:
    guard: Guard | None = api.client.app.state.runtime.guard  # type: ignore[attr-defined]
    assert guard is not None
    return guard


def bearer_token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def staff_member(api: Api, role: Role, **kwargs: Any) -> TestUser:
    """A staff account with a real password and TOTP (made at the app's clock)."""
    return make_user(api.store.sessions, role, now=api.clock.now, **kwargs)


def sign_in(api: Api, user: TestUser, *, specialty: str = "general-practice") -> Signed:
    """Sign ``user`` in through the API (password, then TOTP at the app's clock)."""
    token = bearer_token(login_as(api.client, user, now=api.clock.now))
    return Signed(
        user.role,
        user.account_id,
        token,
        patient_id=user.patient_id,
        practitioner_id=user.practitioner_id,
        specialty=specialty if user.role is Role.PRACTITIONER else None,
    )


# -- worlds: patients in care, and what of theirs a response may carry -----------------


@dataclass
class Case:
    """One patient and their consultation, with the strings that only their data holds
    (email, phone, words of the subject, description, messages and files)."""

    patient: Signed
    consultation_id: str
    sentinels: set[str] = field(default_factory=set)
    message_ids: list[str] = field(default_factory=list)
    attachment_ids: list[str] = field(default_factory=list)

    @property
    def patient_id(self) -> uuid.UUID:
        assert self.patient.patient_id is not None
        return self.patient.patient_id


def marker(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def patient_sentinels(data: Any) -> set[str]:
    return {data.email, data.phone, *([data.nir] if getattr(data, "nir", None) else [])}


def open_case(api: Api, *, specialty: str = "general-practice", with_file: bool = False) -> Case:
    """A new patient (own session) opens a consultation whose every text is unique."""
    patient = api.patient()
    subject, description, report = marker("motif"), marker("details"), marker("bilan")
    files = [("analyse.pdf", pdf_bytes(report), "application/pdf")] if with_file else None
    opened = api.open(
        patient,
        subject=f"Consultation {subject}",
        description=f"Depuis hier {description}",
        specialty=specialty,
        files=files,
    )
    case = Case(patient, opened["id"], {subject, description, *patient_sentinels(patient.data)})
    if with_file:
        case.sentinels.add(report)
    return case


def patients_in_care(
    api: Api,
    practitioner: Signed,
    count: int,
    *,
    minutes_between: float = 4,
    exchange: bool = False,
) -> list[Case]:
    """``count`` patients open a consultation and ``practitioner`` takes each from the
    queue, one every ``minutes_between`` simulated minutes (the guard's window sees at
    most 60 / minutes_between of them an hour). With ``exchange``, the practitioner
    also writes a message with a file in each."""
    cases = []
    for _ in range(count):
        case = open_case(api, specialty=practitioner.specialty or "general-practice")
        api.clock.advance(minutes=minutes_between)
        taken = api.take(practitioner)
        assert taken["id"] == case.consultation_id
        if exchange:
            words = marker("conseil")
            picture = marker("schema")
            sent = api.write(
                practitioner,
                case.consultation_id,
                f"Voici un schéma {words}",
                files=[("schema.png", png_bytes(picture), "image/png")],
            )
            assert sent.status_code == 201, sent.text
            case.sentinels |= {words, picture}
            case.message_ids.append(sent.json()["id"])
            case.attachment_ids.extend(a["id"] for a in sent.json()["attachments"])
        cases.append(case)
    return cases


def exposed(bodies: Iterable[str | bytes], cases: Iterable[Case]) -> set[uuid.UUID]:
    """The patients any of whose sentinels appears in any of ``bodies``."""
    texts = [b.decode("utf-8", "replace") if isinstance(b, bytes) else b for b in bodies]
    found = set()
    for case in cases:
        if any(s in text for s in case.sentinels for text in texts):
            found.add(case.patient_id)
    return found


def honeytoken_sentinels(store: Store, patient_id: uuid.UUID) -> set[str]:
    """What only a honeytoken's record holds (email, phone, NIR), read straight from the
    store, without a guard. Names are left out: another patient may share them."""
    with store.sessions() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        return {s for s in (patient.email, patient.phone, patient.nir) if s}


def consultation_in_care(
    store: Store, *, patient_id: uuid.UUID, practitioner: Signed, at: datetime, subject: str
) -> uuid.UUID:
    """A consultation of ``patient_id`` already taken by ``practitioner``, written
    straight into the store (for patients without an account: honeytokens)."""
    assert practitioner.practitioner_id is not None
    with store.sessions.begin() as session:
        consultation = Consultation(
            patient_id=patient_id,
            specialty=practitioner.specialty or "general-practice",
            status=ConsultationStatus.IN_PROGRESS,
            practitioner_id=practitioner.practitioner_id,
            taken_at=at,
            created_at=at,
            updated_at=at,
        )
        consultation.subject = subject
        consultation.description = subject
        consultation.questionnaire = dict(QUESTIONNAIRE)
        session.add(consultation)
        session.flush()
        session.add(
            CareRelationship(
                practitioner_id=practitioner.practitioner_id,
                patient_id=patient_id,
                consultation_id=consultation.id,
                started_at=at,
            )
        )
        return consultation.id


# -- containment as the platform records it --------------------------------------------


@dataclass(frozen=True)
class Containment:
    marked: bool  # the guard state says contained
    disabled: bool  # the account is disabled with reason "contained"
    live_sessions: int
    events: int  # guard:principal:contained events for the account

    @property
    def effective(self) -> bool:
        return self.marked and self.disabled and self.live_sessions == 0 and self.events == 1


def marked_in(state: GuardState) -> Callable[[uuid.UUID], bool]:
    """Whether ``state`` (the guard's, in process or in Redis) says an account is contained."""

    def marked(account: uuid.UUID) -> bool:
        return state.contained(account) is not None

    return marked


def containment_of(
    store: Store, account_id: uuid.UUID, is_marked: Callable[[uuid.UUID], bool]
) -> Containment:
    with store.sessions() as session:
        account = session.get(Account, account_id)
        assert account is not None
        live = session.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(AuthSession.account_id == account_id, AuthSession.ended_at.is_(None))
        )
        # Chained or not yet: the containment is recorded either way.
        events = sum(
            session.scalar(
                select(func.count())
                .select_from(table)
                .where(
                    table.action == "guard:principal:contained",
                    table.actor_account_id == account_id,
                    table.outcome == "contained",
                )
            )
            or 0
            for table in (AuditEvent, AuditPending)
        )
        return Containment(
            marked=is_marked(account_id),
            disabled=account.status is AccountStatus.DISABLED
            and account.disabled_reason == "contained",
            live_sessions=int(live or 0),
            events=int(events or 0),
        )


def wait_for_containment(
    store: Store,
    account_id: uuid.UUID,
    is_marked: Callable[[uuid.UUID], bool],
    *,
    timeout: float = 5.0,
) -> float:
    """Poll until the containment is effective; the ``perf_counter`` time it was seen."""
    deadline = time.perf_counter() + timeout
    while True:
        seen = containment_of(store, account_id, is_marked)
        now = time.perf_counter()
        if seen.effective:
            return now
        if now > deadline:
            raise AssertionError(f"containment not effective after {timeout} s: {seen}")
        time.sleep(0.002)


def audit_verified(store: Store, settings: Settings) -> Verification:
    """``hippocrate audit verify``: a signed checkpoint of the head, then the check."""
    provider = store.sessions.vault.provider
    with store.sessions() as session:
        write_checkpoint(
            session=session,
            provider=provider,
            files=settings.checkpoint_files,
            now=datetime.now(UTC),
        )
        return verify(
            session=session,
            public_key=provider.signing_public_key(),
            checkpoint_files=settings.checkpoint_files,
        )


# -- real app processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class AppProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _start(env: dict[str, str], cwd: Path, name: str) -> AppProcess:
    port = free_port()
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # the test's own interpreter and uvicorn
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "hippocrate.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return AppProcess(f"http://127.0.0.1:{port}", process, log)


def _wait_ready(app: AppProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise AssertionError(f"app process exited: {app.log.read_text()[-2000:]}")
        try:
            if httpx.get(app.url + "/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"app process not ready after {timeout} s: {app.log.read_text()[-2000:]}")


@contextmanager
def app_processes(
    count: int, environment: dict[str, str], cwd: Path, *, timeout: float = 30
) -> Iterator[list[AppProcess]]:
    """``count`` uvicorn processes of ``create_app`` configured only by ``environment``
    (the caller's HIPPOCRATE_ variables are not passed on), each on a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    # Each commit chains its own events, so that the trail reads whole as soon as a
    # server has answered, unless the caller runs the chainer (``environment``).
    env["HIPPOCRATE_AUDIT_CHAIN_SECONDS"] = "0"
    env.update(environment)
    with ExitStack() as stack:
        started = []
        for n in range(count):
            app = _start(env, cwd, f"app{n}")
            started.append(app)
            stack.callback(_stop, app)
        for app in started:
            _wait_ready(app, timeout)
        yield started


@dataclass(frozen=True)
class Timed:
    sent: float  # perf_counter before the request
    received: float  # and after its response
    response: httpx.Response


def read_concurrently(
    urls: list[str], headers: dict[str, str], paths: list[str], *, workers: int
) -> list[Timed]:
    """``paths`` read by ``workers`` threads at once, spread over the apps at ``urls``
    (worker k sends every k-th path to app k mod len(urls))."""

    def work(k: int) -> list[Timed]:
        done = []
        with httpx.Client(base_url=urls[k % len(urls)], timeout=10) as client:
            for path in paths[k::workers]:
                sent = time.perf_counter()
                response = client.get(path, headers=headers)
                done.append(Timed(sent, time.perf_counter(), response))
        return done

    with ThreadPoolExecutor(workers) as pool:
        return [r for batch in pool.map(work, range(workers)) for r in batch]


def _stop(app: AppProcess) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait()
