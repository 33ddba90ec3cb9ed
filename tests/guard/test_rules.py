"""The guard's rules at the store level: the check runs before any decryption, so a
contained reader gets nothing past the threshold. Both state stores: in process, and a
real Redis server shared by several guards (as by several app processes)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select

from hippocrate.audit.recorder import Actor, attach
from hippocrate.config import Settings
from hippocrate.guard.errors import Contained
from hippocrate.guard.honeytokens import plant
from hippocrate.guard.models import WindowRead
from hippocrate.guard.service import Guard
from hippocrate.guard.state import (
    DatabaseState,
    GuardState,
    GuardUnavailable,
    LocalState,
    RedisState,
)
from hippocrate.patients.models import Patient
from hippocrate.vault import Vault
from tests.conftest import IN_CI, Store
from tests.keyring.test_rotation import make_patients

REDIS_URL = os.environ.get("HIPPOCRATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"no Redis at {REDIS_URL} (CI is set): {exc}", pytrace=False)
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"test:{uuid.uuid4().hex}:"
    yield REDIS_URL + "#" + prefix
    for key in client.scan_iter(f"hippocrate:guard:{prefix}*"):
        client.delete(key)
    client.close()


def make_state(kind: str, redis_url: str | None) -> GuardState:
    if kind == "local":
        return LocalState()
    assert redis_url is not None
    url, prefix = redis_url.split("#")
    return RedisState(url, prefix=f"hippocrate:guard:{prefix}")


@pytest.fixture(params=["local", "redis"])
def state_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def read_all(store: Store, guard: Guard, actor: Actor, ids: list[uuid.UUID]) -> list[str]:
    """Read each patient's name in turn, as fast as possible; stop when refused."""
    names = []
    with store.sessions() as session:
        attach(session, actor, check=lambda a, p, _r: guard.check_read(session, a, p))
        for patient_id in ids:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            try:
                names.append(patient.family_name or "")
            except Contained:
                break
    return names


def test_breadth_contains_at_the_21st_patient(
    sqlite_store: Store, state_kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if state_kind == "redis" else None
    settings = Settings(guard_breadth_practitioner=20)
    guard = Guard(settings, sqlite_store.sessions.vault, make_state(state_kind, url))
    ids = list(make_patients(sqlite_store, 30))
    thief = Actor(role="practitioner", account_id=uuid.uuid4())

    names = read_all(sqlite_store, guard, thief, ids)

    assert len(names) == 20
    assert guard.state.contained(thief.account_id) is not None  # type: ignore[arg-type]
    # From then on, nothing at all, not even a patient already read.
    assert read_all(sqlite_store, guard, thief, ids[:1]) == []
    # Another practitioner is not affected.
    colleague = Actor(role="practitioner", account_id=uuid.uuid4())
    assert len(read_all(sqlite_store, guard, colleague, ids[:5])) == 5


def test_two_guards_sharing_redis_contain_together(sqlite_store: Store, redis_url: str) -> None:
    """The attack spread over two app processes: the counter is shared."""
    settings = Settings(guard_breadth_practitioner=20)
    first = Guard(settings, sqlite_store.sessions.vault, make_state("redis", redis_url))
    second = Guard(settings, sqlite_store.sessions.vault, make_state("redis", redis_url))
    ids = list(make_patients(sqlite_store, 30))
    thief = Actor(role="practitioner", account_id=uuid.uuid4())
    read = 0
    for index, patient_id in enumerate(ids):
        guard = first if index % 2 == 0 else second
        read += len(read_all(sqlite_store, guard, thief, [patient_id]))
    assert read == 20


def test_one_honeytoken_read_contains(sqlite_store: Store) -> None:
    guard = Guard(Settings(), sqlite_store.sessions.vault, LocalState())
    real = list(make_patients(sqlite_store, 3))
    with sqlite_store.sessions.begin() as session:
        plant(session=session, guard=guard, count=2, seed=99)
    with sqlite_store.sessions() as session:
        honey = [
            p.id for p in session.query(Patient).all() if p.id not in real
        ]  # the test knows; the database does not say
    reader = Actor(role="practitioner", account_id=uuid.uuid4())
    assert len(read_all(sqlite_store, guard, reader, real)) == 3
    assert read_all(sqlite_store, guard, reader, honey[:1]) == []
    assert guard.state.contained(reader.account_id) == "honeytoken"  # type: ignore[arg-type]


def test_enumeration_contains_after_the_threshold(vault: Vault) -> None:
    guard = Guard(Settings(guard_enumeration_limit=10), vault, LocalState())
    prober = Actor(role="patient", account_id=uuid.uuid4())
    for _ in range(10):
        guard.note_refusal(prober)
    with pytest.raises(Contained):
        guard.note_refusal(prober)


def test_unreachable_redis_fails_closed(sqlite_store: Store) -> None:
    state = RedisState("redis://127.0.0.1:1/0")
    guard = Guard(Settings(), sqlite_store.sessions.vault, state)
    ids = list(make_patients(sqlite_store, 1))
    reader = Actor(role="practitioner", account_id=uuid.uuid4())
    with sqlite_store.sessions() as session:
        attach(session, reader, check=lambda a, p, _r: guard.check_read(session, a, p))
        patient = session.get(Patient, ids[0])
        assert patient is not None
        with pytest.raises(GuardUnavailable, match="unreachable"):
            _ = patient.family_name


@pytest.mark.parametrize("kind", ["local", "database"])
def test_a_sliding_window_forgets_old_reads(kind: str, store: Store) -> None:
    state = LocalState() if kind == "local" else DatabaseState(store.sessions)
    account = uuid.uuid4()
    for n in range(20):
        state.distinct_patients(account, uuid.uuid4(), now=float(n), window=100)
    assert state.distinct_patients(account, uuid.uuid4(), now=150.0, window=100) == 1


def test_the_database_state_counts_distinct_patients_per_window(store: Store) -> None:
    """Two windows at once, a patient read again counted once, old rows pruned."""
    state = DatabaseState(store.sessions)
    account, other = uuid.uuid4(), uuid.uuid4()
    patients = [uuid.uuid4() for _ in range(5)]
    windows = [("reads", 100.0), ("reads-day", 1000.0)]
    for n, patient in enumerate([*patients, patients[0], patients[1]]):
        _, counts = state.observe(account, patient, now=float(n), windows=windows)
    assert counts == [5, 5]
    state.observe(other, patients[0], now=7.0, windows=windows)  # another account's own
    _, counts = state.observe(account, uuid.uuid4(), now=500.0, windows=windows)
    assert counts == [1, 6]  # the hour forgot them, the day did not
    for n in range(DatabaseState.PRUNE_EVERY):  # enough checks to prune once
        state.observe(account, patients[0], now=2000.0 + n, windows=windows)
    with store.sessions() as session:
        left = session.scalars(
            select(WindowRead.patient_id).where(WindowRead.account_id == account)
        )
        assert set(left) == {patients[0]}


def test_a_thief_pacing_under_the_hourly_limit_is_stopped_by_the_daily_one(
    sqlite_store: Store,
) -> None:
    """20 new patients an hour never trips the hourly rule; the daily cap (40) does."""
    now = [0.0]
    settings = Settings(guard_breadth_practitioner=20, guard_daily_practitioner=40)
    guard = Guard(settings, sqlite_store.sessions.vault, LocalState(), now=lambda: now[0])
    ids = list(make_patients(sqlite_store, 45))
    thief = Actor(role="practitioner", account_id=uuid.uuid4())
    read = []
    for hour, batch in enumerate((ids[:20], ids[20:40], ids[40:])):
        now[0] = hour * 3700.0  # a little over an hour apart
        read += read_all(sqlite_store, guard, thief, batch)
    assert len(read) == 40
    assert "a day" in (guard.state.contained(thief.account_id) or "")  # type: ignore[arg-type]
