"""Sign-in sessions: opaque 256-bit bearer tokens, stored as SHA-256 digests.

A token is shown once, at creation. Sessions expire when idle and after an absolute
lifetime (both shorter for staff), end at logout, and end together when a password or
second factor changes or an admin ends them.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hippocrate.access.errors import NotAuthenticated, SecondFactorRequired
from hippocrate.access.principal import Principal
from hippocrate.config import Settings
from hippocrate.i18n import _n
from hippocrate.identity.models import Account, AccountStatus, AuthSession, Practitioner, Role

TOKEN_BYTES = 32


def digest(token: str) -> bytes:
    """What is stored of a token: its SHA-256 (the token has 256 bits of entropy)."""
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


def mfa_required(account: Account) -> bool:
    """Staff always use a second factor; patients when they enabled one."""
    return account.role.is_staff or account.totp_enabled


def _lifetimes(settings: Settings, role: Role) -> tuple[timedelta, timedelta]:
    if role.is_staff:
        return (
            timedelta(seconds=settings.session_idle_staff),
            timedelta(seconds=settings.session_absolute_staff),
        )
    return (
        timedelta(seconds=settings.session_idle_patient),
        timedelta(seconds=settings.session_absolute_patient),
    )


def create_session(
    *, session: Session, settings: Settings, account: Account, mfa_passed: bool, now: datetime
) -> tuple[str, AuthSession]:
    """A new session for ``account``; returns the token (shown once) and the record."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    idle, absolute = _lifetimes(settings, account.role)
    record = AuthSession(
        token_digest=digest(token),
        account_id=account.id,
        mfa_passed=mfa_passed,
        created_at=now,
        last_seen_at=now,
        idle_expires_at=now + idle,
        absolute_expires_at=now + absolute,
    )
    session.add(record)
    session.flush()
    return token, record


@dataclass(frozen=True)
class Resolved:
    auth_session: AuthSession
    account: Account


def unsafe_get_account(*, session: Session, account_id: uuid.UUID) -> Account | None:
    """One account by id, whoever asks: unsafe, it skips the access policy. For the
    machinery that holds a credential and no principal yet (a session token being
    resolved, an emailed link token being used): the credential names the account, and
    what comes next checks it. Its fields still open only in an audited session."""
    return session.get(Account, account_id)


def resolve(
    *, session: Session, settings: Settings, token: str, now: datetime, touch: bool = True
) -> Resolved:
    """The live session behind ``token``; ``NotAuthenticated`` for anything else
    (unknown, ended, expired, account not active). Extends the idle deadline."""
    record = session.scalars(
        select(AuthSession).where(AuthSession.token_digest == digest(token))
    ).first()
    if record is None or record.ended_at is not None:
        raise NotAuthenticated(_n("the session is not valid; sign in again"))
    if now >= record.idle_expires_at or now >= record.absolute_expires_at:
        record.ended_at, record.end_reason = now, "expired"
        raise NotAuthenticated(_n("the session has expired; sign in again"))
    account = unsafe_get_account(session=session, account_id=record.account_id)
    if account is None or account.status is not AccountStatus.ACTIVE:
        raise NotAuthenticated(_n("this account cannot sign in"))
    if touch:
        idle, _ = _lifetimes(settings, account.role)
        record.last_seen_at = now
        record.idle_expires_at = min(now + idle, record.absolute_expires_at)
    return Resolved(record, account)


def principal_for(*, session: Session, resolved: Resolved) -> Principal:
    """The principal of a live session; refuses one still waiting for its second factor."""
    account = resolved.account
    if mfa_required(account) and not resolved.auth_session.mfa_passed:
        raise SecondFactorRequired()
    practitioner = None
    if account.role is Role.PRACTITIONER:
        # Plaintext columns only: the principal needs no name.
        practitioner = session.execute(
            select(Practitioner.id, Practitioner.specialty).where(
                Practitioner.account_id == account.id
            )
        ).first()
    return Principal(
        account_id=account.id,
        role=account.role,
        session_id=resolved.auth_session.id,
        patient_id=account.patient_id,
        practitioner_id=practitioner.id if practitioner else None,
        specialty=practitioner.specialty if practitioner else None,
    )


def end_session(*, session: Session, session_id: uuid.UUID, now: datetime, reason: str) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )


def end_sessions_of(
    *,
    session: Session,
    account_id: uuid.UUID,
    now: datetime,
    reason: str,
    keep: uuid.UUID | None = None,
) -> int:
    """End every live session of an account (but ``keep``); returns how many."""
    statement = update(AuthSession).where(
        AuthSession.account_id == account_id, AuthSession.ended_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    result = session.execute(
        statement.values(ended_at=now, end_reason=reason).execution_options(
            synchronize_session=False
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def end_all_sessions(*, session: Session, now: datetime, reason: str) -> int:
    """End every live session of every account (an admin's emergency stop)."""
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
