"""Four-eyes approvals: what one administrator asks and a second one executes.

Three actions give an administrator more reach than their own guard budget, so none is
done by one administrator alone:

- releasing a principal the guard contained (an account, or a CLI operator);
- recovering a staff account (resetting its password and/or second factor);
- creating a staff account of any role (practitioner, support, dpo, administrator):
  a new practitioner reads its specialty's queue, a new account of any role starts
  with a fresh guard budget, so one stolen session must not be able to make one.

Guarantees:

- a request is recorded (``admin:approval:requested``) and every active administrator,
  the requester included, is emailed (fixed text, no health data): an administrator
  whose session was stolen learns of what is asked in their name;
- the approver is another administrator than the requester, and never the account
  acted on; a CLI operator may approve too (the command line is the server's owner);
- a request expires 24 hours after it was made (``admin:approval:expired``) and is then
  neither approved nor refused;
- a request executes at most once: the approval is a conditional ``UPDATE`` (pending,
  not expired, not the requester) and only the caller whose update changed the row
  executes it, so two administrators approving at once execute it once;
- the setup token of a recovery or of a new staff account is emailed to the account's
  own address and never returned to, nor emailed to, an administrator;
- a new staff account is created disabled (``AWAITING_APPROVAL``): nobody signs in
  to, enables, recovers or releases it before the approval; a refused or expired
  request deletes it and frees its address (and a practitioner's RPPS number);
- the requester and the approver are both emailed when it is decided.

Not guaranteed: that the approver read the reason. The trail names both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from hippocrate.access.errors import Forbidden, NotFound
from hippocrate.access.policy import get_account
from hippocrate.access.principal import Principal
from hippocrate.admin.errors import ApprovalDecided, ApprovalExpired, ApprovalPending
from hippocrate.admin.models import (
    CREATIONS,
    FourEyesAction,
    FourEyesOutcome,
    FourEyesRequest,
)
from hippocrate.audit.recorder import Actor, recorder_of
from hippocrate.config import Settings
from hippocrate.guard.errors import NotContained
from hippocrate.guard.service import Guard
from hippocrate.i18n import _n
from hippocrate.identity import admin, events
from hippocrate.identity.errors import AccountActionRefused
from hippocrate.identity.models import Account, AccountStatus, Practitioner, Role
from hippocrate.identity.service import (
    create_practitioner,
    create_staff_account,
    issue_setup_token,
    security_notice,
)
from hippocrate.notify.service import send
from hippocrate.notify.templates import token_link
from hippocrate.tags import Outcome, Tag, account_created

#: How long a request waits for a second administrator.
APPROVAL_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Decided:
    """An approved or refused request, and what its execution did."""

    request: FourEyesRequest
    sessions_ended: int = 0


# -- asking -----------------------------------------------------------------------------


def request_release(
    *,
    session: Session,
    settings: Settings,
    guard: Guard,
    actor: Principal,
    target_id: uuid.UUID,
    reason: str,
    now: datetime,
) -> FourEyesRequest:
    """Ask for the release of a contained account or CLI operator. ``NotFound`` if
    there is no such principal, ``NotContained`` if the guard did not contain it."""
    if target_id == actor.account_id:
        raise AccountActionRefused(_n("an administrator cannot release their own account"))
    try:
        guard.ensure_releasable(session, target_id)
    except LookupError:
        raise NotFound("account", target_id) from None
    return _ask(
        session=session,
        settings=settings,
        actor=actor,
        action=FourEyesAction.RELEASE,
        target_id=target_id,
        reason=reason,
        now=now,
    )


def request_recovery(
    *,
    session: Session,
    settings: Settings,
    actor: Principal,
    account_id: uuid.UUID,
    reset_password: bool,
    reset_second_factor: bool,
    now: datetime,
) -> FourEyesRequest:
    """Ask to reset a staff member's password and/or second factor (checked now, and
    again when approved)."""
    admin.check_recovery(
        session=session,
        actor=actor,
        account_id=account_id,
        reset_password=reset_password,
        reset_second_factor=reset_second_factor,
    )
    return _ask(
        session=session,
        settings=settings,
        actor=actor,
        action=FourEyesAction.RECOVERY,
        target_id=account_id,
        now=now,
        reset_password=reset_password,
        reset_second_factor=reset_second_factor,
    )


def request_staff(
    *, session: Session, settings: Settings, actor: Principal, role: Role, email: str,
    now: datetime,
) -> tuple[FourEyesRequest, Account]:  # fmt: skip
    """Ask for a new support, dpo or administrator account: created disabled, without
    a password (``AWAITING_APPROVAL``); the approval activates it and emails its setup
    link to its own address. Raises what :func:`create_staff_account` raises
    (``DuplicateAccount``, ``AccountActionRefused`` for a practitioner...)."""
    account = create_staff_account(session=session, role=role, email=email, now=now)
    return _ask_creation(session=session, settings=settings, actor=actor, account=account,
                         now=now), account  # fmt: skip


@dataclass(frozen=True)
class PractitionerIdentity:
    """What an administrator types of a new practitioner (checked by the schema)."""

    rpps: str
    specialty: str
    given_names: str
    family_name: str


def request_practitioner(
    *,
    session: Session,
    settings: Settings,
    actor: Principal,
    email: str,
    identity: PractitionerIdentity,
    now: datetime,
) -> tuple[FourEyesRequest, Account]:
    """Ask for a new practitioner, the same way as :func:`request_staff`: the account
    and its professional identity are created, the account disabled until a second
    administrator approves. Raises ``DuplicateAccount`` (email or RPPS number)."""
    account, _ = create_practitioner(
        session=session,
        email=email,
        rpps=identity.rpps,
        specialty=identity.specialty,
        given_names=identity.given_names,
        family_name=identity.family_name,
        now=now,
    )
    return _ask_creation(session=session, settings=settings, actor=actor, account=account,
                         now=now), account  # fmt: skip


def _ask_creation(
    *, session: Session, settings: Settings, actor: Principal, account: Account, now: datetime
) -> FourEyesRequest:
    account.status = AccountStatus.DISABLED
    account.disabled_reason = admin.AWAITING_APPROVAL
    return _ask(
        session=session,
        settings=settings,
        actor=actor,
        action=FourEyesAction.CREATE_STAFF,
        target_id=account.id,
        now=now,
    )


def _ask(
    *,
    session: Session,
    settings: Settings,
    actor: Principal,
    action: FourEyesAction,
    target_id: uuid.UUID,
    now: datetime,
    reason: str | None = None,
    reset_password: bool = False,
    reset_second_factor: bool = False,
) -> FourEyesRequest:
    expire_stale(session=session, now=now)
    already = session.scalar(
        select(FourEyesRequest.id).where(
            FourEyesRequest.action == action,
            FourEyesRequest.target_id == target_id,
            FourEyesRequest.outcome == FourEyesOutcome.PENDING,
        )
    )
    if already is not None:
        raise ApprovalPending(already)
    request = FourEyesRequest(
        action=action,
        target_id=target_id,
        reason=reason,
        reset_password=reset_password,
        reset_second_factor=reset_second_factor,
        requested_by=actor.account_id,
        created_at=now,
        expires_at=now + APPROVAL_LIFETIME,
        outcome=FourEyesOutcome.PENDING,
    )
    session.add(request)
    session.flush()
    _record(session, Tag.ADMIN_APPROVAL_REQUESTED, request, now=now)
    for account in unsafe_active_admins(session):
        send(session=session, settings=settings, account=account, template="approval_requested",
             now=now)  # fmt: skip
    return request


# -- reading ----------------------------------------------------------------------------


def pending_statement(*, session: Session, now: datetime) -> Select[FourEyesRequest]:
    """The requests still waiting, oldest first (those past their expiry are marked
    expired first)."""
    expire_stale(session=session, now=now)
    return (
        select(FourEyesRequest)
        .where(FourEyesRequest.outcome == FourEyesOutcome.PENDING)
        .order_by(FourEyesRequest.created_at, FourEyesRequest.id)
    )


def get_request(*, session: Session, request_id: uuid.UUID) -> FourEyesRequest:
    found = session.get(FourEyesRequest, request_id)
    if found is None:
        raise NotFound("approval", request_id)
    return found


# -- deciding ---------------------------------------------------------------------------


def approve(
    *,
    session: Session,
    settings: Settings,
    guard: Guard,
    actor: Principal,
    request_id: uuid.UUID,
    now: datetime,
) -> Decided:
    """Approve a request and execute it, once. Refuses the requester and the account
    acted on (``Forbidden``), a decided request, or one whose requester has since been
    contained or disabled (``ApprovalDecided``), and an expired one (``ApprovalExpired``,
    the expiry is recorded)."""
    request = _decidable(session=session, actor=actor, request_id=request_id, now=now)
    _requester_in_good_standing(session, guard, request)
    _claim(session, request, actor, FourEyesOutcome.APPROVED, now)
    ended = _execute(session=session, settings=settings, guard=guard, actor=actor,
                     request=request, now=now)  # fmt: skip
    _record(session, Tag.ADMIN_APPROVAL_APPROVED, request, now=now)
    unsafe_tell_both(session=session, settings=settings, request=request, now=now)
    return Decided(request, ended)


def refuse(
    *, session: Session, settings: Settings, actor: Principal, request_id: uuid.UUID, now: datetime
) -> Decided:
    """Refuse a request (another administrator than the requester, or the requester
    withdrawing it); a new staff account asked by it is then deleted."""
    request = get_request(session=session, request_id=request_id)
    if request.requested_by != actor.account_id:
        request = _decidable(session=session, actor=actor, request_id=request_id, now=now)
    else:
        _check_open(session, request, now)
    _claim(session, request, actor, FourEyesOutcome.REFUSED, now)
    if request.action in CREATIONS:
        _delete_new_account(session, request.target_id)
    _record(session, Tag.ADMIN_APPROVAL_REFUSED, request, now=now)
    unsafe_tell_both(session=session, settings=settings, request=request, now=now)
    return Decided(request)


def settle_release_requests(
    *, session: Session, actor: Principal, target_id: uuid.UUID, now: datetime
) -> None:
    """After an operator released ``target_id`` at the command line: the release
    requests waiting for it are done (approved by that operator, recorded), so none is
    left to approve later for a release that already happened."""
    waiting = session.scalars(
        select(FourEyesRequest).where(
            FourEyesRequest.action == FourEyesAction.RELEASE,
            FourEyesRequest.target_id == target_id,
            FourEyesRequest.outcome == FourEyesOutcome.PENDING,
        )
    ).all()
    for request in waiting:
        _claim(session, request, actor, FourEyesOutcome.APPROVED, now)
        _record(session, Tag.ADMIN_APPROVAL_APPROVED, request, now=now)


def expire_stale(*, session: Session, now: datetime) -> None:
    """Mark the pending requests past their expiry as expired (recorded); a new
    staff account of an expired request is deleted."""
    stale = session.scalars(
        select(FourEyesRequest).where(
            FourEyesRequest.outcome == FourEyesOutcome.PENDING,
            FourEyesRequest.expires_at <= now,
        )
    ).all()
    for request in stale:
        changed = session.execute(
            update(FourEyesRequest)
            .where(
                FourEyesRequest.id == request.id,
                FourEyesRequest.outcome == FourEyesOutcome.PENDING,
            )
            .values(outcome=FourEyesOutcome.EXPIRED, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            session.refresh(request)
            if request.action in CREATIONS:
                _delete_new_account(session, request.target_id)
            _record(session, Tag.ADMIN_APPROVAL_EXPIRED, request, now=now)


def _check_open(session: Session, request: FourEyesRequest, now: datetime) -> None:
    if request.outcome is FourEyesOutcome.PENDING and request.expires_at <= now:
        expire_stale(session=session, now=now)
        raise ApprovalExpired()
    if request.outcome is not FourEyesOutcome.PENDING:
        raise ApprovalDecided(request.outcome.value)


def _requester_in_good_standing(session: Session, guard: Guard, request: FourEyesRequest) -> None:
    """A request whose requester has since been contained or disabled is not approved:
    a stolen session asks, then is caught; what it asked must not be executed by a
    colleague who trusts the name on it. It can still be refused."""
    status = session.scalar(
        select(Account.status).where(Account.id == request.requested_by)
    )  # plaintext columns only
    contained = guard.state.contained(request.requested_by, session=session) is not None
    if contained or (status is not None and status is not AccountStatus.ACTIVE):
        raise ApprovalDecided(
            _n("the administrator who asked is contained or disabled since: refuse it")
        )


def _decidable(
    *, session: Session, actor: Principal, request_id: uuid.UUID, now: datetime
) -> FourEyesRequest:
    request = get_request(session=session, request_id=request_id)
    if request.requested_by == actor.account_id:
        raise Forbidden(_n("you asked for this: another administrator must decide it"))
    if request.target_id == actor.account_id:
        raise Forbidden(_n("this request acts on your own account: another administrator decides"))
    _check_open(session, request, now)
    return request


def _claim(
    session: Session,
    request: FourEyesRequest,
    actor: Principal,
    outcome: FourEyesOutcome,
    now: datetime,
) -> None:
    """Decide ``request`` if nobody did: one conditional UPDATE, so that of two
    administrators deciding at once (two processes), one changes the row and the
    other is refused. On PostgreSQL the second waits for the first's row lock, then
    finds the row no longer pending."""
    changed = session.execute(
        update(FourEyesRequest)
        .where(
            FourEyesRequest.id == request.id,
            FourEyesRequest.outcome == FourEyesOutcome.PENDING,
            FourEyesRequest.expires_at > now,
        )
        .values(outcome=outcome, decided_by=actor.account_id, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise ApprovalDecided(_n("decided by someone else"))
    session.refresh(request)


def _execute(
    *,
    session: Session,
    settings: Settings,
    guard: Guard,
    actor: Principal,
    request: FourEyesRequest,
    now: datetime,
) -> int:
    if request.action is FourEyesAction.RELEASE:
        try:
            guard.release(
                session,
                admin=_actor(session, actor),
                account_id=request.target_id,
                reason=request.reason or "",
            )
        except LookupError:
            raise NotFound("account", request.target_id) from None
        except NotContained:
            raise ApprovalDecided(_n("moot: the guard no longer contains this account")) from None
        return 0
    if request.action is FourEyesAction.RECOVERY:
        result = admin.recover_staff_account(
            session=session,
            actor=actor,
            account_id=request.target_id,
            reset_password=request.reset_password,
            reset_second_factor=request.reset_second_factor,
            now=now,
        )
        account = get_account(session=session, account_id=request.target_id)
        if result.setup_token is not None:
            _email_setup_link(session=session, settings=settings, account=account,
                              token=result.setup_token, now=now)  # fmt: skip
        elif request.reset_second_factor:
            # Only the factor was reset: its owner is told (with a password reset too,
            # the setup link's email tells them already).
            security_notice(session=session, settings=settings, account=account, now=now)
        return result.sessions_ended
    account = get_account(session=session, account_id=request.target_id)
    if account.disabled_reason != admin.AWAITING_APPROVAL:
        raise ApprovalDecided(_n("moot: this account no longer awaits approval"))
    account.status = AccountStatus.ACTIVE
    account.disabled_reason = None
    token, _ = issue_setup_token(session=session, account=account, now=now)
    _email_setup_link(session=session, settings=settings, account=account, token=token, now=now)
    events.record(session, account_created(account.role.value), account=account, now=now)
    return 0


def _email_setup_link(
    *, session: Session, settings: Settings, account: Account, token: str, now: datetime
) -> None:
    """The setup token goes to the account's own address only (the reset email, whose
    link sets a password once); no administrator sees it."""
    link = token_link(template="reset_password", token=token, public_url=settings.public_url)
    send(session=session, settings=settings, account=account, template="reset_password",
         now=now, links={"link": link})  # fmt: skip
    recorder = recorder_of(session)
    if recorder is not None:
        recorder.event(Tag.ACCOUNT_SETUP_LINK_SENT, resources=(f"account:{account.id}",), now=now)


def _delete_new_account(session: Session, account_id: uuid.UUID) -> None:
    """The account of a refused or expired creation request: deleted, its address
    forgotten (free for a new request), and a practitioner's professional identity
    removed (its RPPS number free again). Plaintext and sealed columns are cleared
    without opening anything."""
    deleted = session.execute(
        update(Account)
        .where(Account.id == account_id, Account.disabled_reason == admin.AWAITING_APPROVAL)
        .values(
            status=AccountStatus.DELETED,
            disabled_reason="creation not approved",
            email_sealed=None,
            email_index=None,
        )
        .execution_options(synchronize_session=False)
    )
    if deleted.rowcount == 1:  # type: ignore[attr-defined]
        session.execute(
            delete(Practitioner)
            .where(Practitioner.account_id == account_id)
            .execution_options(synchronize_session=False)
        )


def creation_details(
    session: Session, requests: list[FourEyesRequest]
) -> dict[uuid.UUID, tuple[Role, str | None]]:
    """For each creation request among ``requests``, the new account's role and, for a
    practitioner, its specialty: plaintext columns only (nothing sealed is opened), so
    that the approver knows what they approve."""
    targets = [r.target_id for r in requests if r.action in CREATIONS]
    if not targets:
        return {}
    rows = session.execute(
        select(Account.id, Account.role, Practitioner.specialty)
        .outerjoin(Practitioner, Practitioner.account_id == Account.id)
        .where(Account.id.in_(targets))
    ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def unsafe_active_admins(session: Session) -> list[Account]:
    """Every active administrator account, to email a fixed notice: unsafe, it skips the
    access policy. The platform opens their addresses to deliver ``approval_requested``
    (no name, no data, no link); whoever caused it sees no address."""
    return list(
        session.scalars(
            select(Account)
            .where(Account.role == Role.ADMIN, Account.status == AccountStatus.ACTIVE)
            .order_by(Account.created_at, Account.id)
        )
    )


def unsafe_tell_both(
    *, session: Session, settings: Settings, request: FourEyesRequest, now: datetime
) -> None:
    """Email ``approval_decided`` to the requester and the decider, when they are active
    accounts (an operator is not): unsafe, it loads their accounts without the access
    policy, to open their addresses for a fixed notice nobody else sees."""
    for account_id in dict.fromkeys((request.requested_by, request.decided_by)):
        if account_id is None:
            continue
        account = session.get(Account, account_id)
        if account is not None and account.status is AccountStatus.ACTIVE:
            send(session=session, settings=settings, account=account,
                 template="approval_decided", now=now)  # fmt: skip


def _actor(session: Session, principal: Principal) -> Actor:
    recorder = recorder_of(session)
    request_id = recorder.actor.request_id if recorder is not None else None
    return Actor(role=principal.role.value, account_id=principal.account_id, request_id=request_id)


def _record(session: Session, action: Tag, request: FourEyesRequest, *, now: datetime) -> None:
    recorder = recorder_of(session)
    if recorder is None:
        return
    resources = [
        f"approval:{request.id}",
        f"action:{request.action.value}",
        f"account:{request.target_id}",
        f"requested-by:{request.requested_by}",
    ]
    if request.decided_by is not None:
        resources.append(f"decided-by:{request.decided_by}")
    recorder.event(action, outcome=Outcome.ALLOWED, resources=tuple(resources), now=now)
