"""The chainer: units of work commit their events with no lock, one chainer at a time
links them into the chain. Against real databases and real processes: writers in two
app processes under load leave no gap and nothing unchained, a chainer killed in the
middle of a batch loses nothing, the lag is measured, and neither the guard, the
breach scope nor a patient's history waits for the chainer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, delete, func, insert, select, text

from hippocrate.audit import chainer
from hippocrate.audit.chainer import chain_pending, pending_count
from hippocrate.audit.models import AuditEvent, AuditHead, AuditPending
from hippocrate.audit.service import append, verify
from hippocrate.breach import scope as scopes
from hippocrate.breach import service
from hippocrate.breach.models import Incident
from hippocrate.db.engine import unsafe_unaudited_sessions
from hippocrate.db.migrate import upgrade
from hippocrate.identity.models import Role
from hippocrate.keyring.service import KEYRING
from hippocrate.vault import Vault
from tests.audit.helpers import event
from tests.breach.attacks import stolen_practitioner_session
from tests.breach.test_scope import honeytoken_of
from tests.conftest import Store, _fresh_postgres
from tests.guard.helpers import (
    app_processes,
    guard_of,
    guarded_api,
    patients_in_care,
    read_concurrently,
    sign_in,
    staff_member,
)
from tests.guard.test_redteam import postgres_store, reads_of  # noqa: F401 - a fixture
from tests.identity.helpers import login_as

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def stopped_chainer(monkeypatch: pytest.MonkeyPatch) -> None:
    """No chainer runs in this process: commits leave their events pending, as they
    do while a deployment's chainer is down or behind."""
    monkeypatch.setattr(chainer, "AFTER_COMMIT", [])


def chained(engine: Engine) -> tuple[int, int | None, int | None, int]:
    """The chain's count, lowest and highest sequence numbers, and the head's."""
    with engine.connect() as connection:
        count, lo, hi = connection.execute(
            select(func.count(), func.min(AuditEvent.seq), func.max(AuditEvent.seq))
        ).one()
        head = connection.execute(select(AuditHead.seq)).scalar_one()
    return int(count), lo, hi, int(head)


def intact(store: Store) -> bool:
    with store.sessions() as session:
        return verify(session=session, public_key=b"\0" * 32, checkpoint_files=[]).ok


def test_a_commit_leaves_its_events_pending_until_the_chainer_links_them(
    store: Store, stopped_chainer: None
) -> None:
    for start in (0, 10, 20):
        with store.sessions.begin() as session:
            append(session, [event(n, NOW) for n in range(start, start + 10)])
    assert chained(store.engine) == (0, None, None, 0)
    assert pending_count(store.engine) == (30, NOW)

    assert chain_pending(store.engine, limit=7) == 30  # five transactions
    assert chained(store.engine) == (30, 1, 30, 30)
    assert pending_count(store.engine) == (0, None)
    assert intact(store)
    with store.sessions() as session:  # in arrival order
        ids = session.scalars(select(AuditEvent.request_id).order_by(AuditEvent.seq)).all()
    assert ids == [f"req-{n}" for n in range(30)]


def test_without_a_chainer_thread_a_commit_chains_its_own_events(store: Store) -> None:
    with store.sessions.begin() as session:
        append(session, [event(n, NOW) for n in range(3)])
    assert chained(store.engine) == (3, 1, 3, 3)
    assert pending_count(store.engine) == (0, None)


def test_an_event_taken_out_of_the_chain_to_be_rechained_is_caught(
    store: Store, stopped_chainer: None
) -> None:
    """A thief who edits a chained event by moving it back to the pending table (so
    that the chainer would link the edited copy at the end) leaves a hole."""
    with store.sessions.begin() as session:
        append(session, [event(n, NOW) for n in range(12)])
    chain_pending(store.engine)
    with store.engine.begin() as connection:
        row = connection.execute(select(AuditEvent).where(AuditEvent.seq == 5)).one()
        connection.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
        moved = {name: getattr(row, name) for name in chainer.EVENT_COLUMNS}
        connection.execute(insert(AuditPending).values({**moved, "resources": []}))
    chain_pending(store.engine)
    with store.sessions() as session:
        found = verify(session=session, public_key=b"\0" * 32, checkpoint_files=[])
    assert not found.ok
    assert found.first_bad_seq == 5
    assert "a row was deleted" in found.problems[0]


def test_verify_names_events_the_chainer_left_behind(store: Store, stopped_chainer: None) -> None:
    with store.sessions.begin() as session:
        append(session, [event(n, NOW) for n in range(4)])
    with store.sessions() as session:
        recent = verify(
            session=session,
            public_key=b"\0" * 32,
            checkpoint_files=[],
            now=NOW + timedelta(seconds=2),
            max_gap=timedelta(minutes=6),
        )
        stale = verify(
            session=session,
            public_key=b"\0" * 32,
            checkpoint_files=[],
            now=NOW + timedelta(hours=1),
            max_gap=timedelta(minutes=6),
        )
    assert recent.ok
    assert recent.unchained == 4
    assert any("not chained yet" in line for line in recent.unproved)
    assert not stale.ok
    assert "the chainer stopped" in stale.problems[0]


# -- a chainer killed in the middle of its work -----------------------------------------

CHAIN_IN_A_PROCESS = """
import sys
from hippocrate.audit.chainer import chain_pending
from hippocrate.db.engine import make_engine, unsafe_unaudited_sessions
from hippocrate.keyring.service import KEYRING
from hippocrate.vault import Vault
print(chain_pending(make_engine(sys.argv[1]), limit=int(sys.argv[2])), flush=True)
"""


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid() AND datname = current_database()"
                )
            ).scalar_one()
        )


def _pending_events(engine: Engine, count: int, *, then: int) -> int:
    """A migrated database with ``count`` events committed and none chained (request
    ids ``req-0`` on); the id of the pending row at position ``then``."""
    upgrade(engine)
    with engine.begin() as connection:
        rows = [
            {
                name: value
                for name, value in vars(event(n, NOW)).items()
                if name in chainer.EVENT_COLUMNS
            }
            for n in range(count)
        ]
        for row in rows:
            row["resources"], row["categories"] = list(row["resources"]), ["health"]
        connection.execute(insert(AuditPending), rows)
        return int(
            connection.execute(
                select(AuditPending.id).order_by(AuditPending.id).offset(then).limit(1)
            ).scalar_one()
        )


def test_a_chainer_killed_in_the_middle_of_a_batch_loses_nothing(
    postgres_database: str, vault: Vault, stopped_chainer: None
) -> None:
    """The chainer runs in a process of its own; its third batch waits on a pending row
    this test holds locked (after its insert into the chain, before its delete); it is
    killed there. Its first two batches are chained, the third is as it was, and the
    next run completes the chain."""
    engine = _fresh_postgres(postgres_database)
    third = _pending_events(engine, 2500, then=2100)

    holder = engine.connect()
    holder.begin()
    holder.execute(select(AuditPending.id).where(AuditPending.id == third).with_for_update())
    process = subprocess.Popen(
        [sys.executable, "-c", CHAIN_IN_A_PROCESS, postgres_database, "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(engine):
            assert process.poll() is None, process.stdout.read() if process.stdout else b""
            assert time.monotonic() < deadline, "the chainer never reached the locked row"
            time.sleep(0.05)
        assert chained(engine)[0] == 2000  # two batches committed, the third waits
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    finally:
        holder.rollback()
        holder.close()

    # The killed chainer's server side rolls back once it can go on and finds its client gone.
    deadline = time.monotonic() + 30
    while _waiting_on_a_lock(engine) or pending_count(engine)[0] != 500:
        assert time.monotonic() < deadline, pending_count(engine)
        time.sleep(0.05)
    assert chained(engine) == (2000, 1, 2000, 2000)

    assert chain_pending(engine) == 500
    assert chained(engine) == (2500, 1, 2500, 2500)
    assert pending_count(engine) == (0, None)
    sessions = unsafe_unaudited_sessions(engine, vault, KEYRING, why="a test of the chainer")
    with sessions() as session:
        found = verify(session=session, public_key=b"\0" * 32, checkpoint_files=[])
        order = session.scalars(select(AuditEvent.request_id).order_by(AuditEvent.seq)).all()
    assert found.ok, found.problems
    assert order == [f"req-{n}" for n in range(2500)]
    engine.dispose()


def test_a_pending_event_removed_under_the_chainer_rolls_its_batch_back(
    postgres_database: str, vault: Vault, stopped_chainer: None
) -> None:
    """Whoever can write the database deletes a pending event while the chainer holds
    it in a batch (read, not yet moved): the batch would give that event's sequence
    number to nothing. The chainer refuses it whole (the chain keeps its two batches
    before, the head does not move) and the next round chains what is left without a
    hole: the chain verifies, the deleted event is simply not in it."""
    engine = _fresh_postgres(postgres_database)
    taken = _pending_events(engine, 2500, then=2100)

    holder = engine.connect()
    holder.begin()
    holder.execute(select(AuditPending.id).where(AuditPending.id == taken).with_for_update())
    raised: list[BaseException] = []

    def chain() -> None:
        try:
            chain_pending(engine, limit=1000)
        except chainer.ChainerConflict as exc:
            raised.append(exc)

    thread = threading.Thread(target=chain)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(engine):
            assert thread.is_alive(), "the chainer ended before reaching the locked row"
            assert time.monotonic() < deadline, "the chainer never reached the locked row"
            time.sleep(0.05)
        holder.execute(delete(AuditPending).where(AuditPending.id == taken))
        holder.commit()
    finally:
        holder.close()
    thread.join(30)
    assert not thread.is_alive()

    [conflict] = raised
    assert "1 pending event(s) vanished" in str(conflict)
    assert chained(engine) == (2000, 1, 2000, 2000)  # the third batch rolled back whole
    assert pending_count(engine)[0] == 499
    assert chain_pending(engine) == 499
    assert chained(engine) == (2499, 1, 2499, 2499)
    sessions = unsafe_unaudited_sessions(engine, vault, KEYRING, why="a test of the chainer")
    with sessions() as session:
        found = verify(session=session, public_key=b"\0" * 32, checkpoint_files=[])
        order = session.scalars(select(AuditEvent.request_id).order_by(AuditEvent.seq)).all()
    assert found.ok, found.problems
    assert order == [f"req-{n}" for n in range(2500) if n != 2100]
    engine.dispose()


# -- nothing waits for the chainer -------------------------------------------------------


def test_the_guard_and_the_scope_do_not_wait_for_the_chainer(
    store: Store, tmp_path: Path, stopped_chainer: None
) -> None:
    """A stolen session reads patients while no chainer runs: the guard contains it
    within its bound all the same, and the scope computed at once names exactly its
    victims from events that are all still pending; once chained, the scope is the
    same and the chain verifies."""
    with guarded_api(store, tmp_path) as api:
        theft = stolen_practitioner_session(api, 30)
        assert 0 < len(theft.victims) <= 20
        guard = guard_of(api)
        assert chained(store.engine)[0] == 0  # nothing of it is chained
        assert pending_count(store.engine)[0] > 0

        def scope() -> set[uuid.UUID]:
            with api.store.sessions() as session:
                (incident,) = session.scalars(select(Incident)).all()
                principals = [p.id for p in service.details_of(incident).nature.principals]
                computed = scopes.of_principals(
                    session,
                    principals=principals,
                    since=theft.stolen_at,
                    until=None,
                    now=api.clock.now,
                    is_honeytoken=honeytoken_of(api.store, guard),
                )
            return set(computed.patients)

        assert scope() == theft.victims
        chain_pending(store.engine)
        assert pending_count(store.engine)[0] == 0
        assert scope() == theft.victims
        assert intact(store)


def test_a_patients_history_shows_what_is_not_chained_yet(
    store: Store, tmp_path: Path, stopped_chainer: None
) -> None:
    with guarded_api(store, tmp_path) as api:
        theft = stolen_practitioner_session(api, 30)
        assert chained(store.engine)[0] == 0
        case = next(c for c in theft.cases if c.patient_id in theft.victims)
        patient = api.relogin(case.patient)  # the evening before's session has expired
        answer = api.client.get("/api/v1/patients/me/access-log", headers=patient.headers)
        assert answer.status_code == 200, answer.text
        roles = [entry["role"] for entry in answer.json()["items"]]
        assert "practitioner" in roles
        assert "patient" in roles


# -- writers in two app processes under load ---------------------------------------------


@pytest.mark.slow  # two app processes to start
def test_two_app_processes_under_load_leave_no_gap_and_nothing_unchained(
    postgres_store: Store,  # noqa: F811 - the fixture imported above
    key_file: Path,
    tmp_path: Path,
) -> None:
    """Two server processes, each with its chainer (the default), read by eight threads
    at once: every answered request's events are in the chain, which has no gap, ends
    at the head and verifies; the lag between commit and chain, sampled throughout, is
    bounded."""
    store = postgres_store
    start = datetime.now(UTC) - timedelta(hours=8)
    with guarded_api(store, tmp_path, start=start) as api:
        doctors = [staff_member(api, Role.PRACTITIONER) for _ in range(2)]
        cases = [patients_in_care(api, sign_in(api, d), 8, minutes_between=5) for d in doctors]
        settings = api.settings
    before = chained(store.engine)[0]
    environment = {
        "HIPPOCRATE_DATA_DIR": str(settings.data_dir),
        "HIPPOCRATE_DATABASE_URL": store.url,
        "HIPPOCRATE_KEY_PROVIDER": "file",
        "HIPPOCRATE_KEY_FILE": str(key_file),
        "HIPPOCRATE_AUDIT_CHAIN_SECONDS": "0.5",
    }
    lags: list[float] = []
    loading = threading.Event()

    def sample_lag() -> None:
        while loading.is_set():
            _, oldest = pending_count(store.engine)
            lags.append(0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds())
            time.sleep(0.01)

    with app_processes(2, environment, tmp_path, timeout=120) as servers:
        headers = []
        for doctor, server in zip(doctors, servers, strict=True):
            with httpx.Client(base_url=server.url) as client:
                headers.append(login_as(client, doctor))
        loading.set()
        probe = threading.Thread(target=sample_lag)
        probe.start()
        try:
            answered = []
            for k, (theirs, signed) in enumerate(zip(cases, headers, strict=True)):
                paths = [path for case in theirs for path in reads_of(case)] * 4
                # Each practitioner's reads spread over both processes.
                urls = [servers[k].url, servers[1 - k].url]
                answered += read_concurrently(urls, signed, paths, workers=4)
        finally:
            loading.clear()
            probe.join()
        statuses = {timed.response.status_code for timed in answered}
        assert statuses == {200}, statuses
        deadline = time.monotonic() + 10
        while pending_count(store.engine)[0]:
            assert time.monotonic() < deadline, "events left unchained"
            time.sleep(0.05)

    count, lo, hi, head = chained(store.engine)
    assert (lo, hi, head) == (1, count, count)  # contiguous, ending at the head
    assert count - before >= len(answered)
    with store.sessions() as session:
        requests = set(
            session.scalars(
                select(AuditEvent.request_id).where(AuditEvent.actor_role == "practitioner")
            )
        )
    # Every read of a record or a consultation is in the chain (a thread with no message
    # yet opens nothing sealed).
    reading = [t for t in answered if not t.response.url.path.endswith("/messages")]
    assert {timed.response.headers["X-Request-ID"] for timed in reading} <= requests
    assert intact(store)
    assert lags
    assert max(lags) < 5.0, max(lags)
