"""The audit trail detects every kind of tampering, on SQLite and PostgreSQL, and names
the first bad sequence number."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update

from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.audit.service import PendingEvent, append, verify, write_checkpoint
from tests.conftest import Store

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def event(n: int) -> PendingEvent:
    return PendingEvent(
        action="consultation:message:read",
        actor_role="practitioner",
        outcome="allowed",
        at=T0 + timedelta(seconds=n),
        actor_account_id=uuid.UUID(int=1),
        patient_id=uuid.UUID(int=100 + n % 7),
        resources=(f"message:{uuid.UUID(int=1000 + n)}",),
        categories=("health",),
        purpose="care",
        request_id=f"req-{n}",
    )


def fill(store: Store, count: int, checkpoint_every: int, files: list[Path]) -> None:
    provider = store.sessions.vault.provider
    for start in range(0, count, checkpoint_every):
        with store.sessions.begin() as session:
            append(session, [event(n) for n in range(start, min(start + checkpoint_every, count))])
        with store.sessions() as session:
            write_checkpoint(session=session, provider=provider, files=files, now=T0)


def check(store: Store, files: list[Path]):  # type: ignore[no-untyped-def]
    with store.sessions() as session:
        return verify(
            session=session,
            public_key=store.sessions.vault.provider.signing_public_key(),
            checkpoint_files=files,
        )


@pytest.fixture
def trail(store: Store, tmp_path: Path) -> tuple[Store, list[Path]]:
    files = [tmp_path / "checkpoints.jsonl", tmp_path / "mirror" / "checkpoints.jsonl"]
    fill(store, 50, 10, files)
    return store, files


def test_an_untouched_trail_verifies(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    report = check(store, files)
    assert (report.ok, report.events, report.checkpoints) == (True, 50, 5)


def sql(store: Store, statement: object) -> None:
    with store.sessions.begin() as session:
        session.execute(statement)  # type: ignore[call-overload]


def test_a_changed_row_is_named(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    sql(store, update(AuditEvent).where(AuditEvent.seq == 23).values(outcome="refused"))
    report = check(store, files)
    assert report.first_bad_seq == 23
    assert "altered" in report.problems[0]


def test_a_deleted_row_is_named(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    sql(store, delete(AuditEvent).where(AuditEvent.seq == 17))
    report = check(store, files)
    assert report.first_bad_seq == 17
    assert "deleted" in report.problems[0]


def test_an_inserted_row_is_named(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    # Make room at 31 by shifting the later rows up, then insert a forged event there.
    with store.sessions.begin() as session:
        for seq in range(50, 30, -1):
            session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1))
        forged = AuditEvent(
            seq=31, at=T0, actor_account_id=None, actor_role="admin", action="x:y:z",
            patient_id=None, resources=[], categories=[], purpose=None, outcome="allowed",
            request_id=None, prev_hash=bytes(32), hash=bytes(32),
        )  # fmt: skip
        session.add(forged)
    report = check(store, files)
    assert report.first_bad_seq == 31
    assert "inserted or reordered" in report.problems[0]


def test_reordered_rows_are_named(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    with store.sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 40).values(seq=-40))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 41).values(seq=40))
        session.execute(update(AuditEvent).where(AuditEvent.seq == -40).values(seq=41))
    report = check(store, files)
    assert report.first_bad_seq == 40


def test_a_truncated_tail_is_named(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    # The intruder removes the last 15 events and fixes the head to match.
    with store.sessions.begin() as session:
        survivor = session.get(AuditEvent, 35)
        assert survivor is not None
        session.execute(delete(AuditEvent).where(AuditEvent.seq > 35))
        session.execute(update(AuditHead).values(seq=35, hash=survivor.hash))
    report = check(store, files)
    assert report.first_bad_seq == 36
    assert "tail was removed" in " ".join(report.problems)


def test_a_tail_removed_without_fixing_the_head_is_named(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    sql(store, delete(AuditEvent).where(AuditEvent.seq > 45))
    assert check(store, files).first_bad_seq == 46


def test_rewritten_history_is_caught_by_the_checkpoints(trail: tuple[Store, list[Path]]) -> None:
    """Whoever holds the database can recompute every hash; not the signed checkpoints."""
    from hippocrate.audit.chain import FIELDS, GENESIS, link

    store, files = trail
    with store.sessions.begin() as session:
        rows = session.query(AuditEvent).order_by(AuditEvent.seq).all()
        previous = GENESIS
        for row in rows:
            if row.seq == 12:
                row.outcome = "refused"  # the change the intruder wants
            row.prev_hash = previous
            row.hash = link(previous, {name: getattr(row, name) for name in FIELDS})
            previous = row.hash
        session.execute(update(AuditHead).values(hash=previous))
    report = check(store, files)
    assert not report.ok
    assert report.first_bad_seq == 11  # between the checkpoints at 10 and 20
    assert "history was rewritten" in report.problems[0]


def test_rolled_back_to_an_old_backup(trail: tuple[Store, list[Path]], tmp_path: Path) -> None:
    store, files = trail
    # Restoring a backup taken at sequence 20 loses 30 events that the checkpoints saw.
    with store.sessions.begin() as session:
        kept = session.get(AuditEvent, 20)
        assert kept is not None
        session.execute(delete(AuditEvent).where(AuditEvent.seq > 20))
        session.execute(update(AuditHead).values(seq=20, hash=kept.hash))
    assert check(store, files).first_bad_seq == 21


def test_a_forged_checkpoint_is_refused(trail: tuple[Store, list[Path]]) -> None:
    store, files = trail
    lines = files[0].read_text().splitlines()
    lines[2] = lines[2].replace('"seq":30', '"seq":31')
    files[0].write_text("\n".join(lines) + "\n")
    report = check(store, files[:1])
    assert "signature does not verify" in " ".join(report.problems)


def test_deleting_the_checkpoint_file_is_covered_by_the_mirror(
    trail: tuple[Store, list[Path]],
) -> None:
    store, files = trail
    files[0].unlink()
    with store.sessions.begin() as session:
        kept = session.get(AuditEvent, 30)
        assert kept is not None
        session.execute(delete(AuditEvent).where(AuditEvent.seq > 30))
        session.execute(update(AuditHead).values(seq=30, hash=kept.hash))
    report = check(store, files)
    assert report.first_bad_seq == 31
    assert "the tail was removed" in report.first_problem  # type: ignore[operator]
    assert any("is missing while the trail holds 30 events" in p for p in report.problems)


def test_concurrent_appends_form_one_chain(store: Store, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for n in range(10):
                with store.sessions.begin() as session:
                    append(session, [event(offset + n), event(offset + n + 500)])
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = check(store, [])
    assert (report.ok, report.events) == (True, 80)


def test_the_head_row_exists_after_migration(store: Store) -> None:
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT seq FROM audit_head WHERE id = 1")).scalar() == 0
