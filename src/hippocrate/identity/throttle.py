"""Failure counters for sign-in and second-factor checks, per account and per address.

Two keys per attempt, both keyed digests (the vault's ``client`` blind index, 32 bits),
never an address or an email in the clear:

- ``acct:<index of "account:" + the email's blind index>``: derived from the email
  typed, not from an account id, so an address that has no account locks exactly like
  one that has: the lock cannot tell an attacker which accounts exist. It goes through
  the email's blind index (the value of ``accounts.email_index``) so that an
  administrator can lift a lock without opening the account's sealed email (which, for
  a patient, would count as reading their data); and it is keyed again, so a copy of
  the database cannot link a throttle row to an account.
- ``addr:<index of "address:" + the client address>``.

The limiters are checked before any password or code is verified, and only failures
are counted. Within ``login_window_seconds``, the ``login_failures_per_account``-th
(or ``login_failures_per_client``-th) failure blocks the key for
``login_lock_seconds``; a block that has run out resets the counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hippocrate.config import Settings
from hippocrate.db.sealed import vault_of
from hippocrate.identity.errors import SignInLocked
from hippocrate.identity.models import Throttle


@dataclass(frozen=True)
class Keys:
    account: str
    address: str


def account_key(session: Session, email_index: int) -> str:
    """The account key for an email whose blind index is ``email_index``."""
    return f"acct:{vault_of(session).blind_index('client', f'account:{email_index}')}"


def keys_for(session: Session, *, email_index: int, address: str) -> Keys:
    """The throttle keys of an attempt on the email of blind index ``email_index`` from
    ``address``."""
    return Keys(
        account=account_key(session, email_index),
        address=f"addr:{vault_of(session).blind_index('client', 'address:' + address)}",
    )


def _limit(settings: Settings, key: str) -> int:
    if key.startswith("acct:"):
        return settings.login_failures_per_account
    return settings.login_failures_per_client


def _row(session: Session, key: str, now: datetime) -> Throttle:
    """The row of ``key``, created if missing, locked for update on PostgreSQL."""
    dialect = session.get_bind().dialect.name
    values = {"key": key, "window_start": now, "failures": 0}
    if dialect == "postgresql":
        session.execute(postgresql.insert(Throttle).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(Throttle).values(values).on_conflict_do_nothing())
    elif session.get(Throttle, key) is None:
        session.add(Throttle(**values))
        session.flush()
    return session.scalars(
        select(Throttle)
        .where(Throttle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def check(session: Session, *, keys: Keys, now: datetime) -> None:
    """Raise :class:`SignInLocked` if either key is blocked at ``now``; forget blocks
    that have run out."""
    rows = session.scalars(
        select(Throttle).where(Throttle.key.in_([keys.account, keys.address]))
    ).all()
    blocked = [r.blocked_until for r in rows if r.blocked_until and r.blocked_until > now]
    if blocked:
        raise SignInLocked(max(blocked), now)
    for row in rows:
        if row.blocked_until is not None:
            row.blocked_until, row.failures, row.window_start = None, 0, now


def record_failure(
    session: Session, *, settings: Settings, keys: Keys, now: datetime
) -> datetime | None:
    """Count one failure against both keys; returns when the account key is blocked
    until, if this failure blocked it."""
    window = timedelta(seconds=settings.login_window_seconds)
    lock = timedelta(seconds=settings.login_lock_seconds)
    account_blocked: datetime | None = None
    for key in (keys.account, keys.address):
        row = _row(session, key, now)
        if now - row.window_start >= window:
            row.window_start, row.failures = now, 0
        row.failures += 1
        if row.failures >= _limit(settings, key) and row.blocked_until is None:
            row.blocked_until = now + lock
            if key == keys.account:
                account_blocked = row.blocked_until
    session.flush()
    return account_blocked


def clear(session: Session, key: str) -> None:
    """Forget the failures of ``key`` (after a success, or when an admin unlocks)."""
    session.execute(delete(Throttle).where(Throttle.key == key))


def purge(session: Session, *, settings: Settings, now: datetime) -> int:
    """Delete counters whose window and block are over (maintenance; returns how many)."""
    cutoff = now - timedelta(seconds=settings.login_window_seconds)
    result = session.execute(
        delete(Throttle).where(
            Throttle.window_start < cutoff,
            (Throttle.blocked_until.is_(None)) | (Throttle.blocked_until <= now),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- anonymous requests: registration and password reset ------------------------------


@dataclass(frozen=True)
class Budget:
    """How many anonymous requests of one kind (``register``, ``reset``) are admitted
    per window, from one client address and from everyone."""

    kind: str
    per_client: int
    overall: int
    window: timedelta


def budget(settings: Settings, kind: str) -> Budget:
    per_client, overall = {
        "register": (settings.registrations_per_client, settings.registrations_global),
        "reset": (settings.resets_per_client, settings.resets_global),
        "document-check": (settings.document_checks_per_client, settings.document_checks_global),
    }[kind]
    return Budget(kind, per_client, overall, timedelta(seconds=settings.anonymous_window_seconds))


def admit(session: Session, *, budget: Budget, address: str, now: datetime) -> datetime | None:
    """Count one request of ``budget.kind`` from ``address``, or refuse it: returns
    ``None`` when admitted, else until when the exhausted counter (the address's or
    everyone's) refuses. A refused request is not counted.

    Keyed on the client address and on the kind alone, never on the email typed, so
    the answer is the same for known and unknown addresses. Counters live in the
    ``throttles`` table, shared by every process, in fixed windows; a full counter is
    marked blocked until its window ends, so :func:`purge` keeps it until then.
    """
    index = vault_of(session).blind_index("client", f"{budget.kind}:address:{address}")
    counters = (
        (f"{budget.kind}:addr:{index}", budget.per_client),
        (f"{budget.kind}:all", budget.overall),
    )
    rows = [(_row(session, key, now), limit) for key, limit in counters]
    for row, _limit in rows:
        ended = row.blocked_until is not None and row.blocked_until <= now
        if ended or now - row.window_start >= budget.window:
            row.window_start, row.failures, row.blocked_until = now, 0, None
    refused = [row.window_start + budget.window for row, limit in rows if row.failures >= limit]
    if refused:
        session.flush()
        return max(refused)
    for row, limit in rows:
        row.failures += 1
        if row.failures >= limit:
            row.blocked_until = row.window_start + budget.window
    session.flush()
    return None
