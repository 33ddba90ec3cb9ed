"""Accounts: creation, email verification, password reset and change, TOTP enrolment.

Keyword-only arguments; nothing here commits. Guarantees:

- registration and password-reset requests do the same work and give the same
  answer whether or not an account exists: an existing address receives an email
  (a reset link) instead of the caller learning that it exists;
- recovery never relies on what a breach leaks (name, birth date, NIR, email, phone):
  it takes a single-use link sent to the address *and*, for an account with a second
  factor, a code from it; staff accounts are recovered by an administrator only
  (``identity/admin.py``);
- a password change or reset, and a second-factor change, end the account's other
  sessions.

Patients' credentials are sealed under the patient's data key (crypto-shredding a
patient erases their login too); staff credentials under the account's own key.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.audit.recorder import recorder_of
from hippocrate.config import Settings
from hippocrate.db.sealed import vault_of
from hippocrate.i18n import _n, term
from hippocrate.identifiers import normalise_email
from hippocrate.identity import events, factors, passwords, throttle, tokens
from hippocrate.identity.errors import (
    AccountActionRefused,
    CodeRequired,
    DuplicateAccount,
    InvalidCode,
    InvalidLinkToken,
    SecondFactorAlreadySetUp,
    SecondFactorMandatory,
    SecondFactorNotSetUp,
)
from hippocrate.identity.models import (
    Account,
    AccountStatus,
    Practitioner,
    Role,
    TokenPurpose,
)
from hippocrate.identity.sessions import (
    Resolved,
    end_sessions_of,
    mfa_required,
    unsafe_get_account,
)
from hippocrate.identity.signin import (
    Issued,
    check_code,
    check_password,
    email_index,
    login_email,
    reauthenticate,
    refuse_if_contained,
    replace_with_full_session,
    unsafe_account_by_email,
)
from hippocrate.notify.service import (
    send,
    send_queued,
    unsafe_account_to_notify,
    unsafe_queued,
)
from hippocrate.notify.templates import token_link
from hippocrate.patients.errors import DuplicatePatient
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.service import (
    check_identity,
    create_patient,
    shred_patient,
    unsafe_get_patient,
    unsafe_settle_nir,
)
from hippocrate.tags import Tag
from hippocrate.vault import DecryptionError

if TYPE_CHECKING:
    from hippocrate.guard.service import Guard

_EMAILED_TOKENS = {
    TokenPurpose.VERIFY_EMAIL: ("verify_email", tokens.VERIFY_EMAIL_LIFETIME),
    TokenPurpose.RESET_PASSWORD: ("reset_password", tokens.RESET_PASSWORD_LIFETIME),
}


def _email_token(
    *,
    session: Session,
    settings: Settings,
    account: Account,
    purpose: TokenPurpose,
    now: datetime,
    invitation: bool = False,
) -> None:
    """Issue a single-use token for ``purpose`` and email its link to the account (an
    imported account's first one is an invitation: its own text, a longer life)."""
    template, lifetime = _EMAILED_TOKENS[purpose]
    if invitation:
        template, lifetime = INVITATION_TEMPLATE, tokens.INVITATION_LIFETIME
    token, _ = tokens.issue(
        session=session, account_id=account.id, purpose=purpose, lifetime=lifetime, now=now
    )
    send(
        session=session,
        settings=settings,
        account=account,
        template=template,
        now=now,
        links={"link": token_link(template=template, token=token, public_url=settings.public_url)},
    )


# -- creation -------------------------------------------------------------------------


def _new_account(
    *,
    role: Role,
    email: str,
    status: AccountStatus,
    now: datetime,
    owner_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    password: str | None = None,
    totp_secret: str | None = None,
) -> Account:
    account_id = uuid.uuid4()
    account = Account(
        id=account_id,
        role=role,
        status=status,
        owner_id=owner_id or account_id,
        patient_id=patient_id,
        created_at=now,
        updated_at=now,
        failed_logins=0,
        totp_enabled=totp_secret is not None,
    )
    account.email = email
    if password is not None:
        account.password_hash = passwords.hash_password(password)
    if totp_secret is not None:
        account.totp_secret = totp_secret
        account.recovery_codes = []
    return account


def _check_identity(data: PatientCreate) -> None:
    """``create_patient``'s consistency check, run before any lookup: a refusal that
    came only for new addresses would tell which addresses have an account."""
    check_identity(data)


def register_patient(
    *, session: Session, settings: Settings, data: PatientCreate, password: str, now: datetime
) -> None:
    """A patient registers: a pending account, and a verification link by email.

    Returns nothing, on purpose: if the address already has an account (not a pending
    one), its owner is sent a password-reset link instead (staff and disabled
    accounts: nothing), and the caller cannot tell these apart. A pending registration
    holds nothing: another registration of the same address coexists with it (each
    gets its own link; the first verified wins, :func:`verify_email`), and its NIR is
    neither checked nor held until the address is verified. Signing in to a pending
    account answers like a wrong password (``signin.unsafe_account_by_email`` does not
    find it), so the sign-in after a registration says nothing of the address's past.
    Raises ``WeakPassword``, ``InconsistentIdentity`` (about the input only).
    """
    passwords.check_policy(password, email=data.email)
    _check_identity(data)
    # Paid on every path, and before the first query: the unit's database connection is
    # only taken once the hash is made, so a wait for a hashing slot never holds one.
    password_hash = passwords.hash_password(password)
    existing = unsafe_account_by_email(session=session, email=data.email)
    if existing is not None:
        send_reset_link(session=session, settings=settings, account=existing, now=now)
        return
    try:
        patient = create_patient(session=session, data=data, pending=True)
    except DuplicatePatient:
        return  # a patient without an account has the address (a seeded or honeytoken one)
    account = _new_account(
        role=Role.PATIENT,
        email=data.email,
        status=AccountStatus.PENDING,
        owner_id=patient.id,
        patient_id=patient.id,
        now=now,
    )
    account.password_hash = password_hash
    session.add(account)
    session.flush()
    _email_token(
        session=session,
        settings=settings,
        account=account,
        purpose=TokenPurpose.VERIFY_EMAIL,
        now=now,
    )


def _patient_with_account(
    *,
    session: Session,
    data: PatientCreate,
    now: datetime,
    password_hash: str,
    totp_secret: str | None = None,
) -> Account:
    """The patient record and its active account, holding address and NIR (the part
    seeding and imports share). Raises ``DuplicateAccount``, ``DuplicatePatient``,
    ``InconsistentIdentity`` before anything is written."""
    if unsafe_account_by_email(session=session, email=data.email) is not None:
        raise DuplicateAccount("email address")
    patient = create_patient(session=session, data=data)
    account = _new_account(
        role=Role.PATIENT,
        email=data.email,
        status=AccountStatus.ACTIVE,
        owner_id=patient.id,
        patient_id=patient.id,
        totp_secret=totp_secret,
        now=now,
    )
    account.password_hash = password_hash
    session.add(account)
    session.flush()
    return account


def create_patient_account(
    *,
    session: Session,
    data: PatientCreate,
    password: str,
    now: datetime,
    totp_secret: str | None = None,
) -> Account:
    """A patient with an active, verified account (seeding: demo, tests); no email.
    Raises ``DuplicateAccount``, ``DuplicatePatient``, ``WeakPassword``."""
    passwords.check_policy(password, email=data.email)
    account = _patient_with_account(
        session=session,
        data=data,
        now=now,
        password_hash=passwords.hash_password(password),
        totp_secret=totp_secret,
    )
    account.email_verified_at = now
    return account


INVITATION_TEMPLATE = "invitation"
"""The email that invites an imported patient to choose a password (docs/INTEROP.md)."""


def invite_imported_patient(
    *, session: Session, settings: Settings, data: PatientCreate, now: datetime
) -> Account:
    """A patient brought in from another platform: the record, with its NIR held (the
    source knew its owner), and an account that cannot sign in until its owner sets a
    password with the invitation emailed to the address. Nobody is given a password,
    so a leaked identity is not an account; completing the link proves the address and
    activates the account (:func:`complete_password_reset`). ``hippocrate import``
    writes whole batches of these itself (``interop.bulk``) and queues their invitations
    for :func:`send_invitations`; this one sends its invitation at once.

    The account stores a placeholder password hash (``passwords.placeholder_hash``):
    in a copy of the database it looks like any patient's sealed hash, and no password
    matches it (``check_password`` refuses it like a wrong password).
    Raises ``DuplicateAccount``, ``DuplicatePatient``, ``InconsistentIdentity``, before
    anything is written."""
    # Active, not pending: the record holds its address and NIR like any verified one
    # (a pending registration holds nothing).
    account = _patient_with_account(
        session=session, data=data, now=now, password_hash=passwords.placeholder_hash()
    )
    _email_token(
        session=session,
        settings=settings,
        account=account,
        purpose=TokenPurpose.RESET_PASSWORD,
        now=now,
        invitation=True,
    )
    return account


def send_invitations(*, session: Session, settings: Settings, now: datetime, limit: int) -> int:
    """The delivery worker of imported patients' invitations: up to ``limit`` queued
    ones (recorded by an import, not sent yet), each with a new single-use link that
    lives ``tokens.INVITATION_LIFETIME`` from now, delivered once the caller's unit of
    work commits. Returns how many it took. An account that is no longer active
    (deleted, disabled) gets nothing and its invitation is marked failed. On
    PostgreSQL the queued rows are locked, skipping those another worker holds."""
    queued = unsafe_queued(INVITATION_TEMPLATE).limit(limit).with_for_update(skip_locked=True)
    records = list(session.scalars(queued))
    for record in records:
        account = unsafe_account_to_notify(session=session, account_id=record.account_id)
        if account is None or account.status is not AccountStatus.ACTIVE:
            record.failed_at = now
            continue
        token, _ = tokens.issue(
            session=session,
            account_id=account.id,
            purpose=TokenPurpose.RESET_PASSWORD,
            lifetime=tokens.INVITATION_LIFETIME,
            now=now,
        )
        link = token_link(template=INVITATION_TEMPLATE, token=token, public_url=settings.public_url)
        send_queued(
            session=session,
            settings=settings,
            record=record,
            account=account,
            now=now,
            links={"link": link},
        )
    return len(records)


def create_staff_account(
    *,
    session: Session,
    role: Role,
    email: str,
    now: datetime,
    password: str | None = None,
    totp_secret: str | None = None,
) -> Account:
    """A support, dpo or admin account (practitioners: :func:`create_practitioner`).

    Without ``password`` the account cannot sign in until its holder sets one with a
    setup token (:func:`issue_setup_token`); without ``totp_secret`` its first session
    can only set up TOTP. Raises ``DuplicateAccount``, ``WeakPassword``,
    ``AccountActionRefused`` (not a staff role), ``InvalidEmail``.
    """
    if role not in (Role.SUPPORT, Role.DPO, Role.ADMIN):
        raise AccountActionRefused(
            _n("a {role} account is not created this way"), role=term(role.value)
        )
    return _staff(
        session=session, role=role, email=email, password=password, totp=totp_secret, now=now
    )


def _staff(
    *,
    session: Session,
    role: Role,
    email: str,
    password: str | None,
    totp: str | None,
    now: datetime,
) -> Account:
    email = normalise_email(email)
    if password is not None:
        passwords.check_policy(password, email=email)
    if unsafe_account_by_email(session=session, email=email) is not None:
        raise DuplicateAccount("email address")
    account = _new_account(
        role=role,
        email=email,
        status=AccountStatus.ACTIVE,
        password=password,
        totp_secret=totp,
        now=now,
    )
    session.add(account)
    session.flush()
    return account


def unsafe_practitioner_by_rpps(*, session: Session, rpps: str) -> Practitioner | None:
    """The practitioner whose RPPS number is ``rpps``, if any: unsafe, it skips the
    access policy. Only for enrolment's duplicate check, by an admin who gives the
    number and learns only whether it is taken."""
    index = vault_of(session).blind_index("rpps", rpps)
    for candidate in session.scalars(
        select(Practitioner).where(Practitioner.rpps_index == index)
    ).all():
        try:
            if candidate.rpps == rpps:
                return candidate
        except DecryptionError:
            continue
    return None


def create_practitioner(
    *,
    session: Session,
    email: str,
    rpps: str,
    specialty: str,
    given_names: str,
    family_name: str,
    now: datetime,
    password: str | None = None,
    totp_secret: str | None = None,
) -> tuple[Account, Practitioner]:
    """A practitioner's account and professional identity (RPPS, specialty, names,
    sealed under the account's own key). Same options as :func:`create_staff_account`.
    Raises ``DuplicateAccount`` (email or RPPS), ``WeakPassword``, ``InvalidEmail``."""
    if unsafe_practitioner_by_rpps(session=session, rpps=rpps) is not None:
        raise DuplicateAccount("RPPS number")
    account = _staff(
        session=session,
        role=Role.PRACTITIONER,
        email=email,
        password=password,
        totp=totp_secret,
        now=now,
    )
    practitioner = Practitioner(
        account_id=account.id, owner_id=account.owner_id, specialty=specialty
    )
    practitioner.rpps = rpps
    practitioner.given_names = given_names
    practitioner.family_name = family_name
    session.add(practitioner)
    session.flush()
    return account, practitioner


def issue_setup_token(*, session: Session, account: Account, now: datetime) -> tuple[str, datetime]:
    """A single-use token with which a staff member sets their password (through
    ``POST /api/v1/auth/password-reset/complete``); handed over by the administrator,
    valid 72 hours. Returns the token (shown once) and its expiry."""
    token, record = tokens.issue(
        session=session,
        account_id=account.id,
        purpose=TokenPurpose.RESET_PASSWORD,
        lifetime=tokens.STAFF_SETUP_LIFETIME,
        now=now,
    )
    return token, record.expires_at


# -- email verification and password reset ------------------------------------------


def verify_email(*, session: Session, token: str, now: datetime) -> None:
    """Confirm an address with the token sent to it; a pending account becomes active.

    Verifying a registration settles what it claimed, now that the address is proven:
    other pending registrations of the address are withdrawn (their records shredded,
    their links dead), and if another patient already holds its NIR the NIR is left off
    this record and the conflict is recorded in both patients' histories
    (``account:nir:withheld``), never said to the registrant. Raises
    ``InvalidLinkToken`` (also when the address got an account since: someone verified
    it first)."""
    record = tokens.find_usable(
        session=session, token=token, purpose=TokenPurpose.VERIFY_EMAIL, now=now
    )
    account = unsafe_get_account(session=session, account_id=record.account_id)
    if account is None or account.status not in (AccountStatus.PENDING, AccountStatus.ACTIVE):
        raise InvalidLinkToken()
    if account.status is AccountStatus.PENDING:
        _settle_registration(session=session, account=account, now=now)
        account.status = AccountStatus.ACTIVE
    tokens.consume(record, now)
    account.email_verified_at = now
    events.record(session, Tag.ACCOUNT_EMAIL_VERIFIED, account=account, now=now)


def unsafe_accounts_by_email(*, session: Session, email: str) -> list[Account]:
    """Every account but deleted ones whose login email is ``email``: at most one that
    is not pending, and any number of pending registrations of the address.

    Unsafe, it skips the access policy: verifying a registration must find the other
    registrations of its address before there is a principal; nothing it opens is shown.
    """
    index = email_index(session, email)
    found = []
    for candidate in session.scalars(
        select(Account).where(Account.email_index == index, Account.status != AccountStatus.DELETED)
    ).all():
        try:
            if candidate.email == email:
                found.append(candidate)
        except DecryptionError:
            continue
    return found


def _settle_registration(*, session: Session, account: Account, now: datetime) -> None:
    email = account.email
    if email is None:
        raise InvalidLinkToken()
    others = [
        other
        for other in unsafe_accounts_by_email(session=session, email=email)
        if other.id != account.id
    ]
    if any(other.status is not AccountStatus.PENDING for other in others):
        raise InvalidLinkToken()
    for other in others:
        _withdraw(session=session, account=other, now=now)
    if account.patient_id is None:
        return
    patient = unsafe_get_patient(session=session, patient_id=account.patient_id)
    holder = unsafe_settle_nir(session=session, patient=patient)
    if holder is None:
        return
    # Support and both patients see it in the trail; the registrant is told nothing
    # (their answer and their record show no NIR, as if none had been given).
    events.record(session, Tag.ACCOUNT_NIR_WITHHELD, account=account, now=now)
    recorder = recorder_of(session)
    if recorder is not None:
        recorder.event(
            Tag.ACCOUNT_NIR_WITHHELD,
            patient=holder.id,
            resources=(f"account:{account.id}",),
            now=now,
        )


def _withdraw(*, session: Session, account: Account, now: datetime) -> None:
    """Withdraw a pending registration whose address another one just proved: the
    account is deleted and its patient record shredded (it was never verified, so it
    holds nothing of the address's owner)."""
    events.record(session, Tag.ACCOUNT_REGISTRATION_WITHDRAWN, account=account, now=now)
    account.status = AccountStatus.DELETED
    account.email_index = None
    session.flush()
    if account.patient_id is not None:
        shred_patient(session=session, patient_id=account.patient_id)


def send_reset_link(
    *, session: Session, settings: Settings, account: Account, now: datetime
) -> bool:
    """Email ``account`` a password-reset link, if it may recover by email (a patient,
    pending or active) and none was sent in the last minute. Returns whether it did."""
    if account.role is not Role.PATIENT or account.status not in (
        AccountStatus.PENDING,
        AccountStatus.ACTIVE,
    ):
        return False
    if tokens.sent_recently(
        session=session, account_id=account.id, purpose=TokenPurpose.RESET_PASSWORD, now=now
    ):
        return False
    _email_token(
        session=session,
        settings=settings,
        account=account,
        purpose=TokenPurpose.RESET_PASSWORD,
        now=now,
    )
    return True


def request_password_reset(
    *, session: Session, settings: Settings, email: str, now: datetime
) -> None:
    """Send a reset link if ``email`` belongs to a patient account; returns nothing, so
    the caller cannot tell whether it did."""
    account = unsafe_account_by_email(session=session, email=login_email(email))
    if account is not None:
        send_reset_link(session=session, settings=settings, account=account, now=now)


def complete_password_reset(
    *,
    session: Session,
    settings: Settings,
    token: str,
    password: str,
    code: str | None,
    address: str,
    now: datetime,
) -> None:
    """Set a new password with a reset (or staff setup) token, plus a second-factor
    code if the account has one. Ends every session of the account.

    Raises ``InvalidLinkToken``, ``WeakPassword``, ``CodeRequired``, and, counted
    against the account like a failed sign-in, ``InvalidCode`` and ``SignInLocked``.
    A wrong code does not spend the token.
    """
    # The hash first, before the first query takes the unit's database connection: a
    # wait for a hashing slot never holds one (the route admits the request first).
    passwords.check_policy(password)
    password_hash = passwords.hash_password(password)
    record = tokens.find_usable(
        session=session, token=token, purpose=TokenPurpose.RESET_PASSWORD, now=now
    )
    account = unsafe_get_account(session=session, account_id=record.account_id)
    if account is None or account.status not in (AccountStatus.PENDING, AccountStatus.ACTIVE):
        raise InvalidLinkToken()
    passwords.check_policy(password, email=account.email)
    if account.totp_enabled:
        if not code:
            raise CodeRequired()
        check_code(
            session=session,
            settings=settings,
            account=account,
            code=code,
            address=address,
            now=now,
        )
    account.password_hash = password_hash
    tokens.consume(record, now)
    end_sessions_of(session=session, account_id=account.id, now=now, reason="password-reset")
    unlock(session=session, account=account)
    if account.status is AccountStatus.ACTIVE:
        # A password replaced, not a first one chosen (a pending account's activation).
        security_notice(session=session, settings=settings, account=account, now=now)
    if account.status is AccountStatus.PENDING:
        account.status = AccountStatus.ACTIVE
    if account.email_verified_at is None:
        # Completing a link sent to the address proves it, like the verification link
        # (a pending registration's, or an imported patient's invitation).
        account.email_verified_at = now
    events.record(session, Tag.ACCOUNT_PASSWORD_RESET, account=account, now=now)


def unlock(*, session: Session, account: Account) -> None:
    """Forget the account's sign-in and second-factor failures and lift its locks (the
    second-factor lock too: only an administrator's unlock or enable, or a reset that
    gave a right code, gets here)."""
    if account.email_index is not None:
        throttle.clear(session, throttle.account_key(session, account.email_index))
    account.failed_logins = 0
    account.locked_until = None
    account.mfa_failures = 0
    account.mfa_locked_at = None


# -- signed-in changes ----------------------------------------------------------------------


def change_password(
    *,
    session: Session,
    settings: Settings,
    resolved: Resolved,
    current_password: str,
    new_password: str,
    address: str,
    now: datetime,
) -> None:
    """Change the password (the current one is checked, throttled) and end every other
    session of the account. Raises ``InvalidCredentials``, ``SignInLocked``, ``WeakPassword``."""
    account = resolved.account
    check_password(
        session=session,
        settings=settings,
        account=account,
        password=current_password,
        address=address,
        now=now,
    )
    passwords.check_policy(new_password, email=account.email)
    account.password_hash = passwords.hash_password(new_password)
    end_sessions_of(
        session=session,
        account_id=account.id,
        now=now,
        reason="password-changed",
        keep=resolved.auth_session.id,
    )
    events.record(session, Tag.ACCOUNT_PASSWORD_CHANGED, account=account, now=now)
    security_notice(session=session, settings=settings, account=account, now=now)


def begin_totp(*, session: Session, guard: Guard | None, account: Account) -> tuple[str, str]:
    """A new TOTP secret for ``account`` (not enabled until confirmed with a code);
    returns the secret and its ``otpauth://`` URI. Raises ``Contained`` (the guard
    contained the account: no second factor is set up for it),
    ``SecondFactorAlreadySetUp``."""
    refuse_if_contained(session=session, guard=guard, account=account)
    if account.totp_enabled:
        raise SecondFactorAlreadySetUp()
    secret = factors.new_secret()
    account.totp_secret = secret
    account.totp_last_step = None
    return secret, factors.provisioning_uri(secret, account.email or str(account.id))


def confirm_totp(
    *,
    session: Session,
    settings: Settings,
    guard: Guard | None,
    resolved: Resolved,
    code: str,
    password: str | None,
    address: str,
    now: datetime,
) -> tuple[list[str], Issued]:
    """Enable TOTP once a code from the app proves it was set up; returns the recovery
    codes (shown once) and a full session replacing the caller's. Every other session
    of the account ends. A contained account is refused before any password or code is
    looked at.

    A full session (a signed-in account) gives its password too, checked and counted
    as :func:`signin.reauthenticate` does (the sign-in's limiters and locks): turned on
    with a stolen session, the thief's authenticator would lock the holder out for good
    (their password then needs the thief's code, and so does a reset link) and end the
    holder's sessions. A staff member's pending first-sign-in session (its second
    factor still to set up) gave the password a moment ago, at this sign-in, and needs
    none. A missing password is a wrong one. Raises ``Contained``,
    ``SecondFactorAlreadySetUp``, ``SecondFactorNotSetUp``, ``InvalidCredentials``,
    ``SignInLocked``, ``InvalidCode``."""
    account = resolved.account
    refuse_if_contained(session=session, guard=guard, account=account)
    if account.totp_enabled:
        raise SecondFactorAlreadySetUp()
    secret = account.totp_secret
    if secret is None:
        raise SecondFactorNotSetUp()
    pending_setup = not resolved.auth_session.mfa_passed and mfa_required(account)
    if not pending_setup:
        reauthenticate(
            session=session,
            settings=settings,
            account=account,
            password=password or "",
            code=None,
            address=address,
            now=now,
        )
    step = factors.totp_step(secret, code.strip(), now=now, last_step=None)
    if step is None:
        raise InvalidCode()
    account.totp_enabled = True
    account.totp_last_step = step
    shown, digests = factors.new_recovery_codes()
    account.recovery_codes = digests
    end_sessions_of(
        session=session,
        account_id=account.id,
        now=now,
        reason="second-factor-changed",
        keep=resolved.auth_session.id,
    )
    events.record(session, Tag.ACCOUNT_MFA_ENABLED, account=account, now=now)
    security_notice(session=session, settings=settings, account=account, now=now)
    issued = replace_with_full_session(
        session=session, settings=settings, resolved=resolved, now=now
    )
    return shown, issued


def regenerate_recovery_codes(
    *,
    session: Session,
    settings: Settings,
    account: Account,
    code: str,
    address: str,
    now: datetime,
) -> list[str]:
    """New recovery codes (the old ones stop working), after a second-factor code.
    Raises ``SecondFactorNotSetUp``, ``InvalidCode``, ``SignInLocked``."""
    if not account.totp_enabled:
        raise SecondFactorNotSetUp()
    check_code(
        session=session, settings=settings, account=account, code=code, address=address, now=now
    )
    shown, digests = factors.new_recovery_codes()
    account.recovery_codes = digests
    events.record(session, Tag.ACCOUNT_RECOVERY_CODES_REGENERATED, account=account, now=now)
    security_notice(session=session, settings=settings, account=account, now=now)
    return shown


def disable_totp(
    *,
    session: Session,
    settings: Settings,
    resolved: Resolved,
    password: str,
    code: str,
    address: str,
    now: datetime,
) -> None:
    """A patient turns their second factor off (password and code required); staff
    cannot. Ends every other session. Raises ``SecondFactorMandatory``,
    ``SecondFactorNotSetUp``, ``InvalidCredentials``, ``InvalidCode``, ``SignInLocked``."""
    account = resolved.account
    if account.role.is_staff:
        raise SecondFactorMandatory()
    if not account.totp_enabled:
        raise SecondFactorNotSetUp()
    check_password(
        session=session,
        settings=settings,
        account=account,
        password=password,
        address=address,
        now=now,
    )
    check_code(
        session=session, settings=settings, account=account, code=code, address=address, now=now
    )
    clear_second_factor(account)
    end_sessions_of(
        session=session,
        account_id=account.id,
        now=now,
        reason="second-factor-changed",
        keep=resolved.auth_session.id,
    )
    events.record(session, Tag.ACCOUNT_MFA_DISABLED, account=account, now=now)
    security_notice(session=session, settings=settings, account=account, now=now)


SECURITY_TEMPLATE = "security_alert"
"""The email an account's owner receives when its password, second factor or recovery
codes change (docs/NOTIFICATIONS.md)."""


def security_notice(
    *, session: Session, settings: Settings, account: Account, now: datetime
) -> None:
    """Tell ``account``'s owner that a security setting of their account changed: a
    fixed text (``security_alert``), delivered once the caller's unit of work commits,
    so a change that is refused or rolled back sends nothing."""
    send(session=session, settings=settings, account=account, template=SECURITY_TEMPLATE, now=now)


def clear_second_factor(account: Account) -> None:
    account.totp_enabled = False
    account.totp_secret = None
    account.totp_last_step = None
    account.recovery_codes = None
