"""The fast verification (raw rows, orjson, stretches walked in parallel processes and
joined) gives the verdicts and messages of the walk in one piece, for every kind of
tampering, wherever it falls: inside a stretch, on a stretch's first or last row, over a
whole stretch. And rows that the fast path cannot take are judged by the reference."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text, update

from hippocrate.audit import verification
from hippocrate.audit.chain import FIELDS, GENESIS, link
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.audit.service import PendingEvent, append, verify
from hippocrate.audit.walk import split
from tests.audit.helpers import Deployment, assert_refused
from tests.audit.test_trail import T0, event, fill
from tests.conftest import Store

# 50 events in 12 stretches: 1-4, 5-8, 9-12, 13-16, 17-20, 21-25, 26-29, ...
PARALLEL = {"workers": 3, "min_stretch": 1}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    events: int
    first_bad_seq: int | None
    problems: tuple[str, ...]
    proved: tuple[str, ...]


def outcome(store: Store, files: list[Path], **options: Any) -> Outcome:
    with store.sessions() as session:
        report = verify(
            session=session,
            public_key=store.sessions.vault.provider.signing_public_key(),
            checkpoint_files=files,
            **options,
        )
    return Outcome(
        report.ok, report.events, report.first_bad_seq, tuple(report.problems), tuple(report.proved)
    )


@pytest.fixture
def trail(store: Store, tmp_path: Path) -> tuple[Store, list[Path]]:
    files = [tmp_path / "checkpoints.jsonl", tmp_path / "mirror" / "checkpoints.jsonl"]
    fill(store, 50, 10, files)
    return store, files


@pytest.fixture
def walked_in_parallel(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many stretches each parallel walk had (proves the processes ran)."""
    calls: list[int] = []
    original = verification.walk_in_parallel

    def spy(url: str, stretches: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(stretches))
        return original(url, stretches, *args, **kwargs)

    monkeypatch.setattr(verification, "walk_in_parallel", spy)
    return calls


def change(seq: int) -> Callable[[Store], None]:
    def tamper(store: Store) -> None:
        with store.sessions.begin() as session:
            session.execute(
                update(AuditEvent).where(AuditEvent.seq == seq).values(outcome="refused")
            )

    return tamper


def remove(*seqs: int) -> Callable[[Store], None]:
    def tamper(store: Store) -> None:
        with store.sessions.begin() as session:
            session.execute(delete(AuditEvent).where(AuditEvent.seq.in_(seqs)))

    return tamper


def insert_at(seq: int) -> Callable[[Store], None]:
    def tamper(store: Store) -> None:
        with store.sessions.begin() as session:
            for moved in range(50, seq - 1, -1):
                session.execute(
                    update(AuditEvent).where(AuditEvent.seq == moved).values(seq=moved + 1)
                )
            session.add(
                AuditEvent(
                    seq=seq,
                    at=T0,
                    actor_account_id=None,
                    actor_role="admin",
                    action="x:y:z",
                    patient_id=None,
                    resources=[],
                    categories=[],
                    purpose=None,
                    outcome="allowed",
                    request_id=None,
                    prev_hash=bytes(32),
                    hash=bytes(32),
                )
            )

    return tamper


def swap(a: int, b: int) -> Callable[[Store], None]:
    def tamper(store: Store) -> None:
        with store.sessions.begin() as session:
            session.execute(update(AuditEvent).where(AuditEvent.seq == a).values(seq=-a))
            session.execute(update(AuditEvent).where(AuditEvent.seq == b).values(seq=a))
            session.execute(update(AuditEvent).where(AuditEvent.seq == -a).values(seq=b))

    return tamper


def truncate(keep: int) -> Callable[[Store], None]:
    def tamper(store: Store) -> None:
        with store.sessions.begin() as session:
            kept = session.get(AuditEvent, keep)
            assert kept is not None
            session.execute(delete(AuditEvent).where(AuditEvent.seq > keep))
            session.execute(update(AuditHead).values(seq=keep, hash=kept.hash))

    return tamper


def rewrite(seq: int) -> Callable[[Store], None]:
    def tamper(store: Store) -> None:
        with store.sessions.begin() as session:
            previous = GENESIS
            for row in session.query(AuditEvent).order_by(AuditEvent.seq).all():
                if row.seq == seq:
                    row.outcome = "refused"
                row.prev_hash = previous
                row.hash = link(previous, {name: getattr(row, name) for name in FIELDS})
                previous = row.hash
            session.execute(update(AuditHead).values(hash=previous))

    return tamper


TAMPERING = {
    "nothing": lambda store: None,
    "a row changed inside a stretch": change(23),
    "a stretch's first row changed": change(5),
    "a stretch's last row changed": change(4),
    "the first row changed": change(1),
    "a row deleted inside a stretch": remove(18),
    "a stretch's first row deleted": remove(5),
    "a stretch's last row deleted": remove(8),
    "the first row deleted": remove(1),
    "the last row deleted": remove(50),
    "a whole stretch deleted": remove(5, 6, 7, 8),
    "two rows deleted in two stretches": remove(6, 31),
    "a row inserted inside a stretch": insert_at(31),
    "a row inserted at a stretch's start": insert_at(5),
    "rows reordered inside a stretch": swap(40, 41),
    "rows reordered across a boundary": swap(4, 5),
    "the tail truncated": truncate(35),
    "history rewritten": rewrite(12),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_the_parallel_walk_says_what_the_walk_in_one_piece_says(
    trail: tuple[Store, list[Path]], tampering: str, walked_in_parallel: list[int]
) -> None:
    store, files = trail
    TAMPERING[tampering](store)
    alone = outcome(store, files, workers=1)
    assert walked_in_parallel == []
    together = outcome(store, files, **PARALLEL)
    assert walked_in_parallel
    assert walked_in_parallel[0] > 1
    assert together == alone
    assert alone.ok == (tampering == "nothing")


def test_the_stretches_cover_the_chain_contiguously() -> None:
    assert split(1, 50, 12)[:3] == [(1, 4), (5, 8), (9, 12)]
    for lo, hi, parts in [(1, 50, 12), (-3, 1_000_003, 8), (7, 7, 4), (1, 5, 9)]:
        stretches = split(lo, hi, parts)
        assert (stretches[0][0], stretches[-1][1]) == (lo, hi)
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(stretches))


def unusual(n: int) -> PendingEvent:
    """An event whose text orjson does not write as the reference does."""
    return PendingEvent(
        action="consultation:message:read",
        actor_role="practitioner",
        outcome="allowed",
        at=T0,
        actor_account_id=uuid.UUID(int=n),
        resources=(f"message:réf-{n}-🩺", "a\x7fb", "tab\there"),
        categories=("health",),
        request_id=f"requête-{n}",
    )


def test_events_that_orjson_cannot_write_are_judged_by_the_reference(
    store: Store, walked_in_parallel: list[int]
) -> None:
    with store.sessions.begin() as session:
        append(session, [event(n) if n % 3 else unusual(n) for n in range(30)])
    assert outcome(store, [], workers=1).ok
    assert outcome(store, [], **PARALLEL).ok
    assert walked_in_parallel
    with store.sessions.begin() as session:
        session.execute(
            update(AuditEvent).where(AuditEvent.seq == 10).values(request_id="requête-99")
        )
    for options in ({"workers": 1}, PARALLEL):
        found = outcome(store, [], **options)
        assert (found.first_bad_seq, found.ok) == (10, False)
        assert "altered" in found.problems[0]


@pytest.mark.parametrize(
    ("stored", "intact"),
    [
        # Read by the ORM as the same values: the chain holds.
        ("actor_account_id = upper(actor_account_id)", True),
        ("at = replace(at, ' ', 'T')", True),
        ("at = substr(at, 1, 23)", True),
        ("resources = replace(resources, '\"]', '\" ]')", True),
        # Not the same values: caught, by the reference when the fast path declines.
        ("purpose = 9e999", False),
        ("at = '2026-11-01 09:00:07.5'", False),
        ("resources = '[1e-7]'", False),
        ("patient_id = NULL", False),
    ],
)
def test_stored_forms_the_fast_path_does_not_take(
    sqlite_store: Store, stored: str, intact: bool, walked_in_parallel: list[int]
) -> None:
    """SQLite holds any value in any column (PostgreSQL's types refuse these)."""
    store = sqlite_store
    with store.sessions.begin() as session:
        append(session, [event(n) for n in range(12)])
    with store.sessions.begin() as session:  # chained after the first commit
        session.execute(text(f"UPDATE audit_events SET {stored} WHERE seq = 7"))
    for options in ({"workers": 1}, PARALLEL):
        found = outcome(store, [], **options)
        assert found.ok is intact, options
        if not intact:
            assert found.first_bad_seq == 7
            assert "altered" in found.problems[0]


def test_the_command_walks_with_the_workers_asked_for(
    store: Store, key_file: Path, tmp_path: Path
) -> None:
    """``--workers`` reaches verify (50 events are walked by this process alone: the
    stretches in parallel are proved above, through the Python API)."""
    home = tmp_path / "deployment"
    home.mkdir()
    deployment = Deployment(store, home, key_file)
    deployment.working_day()
    for workers in ("0", "1", "2"):
        out = deployment.ok("audit", "verify", "--workers", workers)
        assert "audit trail intact: 50 events, 5 checkpoints" in out
    change(23)(store)
    for workers in ("1", "2"):
        error = assert_refused(
            deployment.run("audit", "verify", "--workers", workers), "sequence 23", "altered"
        )
        assert "audit trail tampered at sequence 23" in error


class Tally:
    """What a progress bar is told by verify."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.steps: list[int] = []

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.steps.append(n)


@pytest.mark.parametrize("tampering", ["nothing", "change", "delete"])
def test_progress_counts_every_event_once_alone_and_in_parallel(
    trail: tuple[Store, list[Path]], tampering: str, walked_in_parallel: list[int]
) -> None:
    """The bar's total is the chain's span; its steps add up to the events walked, by
    batch in one process and by stretch in parallel, whether or not a row was bad."""
    store, files = trail
    {"nothing": lambda _: None, "change": change(23), "delete": remove(31)}[tampering](store)
    for options, steps in (({"workers": 1, "batch": 8}, 7), (PARALLEL, 12)):
        tally = Tally()
        found = outcome(store, files, tally=tally, **options)
        assert tally.total == 50
        assert sum(tally.steps) == found.events == (49 if tampering == "delete" else 50)
        assert len(tally.steps) >= (steps if tampering == "nothing" else 2), options
    assert walked_in_parallel


def test_an_empty_trail_has_nothing_to_walk(store: Store) -> None:
    tally = Tally()
    assert outcome(store, [], tally=tally).ok
    assert (tally.total, tally.steps) == (0, [])
