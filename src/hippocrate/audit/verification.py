"""``audit verify``: what the trail, its checkpoints and their copies prove.

Each check either proves something (listed in ``Verification.proved``), fails
(``problems``: the trail is not shown intact), or cannot be made with what was given
(``unproved``: a limit the operator should know). The chain is walked once, in order.

Guaranteed: a changed, deleted, inserted or reordered event, a removed tail, and a
history recomputed after a change are each named, provided a checkpoint covering the
change survives somewhere verify is shown (the checkpoint file, a mirror, a witness's
copy). Not guaranteed: whoever holds the signing key and every copy verify is shown can
re-sign a rewritten history; only a witness out of their reach excludes that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hippocrate.audit.chain import GENESIS
from hippocrate.audit.checkpoints import HEAD_ID, Checkpoint, read_checkpoints
from hippocrate.audit.models import AuditEvent, AuditHead, AuditPending
from hippocrate.audit.walk import Stretch, cores, split, walk, walk_in_parallel
from hippocrate.vault.signatures import verify_signature

#: Events per stretch beyond four per worker (about a second's walk for one core).
PROGRESS_STRETCH = 250_000


@dataclass
class Verification:
    """The outcome of one verification. ``ok`` only if no problem was found; read
    ``unproved`` too: it says what ``ok`` does not cover."""

    events: int = 0
    checkpoints: int = 0  # distinct checkpoints checked, from every file and copy
    witnessed: int = 0  # checkpoints of the witnesses' copies that matched
    last_checkpoint: Checkpoint | None = None  # the newest one that matched the chain
    uncovered: int = 0  # events after it
    unchained: int = 0  # events committed that the chainer has not reached yet
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    proved: list[str] = field(default_factory=list)
    unproved: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, seq: int, problem: str) -> None:
        """A problem located in the chain, at ``seq``."""
        if self.first_bad_seq is None or seq < self.first_bad_seq:
            self.first_bad_seq = seq
        self.problems.append(f"sequence {seq}: {problem}")

    def refuse(self, problem: str) -> None:
        """A problem with the checkpoints or their copies, not located in the chain."""
        self.problems.append(problem)

    @property
    def first_problem(self) -> str | None:
        """The one problem to name: the first one located in the chain, else the first."""
        located = [p for p in self.problems if p.startswith(f"sequence {self.first_bad_seq}:")]
        return located[0] if located else (self.problems[0] if self.problems else None)


class Tally(Protocol):
    """What follows the walk (a progress bar): the events to walk, then each batch."""

    def set_total(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


@dataclass(frozen=True)
class _Copy:
    path: Path
    checkpoints: list[Checkpoint] | None  # None: missing or unreadable


def _read(path: Path, report: Verification, what: str) -> _Copy:
    if not path.exists():
        return _Copy(path, None)
    try:
        return _Copy(path, read_checkpoints(path))
    except (OSError, ValueError) as exc:
        report.refuse(f"the {what} {path} cannot be read: {exc}")
        return _Copy(path, None)


def verify(
    *,
    session: Session,
    public_key: bytes,
    checkpoint_files: Iterable[Path],
    witness_files: Iterable[Path] = (),
    now: datetime | None = None,
    max_gap: timedelta | None = None,
    batch: int = 20_000,
    workers: int | None = None,
    min_stretch: int = 50_000,
    tally: Tally | None = None,
) -> Verification:
    """Check the chain row by row, the head, every signed checkpoint of every file and
    witness copy, that the checkpoint file holds everything its mirrors and the
    witnesses hold, and (with ``now`` and ``max_gap``) that no event older than
    ``max_gap`` lies beyond the last checkpoint.

    ``checkpoint_files``: the checkpoint file first, then its mirrors. Names the first
    bad sequence number when the problem lies in the chain.

    The chain is walked by ``workers`` processes (None: one per core), each over
    contiguous stretches of at least ``min_stretch`` events, when the database is a file
    or a server they can open; in this process otherwise. The verdicts do not depend on
    it (see ``join``). ``tally`` is told how many events there are to walk, then the
    events of each batch walked.
    """
    report = Verification()
    files = list(checkpoint_files)
    copies = [_read(path, report, "checkpoint file" if i == 0 else "mirror") for i, path in
              enumerate(files)]  # fmt: skip
    witnesses = [_read(path, report, "witness copy") for path in witness_files]

    everything: set[Checkpoint] = set()
    for copy in (*copies, *witnesses):
        everything.update(copy.checkpoints or ())
    wanted = {checkpoint.seq for checkpoint in everything}
    head, lo, hi = _bounds(session)
    if tally is not None:
        tally.set_total(0 if lo is None or hi is None else hi - lo + 1)
    stretches = _walk_chain(
        session,
        lo=lo,
        hi=hi,
        wanted=frozenset(wanted),
        batch=batch,
        workers=workers,
        min_stretch=min_stretch,
        advance=tally.advance if tally is not None else None,
    )
    last, previous, hashes_at = join(report, stretches)
    intact = report.first_bad_seq is None
    if intact and head is not None and head != (last, previous):
        report.fail(last + 1, f"the head says {head[0]} events; the chain ends at {last}")

    matched = _verify_checkpoints(
        report, everything, public_key=public_key, last=last, hashes_at=hashes_at, intact=intact
    )
    if copies:
        _compare_copies(report, copies)
    _compare_witnesses(report, copies[0] if copies else None, witnesses, matched)
    _check_coverage(session, report, matched, last=last, now=now, max_gap=max_gap)
    _check_unchained(session, report, now=now, max_gap=max_gap)
    _summarise(report, files, witnesses, last, now, intact=intact)
    return report


def _verify_checkpoints(
    report: Verification,
    everything: set[Checkpoint],
    *,
    public_key: bytes,
    last: int,
    hashes_at: dict[int, bytes],
    intact: bool,
) -> set[Checkpoint]:
    """Check each distinct checkpoint's signature and its head against the chain; the
    ones that match."""
    matched: set[Checkpoint] = set()
    seqs = sorted({checkpoint.seq for checkpoint in everything})
    for checkpoint in sorted(everything, key=lambda c: (c.seq, c.at)):
        seq = checkpoint.seq
        report.checkpoints += 1
        if not verify_signature(public_key, checkpoint.payload(), checkpoint.signature):
            report.fail(seq, "checkpoint signature does not verify")
        elif seq > last:
            if intact:
                report.fail(
                    last + 1, f"a signed checkpoint covers {seq} events: the tail was removed"
                )
        elif seq in hashes_at and hashes_at[seq] != checkpoint.head:
            earlier = [s for s in seqs if s < seq]
            report.fail(
                (max(earlier) + 1) if earlier else 1,
                f"the chain no longer matches the checkpoint at {seq}: history was rewritten",
            )
        elif seq in hashes_at:
            matched.add(checkpoint)
    return matched


def _compare_copies(report: Verification, copies: Sequence[_Copy]) -> None:
    """The checkpoint file must hold every checkpoint of its mirrors, and exist."""
    primary, mirrors = copies[0], copies[1:]
    held = set(primary.checkpoints or ())
    if primary.checkpoints is None and report.events:
        report.refuse(
            f"the checkpoint file {primary.path} is missing while the trail holds "
            f"{report.events} events: checkpoints were deleted"
        )
    for mirror in mirrors:
        if mirror.checkpoints is None:
            report.unproved.append(f"the mirror {mirror.path} is missing: nothing compared")
            continue
        extra = set(mirror.checkpoints) - held
        seqs_held = {checkpoint.seq for checkpoint in held}
        disagree = sorted(c.seq for c in extra if c.seq in seqs_held)
        lacking = sorted(c.seq for c in extra if c.seq not in seqs_held)
        if disagree:
            report.refuse(
                f"the checkpoint file disagrees with its mirror {mirror.path} at sequence "
                f"{disagree[0]}: checkpoints were re-signed"
            )
        if lacking:
            report.refuse(
                f"the checkpoint file is shorter than its mirror {mirror.path}: it lacks "
                f"{len(lacking)} checkpoint(s), from sequence {lacking[0]}"
            )
        missing_there = seqs_held - {checkpoint.seq for checkpoint in mirror.checkpoints}
        if missing_there:
            report.unproved.append(
                f"the mirror {mirror.path} lacks {len(missing_there)} checkpoint(s) of the "
                "checkpoint file (it was unreachable when they were written, or trimmed)"
            )


def _compare_witnesses(
    report: Verification,
    primary: _Copy | None,
    witnesses: Sequence[_Copy],
    matched: set[Checkpoint],
) -> None:
    held = set(primary.checkpoints or ()) if primary is not None else set()
    for witness in witnesses:
        if witness.checkpoints is None:
            report.refuse(f"the witness copy {witness.path} is missing")
            continue
        for checkpoint in witness.checkpoints:
            if primary is not None and checkpoint not in held:
                report.refuse(
                    f"the witness copy {witness.path} holds a checkpoint at sequence "
                    f"{checkpoint.seq} that the checkpoint file does not: checkpoints were "
                    "removed or re-signed"
                )
                break
        report.witnessed += len(set(witness.checkpoints) & matched)


def _check_coverage(
    session: Session,
    report: Verification,
    matched: set[Checkpoint],
    *,
    last: int,
    now: datetime | None,
    max_gap: timedelta | None,
) -> None:
    newest = max(matched, key=lambda c: (c.seq, c.at), default=None)
    report.last_checkpoint = newest
    covered = newest.seq if newest is not None else 0
    report.uncovered = max(last - covered, 0)
    if now is None or max_gap is None or report.uncovered == 0:
        return
    first_at = session.execute(
        select(AuditEvent.at).where(AuditEvent.seq == covered + 1)
    ).scalar_one_or_none()
    if first_at is None:
        return
    first_at = first_at if first_at.tzinfo else first_at.replace(tzinfo=UTC)
    if now - first_at > max_gap:
        report.refuse(
            f"sequence {covered + 1}: {report.uncovered} event(s) lie beyond the last "
            f"checkpoint ({'none' if newest is None else f'at {covered}'}), the first from "
            f"{first_at.isoformat(timespec='seconds')}, more than {_seconds(max_gap)} ago: "
            "checkpoints stopped or were removed"
        )


def _check_unchained(
    session: Session, report: Verification, *, now: datetime | None, max_gap: timedelta | None
) -> None:
    """Events committed and not chained yet are the chainer's lag: said, and a failure
    when the oldest is older than ``max_gap`` (the chainer stopped, or rows are kept
    out of the chain)."""
    count, oldest = session.execute(
        select(func.count(), func.min(AuditPending.at)).select_from(AuditPending)
    ).one()
    report.unchained = int(count)
    if not count:
        return
    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
    since = oldest.isoformat(timespec="seconds")
    if now is not None and max_gap is not None and now - oldest > max_gap:
        report.refuse(
            f"{count} event(s) committed are not chained, the oldest from {since}, more "
            f"than {_seconds(max_gap)} ago: the chainer stopped"
        )
    else:
        report.unproved.append(
            f"{count} event(s) committed since {since} are not chained yet (the chainer's "
            "lag): the next verification covers them"
        )


def _seconds(gap: timedelta) -> str:
    return f"{int(gap.total_seconds())} s"


def _summarise(
    report: Verification,
    files: Sequence[Path],
    witnesses: Sequence[_Copy],
    last: int,
    now: datetime | None,
    *,
    intact: bool,
) -> None:
    if intact:
        report.proved.append(f"{last} events chained from the first to the head")
    else:
        report.proved.append(f"the chain holds together up to sequence {last} only")
    if report.checkpoints:
        copies = f"the checkpoint file and {len(files) - 1} mirror(s)" if files else "copies"
        report.proved.append(
            f"{report.checkpoints} signed checkpoint(s) checked against the chain ({copies})"
        )
    if witnesses:
        report.proved.append(f"{report.witnessed} witnessed head(s) matched")
    newest = report.last_checkpoint
    if newest is not None:
        age = f", {_seconds(now - newest.at)} old" if now is not None else ""
        report.proved.append(
            f"last checkpoint at sequence {newest.seq}{age}; {report.uncovered} event(s) after it"
        )
    elif last:
        report.unproved.append(f"no checkpoint covers any of the {last} events")
    if len(files) < 2:
        report.unproved.append(
            "no mirror: a rewrite by someone holding the checkpoint file is caught only by "
            "a witness"
        )


def _bounds(session: Session) -> tuple[tuple[int, bytes] | None, int | None, int | None]:
    """The head (None if its row is missing) and the lowest and highest sequence numbers
    stored, read in one statement (one snapshot): events appended while verify runs lie
    beyond the highest and are left for the next run."""
    events = AuditEvent.seq
    found = session.execute(
        select(
            AuditHead.seq,
            AuditHead.hash,
            select(func.min(events)).scalar_subquery(),
            select(func.max(events)).scalar_subquery(),
        ).where(AuditHead.id == HEAD_ID)
    ).first()
    if found is not None:
        return (int(found[0]), bytes(found[1])), found[2], found[3]
    lo, hi = session.execute(select(func.min(events), func.max(events))).one()
    return None, lo, hi


def _walk_chain(
    session: Session,
    *,
    lo: int | None,
    hi: int | None,
    wanted: frozenset[int],
    batch: int,
    workers: int | None,
    min_stretch: int,
    advance: Callable[[int], None] | None = None,
) -> list[Stretch]:
    """The chain's rows ``lo..hi`` walked in stretches: in parallel where it pays and the
    database can be opened by other processes, else in this session's connection.

    Four stretches per worker at least (one slow stretch does not leave a core idle),
    and more on a long chain, of about ``PROGRESS_STRETCH`` events each, so that a
    progress bar moves every second or so."""
    if lo is None or hi is None:
        return []
    connection = session.connection()
    url = connection.engine.url
    workers = cores() if workers is None else workers
    span = hi - lo + 1
    parts = min(max(workers * 4, span // PROGRESS_STRETCH), span // max(min_stretch, 1))
    shared = url.get_backend_name() == "postgresql" or url.database not in (None, "", ":memory:")
    if workers < 2 or parts < 2 or not shared:
        return [walk(connection, lo, hi, wanted, batch, advance=advance)]
    return walk_in_parallel(
        url.render_as_string(hide_password=False),
        split(lo, hi, parts),
        wanted,
        workers=workers,
        batch=batch,
        advance=advance,
    )


def join(report: Verification, stretches: Sequence[Stretch]) -> tuple[int, bytes, dict[int, bytes]]:
    """Join stretches walked apart into one walk of the chain, in order: each stretch's
    first row must be the one expected after the last good row before it and link to
    its hash; a stretch's own verdict counts only if it does. Returns the last good
    sequence number, its hash, and the hashes at the wanted sequence numbers. As a walk
    in one piece, it stops judging at the first break and counts every row."""
    hashes_at: dict[int, bytes] = {}
    expected, previous, intact = 1, GENESIS, True
    for stretch in stretches:
        report.events += stretch.rows
        if not intact or stretch.first_seq is None:
            continue
        intact = False
        if stretch.first_seq != expected:
            report.fail(
                expected, f"missing (next present is {stretch.first_seq}): a row was deleted"
            )
        elif stretch.first_prev != previous:
            report.fail(
                stretch.first_seq,
                "does not follow its predecessor: a row was inserted or reordered",
            )
        else:
            hashes_at.update(stretch.hashes_at)
            expected, previous = stretch.last_seq + 1, stretch.last_hash
            if stretch.failure is not None:
                report.fail(*stretch.failure)
            else:
                intact = True
    return expected - 1, previous, hashes_at
