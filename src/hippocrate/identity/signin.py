"""Sign-in: a password, then the second factor where one is required.

Guarantees (each tested in ``tests/identity``):

- the limiters (per account, per client address) are checked before the password or
  code is verified, and only failures are counted;
- an unknown email and a wrong password give the same refusal, after the same work
  (a dummy argon2 verification for an unknown account), and lock the same way;
- whether an account is pending, disabled or needs a second factor is only said to
  someone who gave its password;
- a session that has not passed a required second factor is short-lived and only
  reaches the routes that complete it (see ``sessions.principal_for``); when it passes,
  it is replaced by a new session with a new token;
- wrong second-factor codes also count on the account itself (``Account.mfa_failures``,
  in the database, so every process shares it): a right password does not reset that
  count, only a right code does. The ``mfa_failures_per_account``-th wrong code in a row
  locks the account (``mfa_locked_at``) until an administrator lifts it, and emails its
  owner (``second_factor_locked``); while it holds, no code is checked, the right one
  included, and a right password answers the lock instead of a pending session;
- the failure that blocks sign-in to an existing account emails its owner
  (``account_locked``), once per block, recorded and delivered after the answer, on
  the delivery thread (nothing of it is done in the request); a recovery code that
  completes a sign-in emails the owner too (``recovery_code_used``).

Refusals raise :class:`~hippocrate.identity.errors.SignInRefused` subclasses *after*
counting: the routes return them as responses so that the counters are committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hippocrate.config import Settings
from hippocrate.db.sealed import vault_of
from hippocrate.i18n import _n
from hippocrate.identifiers import InvalidIdentifier, normalise_email
from hippocrate.identity import events, factors, passwords, throttle
from hippocrate.identity.errors import (
    AccountInactive,
    InvalidCode,
    InvalidCredentials,
    SecondFactorLocked,
    SecondFactorNotSetUp,
    SessionAlreadyComplete,
    SignInLocked,
    SignInRefused,
)
from hippocrate.identity.models import Account, AccountStatus, AuthSession
from hippocrate.identity.sessions import (
    Resolved,
    create_session,
    end_session,
    end_sessions_of,
    mfa_required,
)
from hippocrate.keyring.service import unwrap_budget_of
from hippocrate.notify.service import send, send_later
from hippocrate.ops import metrics
from hippocrate.tags import ATTEMPTS, Attempted, Outcome, Tag
from hippocrate.vault import DecryptionError, UnwrapBudgetExceeded

if TYPE_CHECKING:
    from hippocrate.guard.service import Guard

PENDING_LIFETIME = timedelta(minutes=10)
"""How long a session waiting for its second factor (or its enrolment) lives."""

LOCKED_TEMPLATE = "second_factor_locked"
"""The email its owner receives when wrong codes lock an account."""

THROTTLED_TEMPLATE = "account_locked"
"""The email its owner receives when failures block sign-in to an account for a while:
once per block, since only the failure that sets the block sends it and no failure is
counted while it holds."""

RECOVERY_USED_TEMPLATE = "recovery_code_used"
"""The email its owner receives when a recovery code completes a sign-in."""


@dataclass(frozen=True)
class Issued:
    """A session just created; ``token`` is shown once."""

    token: str
    record: AuthSession
    mfa_required: bool
    mfa_setup_required: bool


def login_email(raw: str) -> str:
    """The canonical form of a typed login email; an unparsable one is kept (lowercased)
    so that it is refused exactly like an unknown address, not with a different answer."""
    try:
        return normalise_email(raw)
    except InvalidIdentifier:
        return raw.strip().lower()


def email_index(session: Session, email: str) -> int:
    return vault_of(session).blind_index("email", email)


def unsafe_account_by_email(*, session: Session, email: str) -> Account | None:
    """The account whose login email is ``email`` (normalised), if any.

    The blind index narrows the candidates; each is confirmed by decryption.
    Deleted accounts are never found (their keys may be destroyed), nor pending ones:
    a registration whose address is not verified holds nothing, so signing in to it,
    asking a reset for it or registering its address again goes exactly as for an
    address without an account (docs/ACCOUNTS.md, *Registration*).

    Unsafe, it skips the access policy: sign-in, registration's duplicate check and
    recovery must find an account by its email before there is a principal. Callers
    answer alike whether or not it exists, and never show what it opened.
    """
    index = email_index(session, email)
    candidates = session.scalars(
        select(Account).where(
            Account.email_index == index,
            Account.status.not_in((AccountStatus.DELETED, AccountStatus.PENDING)),
        )
    ).all()
    for candidate in candidates:
        try:
            if candidate.email == email:
                return candidate
        except DecryptionError:
            continue
    return None


def refuse_if_unwrap_budget_spent(session: Session) -> None:
    """Raise ``UnwrapBudgetExceeded`` (answered 503) if the session's unwrap budget
    class could not unwrap a new key now: checked before the lookup, so that a spent
    budget refuses known and unknown addresses alike (only a known one would unwrap),
    instead of answering 503 for one and 401 for the other."""
    if vault_of(session).budget_exhausted(unwrap_budget_of(session)):
        raise UnwrapBudgetExceeded("the unwrap budget of anonymous requests is spent")


class Attempt:
    """One throttled attempt at proving a secret (``what``: password or code) for an
    email."""

    def __init__(
        self,
        *,
        session: Session,
        settings: Settings,
        email_index: int,
        address: str,
        now: datetime,
        what: Attempted,
        account: Account | None = None,
    ) -> None:
        self.session, self.settings, self.now = session, settings, now
        self.what, self.account = what, account
        self.keys = throttle.keys_for(session, email_index=email_index, address=address)

    @classmethod
    def on(
        cls,
        account: Account,
        *,
        session: Session,
        settings: Settings,
        address: str,
        now: datetime,
        what: Attempted,
    ) -> Attempt:
        """An attempt on a known account (it shares the sign-in counters)."""
        return cls(
            session=session,
            settings=settings,
            email_index=account.email_index or 0,
            address=address,
            now=now,
            what=what,
            account=account,
        )

    def check(self) -> None:
        """Raise ``SecondFactorLocked`` (a code, on a locked account) or ``SignInLocked``
        (the account or the address is blocked)."""
        if self.what == "mfa" and self.account is not None:
            refuse_if_second_factor_locked(self.session, self.account, now=self.now)
        try:
            throttle.check(self.session, keys=self.keys, now=self.now)
        except SignInLocked:
            metrics.sign_in_throttled(self.what)
            events.record(
                self.session,
                ATTEMPTS[self.what][0],
                account=self.account,
                outcome=Outcome.REFUSED,
                now=self.now,
            )
            raise

    def fail(self, account: Account | None, error: SignInRefused) -> NoReturn:
        """Count the failure, then raise ``error``."""
        metrics.sign_in_failed(self.what)
        until = throttle.record_failure(
            self.session, settings=self.settings, keys=self.keys, now=self.now
        )
        if account is not None:
            account.failed_logins = (account.failed_logins or 0) + 1
            if until is not None:
                account.locked_until = until
                # Recorded and sent from the delivery thread after the commit: this
                # answer does the same work, in the same time, whether or not the
                # address has an account.
                send_later(
                    session=self.session,
                    settings=self.settings,
                    account_id=account.id,
                    template=THROTTLED_TEMPLATE,
                    now=self.now,
                )
            if self.what == "mfa":
                _count_code_failure(self.session, self.settings, account, now=self.now)
        events.record(
            self.session,
            ATTEMPTS[self.what][1],
            account=account,
            outcome=Outcome.REFUSED,
            now=self.now,
        )
        raise error

    def succeed(self, account: Account) -> None:
        """Forget the account's failures (the address keeps its count: one valid
        account must not let an address reset its counter between guesses). Only a
        right code forgets wrong codes: a right password must not give a thief who has
        it a fresh allowance of codes."""
        throttle.clear(self.session, self.keys.account)
        account.failed_logins = 0
        account.locked_until = None
        if self.what == "mfa" and account.mfa_failures:
            account.mfa_failures = 0


def second_factor_locked(session: Session, account: Account) -> bool:
    """Whether ``account`` is locked for wrong codes, as the database says now (another
    process may have locked it since the account was loaded)."""
    locked = session.scalar(select(Account.mfa_locked_at).where(Account.id == account.id))
    return locked is not None


def refuse_if_second_factor_locked(session: Session, account: Account, *, now: datetime) -> None:
    """Raise ``SecondFactorLocked`` (recording the refusal) if ``account`` is locked
    for wrong codes."""
    if second_factor_locked(session, account):
        events.record(
            session, Tag.ACCOUNT_MFA_LOCKED, account=account, outcome=Outcome.REFUSED, now=now
        )
        raise SecondFactorLocked()


def _count_code_failure(
    session: Session, settings: Settings, account: Account, *, now: datetime
) -> None:
    """Count a wrong code on the account, atomically (two processes guessing at once
    cannot lose a count); lock the account and email its owner once, by whichever
    request reaches the limit first."""
    failures = session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(mfa_failures=Account.mfa_failures + 1)
        .returning(Account.mfa_failures)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(account, "mfa_failures", failures)
    if failures < settings.mfa_failures_per_account:
        return
    locked = session.execute(
        update(Account)
        .where(Account.id == account.id, Account.mfa_locked_at.is_(None))
        .values(mfa_locked_at=now)
        .returning(Account.id)
        .execution_options(synchronize_session=False)
    ).first()
    if locked is None:
        return  # locked already (by this count or another process's): one email
    set_committed_value(account, "mfa_locked_at", now)
    end_sessions_of(session=session, account_id=account.id, now=now, reason="second-factor-locked")
    events.record(session, Tag.ACCOUNT_LOCK_SET, account=account, now=now)
    send(session=session, settings=settings, account=account, template=LOCKED_TEMPLATE, now=now)


def sign_in(
    *,
    session: Session,
    settings: Settings,
    email: str,
    password: str,
    address: str,
    now: datetime,
) -> Issued:
    """Check ``password`` for ``email`` and open a session (full, or waiting for the
    second factor). Raises ``SignInLocked``, ``InvalidCredentials``, ``AccountInactive``."""
    email = login_email(email)
    attempt = Attempt(
        session=session,
        settings=settings,
        email_index=email_index(session, email),
        address=address,
        now=now,
        what="signin",
    )
    attempt.check()
    refuse_if_unwrap_budget_spent(session)
    account = unsafe_account_by_email(session=session, email=email)
    stored = account.password_hash if account is not None else None
    if not passwords.verify(stored, password) or account is None or stored is None:
        attempt.fail(account, InvalidCredentials())
    if account.status is not AccountStatus.ACTIVE:
        raise AccountInactive(_n("this account is disabled: contact support"))
    refuse_if_second_factor_locked(session, account, now=now)
    attempt.succeed(account)
    events.record(session, Tag.ACCOUNT_SIGNIN_PASSWORD_ACCEPTED, account=account, now=now)
    if passwords.needs_rehash(stored):
        account.password_hash = passwords.hash_password(password)
    if mfa_required(account):
        return _pending_session(session=session, settings=settings, account=account, now=now)
    return full_session(
        session=session, settings=settings, account=account, factor_passed=False, now=now
    )


def refuse_if_contained(*, session: Session, guard: Guard | None, account: Account) -> None:
    """Raise the guard's ``Contained`` if ``account`` is contained: the check
    ``api.deps.act_as`` makes before any principal exists, made here for the steps a
    session takes before it has one (completing or setting up its second factor), so
    that a contained account gains neither a full session nor a second factor, through
    the API or the pages alike. The guard's state is asked, not the account's status:
    a containment holds for every process from the moment it is marked, before the
    account is disabled and its sessions ended."""
    if guard is not None:
        guard.ensure_not_contained(account.id, session=session)


def complete_second_factor(
    *,
    session: Session,
    settings: Settings,
    guard: Guard | None,
    resolved: Resolved,
    code: str,
    address: str,
    now: datetime,
) -> Issued:
    """Check a TOTP or recovery code for a session waiting for it; on success the
    session is ended and a full one (new token) is returned. A contained account is
    refused before any code is looked at. Raises ``Contained``,
    ``SessionAlreadyComplete``, ``SecondFactorNotSetUp``, ``SignInLocked``, ``InvalidCode``."""
    account = resolved.account
    refuse_if_contained(session=session, guard=guard, account=account)
    if resolved.auth_session.mfa_passed:
        raise SessionAlreadyComplete()
    if not account.totp_enabled:
        raise SecondFactorNotSetUp()
    attempt = Attempt.on(
        account, session=session, settings=settings, address=address, now=now, what="mfa"
    )
    attempt.check()
    proof = factors.proved_by(account, code, now=now)
    if proof is None:
        attempt.fail(account, InvalidCode())
    attempt.succeed(account)
    events.record(session, Tag.ACCOUNT_MFA_PASSED, account=account, now=now)
    if proof == "recovery":
        send(
            session=session,
            settings=settings,
            account=account,
            template=RECOVERY_USED_TEMPLATE,
            now=now,
        )
    return replace_with_full_session(session=session, settings=settings, resolved=resolved, now=now)


def check_code(
    *,
    session: Session,
    settings: Settings,
    account: Account,
    code: str,
    address: str,
    now: datetime,
) -> None:
    """A throttled check of a second-factor code outside sign-in (recovery codes,
    disabling TOTP, password reset); spends the code on success."""
    attempt = Attempt.on(
        account, session=session, settings=settings, address=address, now=now, what="mfa"
    )
    attempt.check()
    if not factors.verify_code(account, code, now=now):
        attempt.fail(account, InvalidCode())


def check_password(
    *,
    session: Session,
    settings: Settings,
    account: Account,
    password: str,
    address: str,
    now: datetime,
) -> None:
    """A throttled check of the account's current password (e.g. before changing it)."""
    attempt = Attempt.on(
        account, session=session, settings=settings, address=address, now=now, what="password"
    )
    attempt.check()
    if not passwords.verify(account.password_hash, password) or account.password_hash is None:
        attempt.fail(account, InvalidCredentials())


def reauthenticate(
    *,
    session: Session,
    settings: Settings,
    account: Account,
    password: str,
    code: str | None,
    address: str,
    now: datetime,
) -> None:
    """The holder of a session proves again that they own ``account``, before a step
    that cannot be undone (deleting the account): its password, then, when its second
    factor is on, a code (TOTP or recovery, spent on success). Each is checked and
    counted as a sign-in's (:func:`check_password`, :func:`check_code`: the same
    limiters, the same locks), so a session alone, left open or stolen, is not enough,
    and guessing through this step locks the account as guessing at sign-in does. A
    missing code is a wrong one. Raises ``InvalidCredentials``, ``InvalidCode``,
    ``SignInLocked``, ``SecondFactorLocked``."""
    check_password(
        session=session,
        settings=settings,
        account=account,
        password=password,
        address=address,
        now=now,
    )
    if account.totp_enabled:
        check_code(
            session=session,
            settings=settings,
            account=account,
            code=(code or "").strip(),
            address=address,
            now=now,
        )


def _pending_session(
    *, session: Session, settings: Settings, account: Account, now: datetime
) -> Issued:
    token, record = create_session(
        session=session, settings=settings, account=account, mfa_passed=False, now=now
    )
    record.absolute_expires_at = min(record.absolute_expires_at, now + PENDING_LIFETIME)
    record.idle_expires_at = min(record.idle_expires_at, record.absolute_expires_at)
    return Issued(token, record, mfa_required=True, mfa_setup_required=not account.totp_enabled)


def full_session(
    *, session: Session, settings: Settings, account: Account, factor_passed: bool, now: datetime
) -> Issued:
    """A usable session. Only call it with ``factor_passed`` once the second factor was
    checked in this request, or without it for an account that needs none (a session
    without the factor is refused by ``principal_for`` if the account requires one)."""
    token, record = create_session(
        session=session, settings=settings, account=account, mfa_passed=factor_passed, now=now
    )
    account.last_login_at = now
    events.record(session, Tag.ACCOUNT_SESSION_OPENED, account=account, now=now)
    return Issued(token, record, mfa_required=False, mfa_setup_required=False)


def replace_with_full_session(
    *, session: Session, settings: Settings, resolved: Resolved, now: datetime
) -> Issued:
    """End ``resolved``'s session and open a full one, second factor passed: call it
    only right after checking the factor. A session that gains its second factor gets a
    new token (the one that travelled before it did is dead)."""
    end_session(
        session=session, session_id=resolved.auth_session.id, now=now, reason="second-factor"
    )
    return full_session(
        session=session, settings=settings, account=resolved.account, factor_passed=True, now=now
    )
