"""SQLite's one write lock is taken at a unit of work's commit, not by its reads.

Python's ``sqlite3`` opens a transaction just before the first INSERT, UPDATE or DELETE,
and that statement takes the database's write lock until the commit (``db.engine``). A
session that flushed its pending writes before each query (SQLAlchemy's autoflush) took
the lock at its first read after any change, the sign-in session's touch at the start
of every request among them, and held it through the whole request: every other writer
waited, and a second unit of work reading through the policy (the guard counts each
patient read, a write) waited for the first to commit. These tests hold two units of
work side by side on one SQLite file, with a connection of their own probing the lock.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from hippocrate.access.principal import Principal
from hippocrate.api.pagination import PageParams, fetch_page
from hippocrate.audit.models import AuditEvent
from hippocrate.audit.recorder import Actor, recorder_of
from hippocrate.consultations import service
from hippocrate.consultations.models import Message, month_of
from hippocrate.identity.models import AuthSession
from hippocrate.identity.sessions import principal_for, resolve
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.work import unit_of_work
from tests.conftest import Store
from tests.consultations.helpers import Api, running_api

WAIT = 10.0  # seconds; SQLite's own busy timeout is 30


def write_lock_free(path: Path) -> bool:
    """Whether no connection holds the database's write lock now: one of our own asks
    for it (``BEGIN IMMEDIATE``) without waiting, and gives it back."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    else:
        probe.execute("ROLLBACK")
        return True
    finally:
        probe.close()


def _consultation(api: Api) -> tuple[Api, uuid.UUID, Principal, Principal, str]:
    patient, doctor = api.patient(), api.practitioner()
    consultation_id = uuid.UUID(api.open(patient)["id"])
    api.take(doctor)
    for n in range(3):
        assert api.write(doctor, str(consultation_id), f"Réponse {n}").status_code == 201
    return api, consultation_id, patient.principal, doctor.principal, patient.token


def _events(store: Store, account_id: uuid.UUID, action: str) -> list[AuditEvent]:
    with store.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.actor_account_id == account_id, AuditEvent.action == action
                )
            ).all()
        )


def test_reads_through_the_policy_and_pending_writes_wait_for_no_one_until_commit(
    sqlite_store: Store, tmp_path: Path
) -> None:
    assert sqlite_store.path is not None
    with running_api(sqlite_store, tmp_path) as running:
        api, consultation_id, patient, doctor, token = _consultation(running)
    runtime = Runtime(api.settings, sqlite_store.sessions)
    now: datetime = api.clock.now

    # B, the patient's request: the sign-in session touched and a message written, both
    # pending, then reads through the policy of tables those writes do not touch.
    with unit_of_work(runtime, Actor(role="anonymous")) as b:
        resolved = resolve(session=b, settings=api.settings, token=token, now=now)
        principal = principal_for(session=b, resolved=resolved)
        recorder = recorder_of(b)
        assert recorder is not None
        recorder.actor = Actor("patient", patient.account_id, Purpose.SELF)
        consultation = service.get_consultation(
            session=b, principal=principal, consultation_id=consultation_id, now=now
        )
        message = Message(
            consultation_id=consultation_id,
            patient_id=consultation.patient_id,
            author_account_id=patient.account_id,
            number=100,
            created_at=month_of(now),
        )
        message.body = "Merci docteur, je prends rendez-vous."
        message.sent_at = now
        b.add(message)
        statement = service.list_consultations(principal=principal, now=now)
        listed, _ = fetch_page(b, statement, PageParams(limit=20, offset=0))
        assert [c.id for c in listed] == [consultation_id]
        assert b.dirty  # still pending...
        assert b.new
        assert write_lock_free(sqlite_store.path)  # ...and no lock taken for them

        # A, the practitioner's request beside it: reads the messages through the policy
        # (opening them: the guard writes its count) and holds the write lock until
        # told to commit.
        read, go, done = threading.Event(), threading.Event(), threading.Event()
        bodies: list[str] = []

        def practitioner_reads() -> None:
            actor = Actor("practitioner", doctor.account_id, Purpose.CARE)
            with unit_of_work(runtime, actor) as a:
                theirs = service.get_consultation(
                    session=a, principal=doctor, consultation_id=consultation_id, now=now
                )
                statement = service.messages_statement(
                    principal=doctor, consultation=theirs, now=now
                )
                bodies.extend(m.body or "" for m in a.scalars(statement).all())
                read.set()
                go.wait(WAIT)
            done.set()

        thread = threading.Thread(target=practitioner_reads)
        thread.start()
        try:
            assert read.wait(WAIT), "the practitioner's read waited for the patient's writes"
            assert bodies == ["Réponse 0", "Réponse 1", "Réponse 2"]
            assert not write_lock_free(sqlite_store.path)  # A's guard count holds it
            # B reads on through the policy while A holds the lock: nothing to wait for.
            again = service.get_consultation(
                session=b, principal=principal, consultation_id=consultation_id, now=now
            )
            assert again is consultation
            assert b.dirty
            assert b.new
        finally:
            go.set()
            thread.join(WAIT)
        assert done.is_set()
    # B's commit wrote what was pending, and its trail names the message it wrote.
    with sqlite_store.sessions() as session:
        assert session.get(Message, message.id) is not None
        touched = session.get(AuthSession, resolved.auth_session.id)
        assert touched is not None
        assert touched.last_seen_at == now
    written = _events(sqlite_store, patient.account_id, "consultation:message:write")
    assert [f"message:{message.id}"] in [e.resources for e in written]
    assert _events(sqlite_store, doctor.account_id, "consultation:message:read")


def test_a_value_sealed_at_commit_is_in_the_trail(store: Store, tmp_path: Path) -> None:
    """A sealed value changed last, with no query after it, is sealed by the commit's
    flush: the audit recorder, which writes its events as the commit starts, still
    hears of the write (it used to be sealed after the recorder had written them)."""
    with running_api(store, tmp_path) as running:
        patient = running.patient()
        consultation_id = uuid.UUID(running.open(patient)["id"])
        runtime = Runtime(running.settings, store.sessions)
        now = running.clock.now
    actor = Actor("patient", patient.account_id, Purpose.SELF, request_id="last-write")
    with unit_of_work(runtime, actor) as session:
        consultation = service.get_consultation(
            session=session,
            principal=patient.principal,
            consultation_id=consultation_id,
            now=now,
        )
        consultation.description = "Les plaques ont gagné les mains."
    written = [
        e
        for e in _events(store, patient.account_id, "consultation:record:write")
        if e.request_id == "last-write"
    ]
    assert [e.resources for e in written] == [[f"record:{consultation_id}"]]


def test_a_failed_writer_hands_its_turn_on(sqlite_store: Store, tmp_path: Path) -> None:
    """A unit of work that wrote and then failed gives up the write lock, and this
    process's turn with it: the next writer, in another thread, goes at once."""
    with running_api(sqlite_store, tmp_path) as running:
        api, _consultation_id, _patient, _doctor, token = _consultation(running)
    runtime = Runtime(api.settings, sqlite_store.sessions)

    def fails() -> None:
        try:
            with unit_of_work(runtime, Actor(role="anonymous")) as session:
                resolve(session=session, settings=api.settings, token=token, now=api.clock.now)
                session.flush()  # written: the lock and the turn are taken
                raise RuntimeError("the request fails after its first write")
        except RuntimeError:
            pass

    first = threading.Thread(target=fails)
    first.start()
    first.join(WAIT)
    assert sqlite_store.path is not None
    assert write_lock_free(sqlite_store.path)

    wrote = threading.Event()

    def writes() -> None:
        with unit_of_work(runtime, Actor(role="anonymous")) as session:
            resolve(session=session, settings=api.settings, token=token, now=api.clock.now)
        wrote.set()

    second = threading.Thread(target=writes)
    second.start()
    second.join(WAIT)
    assert wrote.is_set(), "the next writer waited for a turn nobody held"
