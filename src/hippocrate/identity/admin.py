"""What administrators do to accounts, and what support may read of them.

Guarantees:

- support reads account metadata only (``AccountMetadata``): built from plaintext
  columns, nothing sealed is opened, so no email, name, NIR or health data can reach
  it by mistake;
- staff recovery is an administrator's act on *another* account (an administrator
  cannot recover, disable or unlock themselves), executed only once a second
  administrator approved it (``hippocrate.admin.service``); it ends the account's
  sessions and issues a single-use setup token, which the caller emails to the
  account's own address (never to an administrator);
- a new staff account awaiting a second administrator's approval of its creation
  (``AWAITING_APPROVAL``, any staff role) is not enabled, recovered or released by
  anyone: only the approval activates it;
- disabling an account ends its sessions at once.

Each operation records an audit event (``account:status:disabled``,
``account:recovery:reset`` ...) naming the account acted on; the actor is the
request's principal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hippocrate.access.policy import get_account
from hippocrate.access.principal import Principal
from hippocrate.i18n import _n, term
from hippocrate.identity import events
from hippocrate.identity.errors import AccountActionRefused
from hippocrate.identity.models import Account, AccountStatus
from hippocrate.identity.service import clear_second_factor, issue_setup_token, unlock
from hippocrate.identity.sessions import end_all_sessions, end_sessions_of
from hippocrate.tags import Tag

CONTAINED = "contained"  # the guard's reason when it disables an account
#: The reason of a staff account (any role) created disabled, until a second
#: administrator approves its creation.
AWAITING_APPROVAL = "awaiting approval"


#: The actions ``_other`` names, marked for the catalogues.
ACTIONS = (_n("disable"), _n("enable"), _n("unlock"), _n("recover"))


def _other(actor: Principal, account: Account, action: str) -> None:
    if account.id == actor.account_id:
        raise AccountActionRefused(
            _n("you cannot {action} your own account: ask another admin"), action=term(action)
        )


def disable_account(
    *, session: Session, actor: Principal, account_id: uuid.UUID, reason: str, now: datetime
) -> Account:
    account = get_account(session=session, account_id=account_id)
    _other(actor, account, "disable")
    if account.status is AccountStatus.DISABLED:
        raise AccountActionRefused(_n("this account is already disabled"))
    account.status = AccountStatus.DISABLED
    account.disabled_reason = reason
    end_sessions_of(session=session, account_id=account.id, now=now, reason="disabled")
    events.record(session, Tag.ACCOUNT_STATUS_DISABLED, account=account, now=now)
    return account


def enable_account(*, session: Session, actor: Principal, account_id: uuid.UUID) -> Account:
    """Re-enable a disabled account (pending again if its email was never verified)."""
    account = get_account(session=session, account_id=account_id)
    _other(actor, account, "enable")
    if account.status is not AccountStatus.DISABLED:
        raise AccountActionRefused(_n("this account is not disabled"))
    if account.disabled_reason == AWAITING_APPROVAL:
        raise AccountActionRefused(
            _n(
                "this staff account awaits a second administrator's approval of its "
                "creation: see GET /api/v1/admin/approvals"
            )
        )
    if account.disabled_reason == CONTAINED:
        raise AccountActionRefused(
            _n(
                "the guard contained this account: ask for its release with "
                "POST /api/v1/admin/accounts/{id}/release (a second administrator approves "
                "it) or run 'hippocrate guard release' on the server (both record why)"
            )
        )
    verified = account.role.is_staff or account.email_verified_at is not None
    account.status = AccountStatus.ACTIVE if verified else AccountStatus.PENDING
    account.disabled_reason = None
    unlock(session=session, account=account)
    events.record(session, Tag.ACCOUNT_STATUS_ENABLED, account=account)
    return account


def unlock_account(*, session: Session, actor: Principal, account_id: uuid.UUID) -> Account:
    """Lift a sign-in lock before it runs out (the caller checked who is asking)."""
    account = get_account(session=session, account_id=account_id)
    _other(actor, account, "unlock")
    unlock(session=session, account=account)
    events.record(session, Tag.ACCOUNT_LOCK_LIFTED, account=account)
    return account


def check_recovery(
    *,
    session: Session,
    actor: Principal,
    account_id: uuid.UUID,
    reset_password: bool,
    reset_second_factor: bool,
) -> Account:
    """The staff account ``actor`` may ask to recover; refuses oneself, patients, an
    empty request and a new staff account awaiting approval."""
    account = get_account(session=session, account_id=account_id)
    _other(actor, account, "recover")
    if not account.role.is_staff:
        raise AccountActionRefused(
            _n("patients recover their account themselves (email link and second factor)")
        )
    if not (reset_password or reset_second_factor):
        raise AccountActionRefused(
            _n("say what to reset: the password, the second factor, or both")
        )
    if account.disabled_reason == AWAITING_APPROVAL:
        raise AccountActionRefused(
            _n("this staff account awaits approval of its creation: approve or refuse it")
        )
    return account


@dataclass(frozen=True)
class StaffRecovery:
    setup_token: str | None
    setup_expires_at: datetime | None
    sessions_ended: int


def recover_staff_account(
    *,
    session: Session,
    actor: Principal,
    account_id: uuid.UUID,
    reset_password: bool,
    reset_second_factor: bool,
    now: datetime,
) -> StaffRecovery:
    """Reset a staff member's password (a setup token replaces it) and/or second factor
    (their next sign-in can only set up a new one). Ends their sessions, lifts a lock.

    The caller delivers the token to the account's own address; only an approved
    four-eyes request calls this (``hippocrate.admin.service``)."""
    account = check_recovery(
        session=session,
        actor=actor,
        account_id=account_id,
        reset_password=reset_password,
        reset_second_factor=reset_second_factor,
    )
    token = expires = None
    if reset_password:
        account.password_hash = None
        token, expires = issue_setup_token(session=session, account=account, now=now)
    if reset_second_factor:
        clear_second_factor(account)
    ended = end_sessions_of(session=session, account_id=account.id, now=now, reason="recovery")
    unlock(session=session, account=account)
    if reset_password:
        events.record(session, Tag.ACCOUNT_PASSWORD_RESET_BY_ADMIN, account=account, now=now)
    if reset_second_factor:
        events.record(session, Tag.ACCOUNT_MFA_RESET_BY_ADMIN, account=account, now=now)
    return StaffRecovery(token, expires, ended)


def end_account_sessions(*, session: Session, account_id: uuid.UUID, now: datetime) -> int:
    account = get_account(session=session, account_id=account_id)
    events.record(session, Tag.ACCOUNT_SESSIONS_ENDED, account=account, now=now)
    return end_sessions_of(session=session, account_id=account.id, now=now, reason="admin")


def end_everyone(*, session: Session, now: datetime) -> int:
    """End every live session, the caller's included (an emergency stop)."""
    events.record(session, Tag.ACCOUNT_SESSIONS_ENDED_ALL, now=now)
    return end_all_sessions(session=session, now=now, reason="admin-all")
