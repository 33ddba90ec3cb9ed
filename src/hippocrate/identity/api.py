"""HTTP routes of the identity domain: sign-in, registration, recovery, own account.

Three routers, by what a caller must have shown:

- ``public``: nothing (sign-in, registration, email verification, password reset);
- ``pending``: a live session, *second factor possibly not passed yet*: completing the
  second factor, logging out, and setting up TOTP, which is all a staff member without
  TOTP can do (every other route requires ``CurrentPrincipal``, which refuses such a
  session);
- ``me``: an authenticated principal, second factor passed where required.

Refusals that count failures (wrong password or code, lock) are raised like any other
error: they are ``SignInRefused`` (``commit = True``), so the request's unit of work
commits the counters recorded before them instead of rolling back, and the one problem
handler answers them (a lock with ``locked_until`` and ``Retry-After``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from sqlalchemy.orm import Session

from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import (
    DB,
    AppSettings,
    CurrentSession,
    Now,
    authenticated_router,
    get_runtime,
    public_router,
    request_id,
)
from hippocrate.breach import notices
from hippocrate.identity import service, signin
from hippocrate.identity.admission import admission, deliver_reset_link
from hippocrate.identity.schemas import (
    Accepted,
    AccountView,
    BearerToken,
    CodeIn,
    LoginIn,
    PasswordChangeIn,
    RecoveryCodes,
    RegistrationIn,
    ResetCompleteIn,
    ResetRequestIn,
    SecondFactorChallenge,
    TotpConfirmIn,
    TotpDisableIn,
    TotpEnabled,
    TotpSetup,
    VerifyEmailIn,
)
from hippocrate.identity.sessions import end_session, mfa_required
from hippocrate.patients.schemas import PatientCreate

REGISTERED = (
    "if this address can be used, an email is on its way to it: follow its link to "
    "confirm the address (or, if it already has an account, to choose a new password)"
)
RESET_REQUESTED = "if an account uses this address, an email with a link is on its way to it"


# The client's address, computed in one place (trusted proxies only: hippocrate.api.client).
Address = ClientAddress


_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong credentials or code (never says which)"},
    429: {"description": "Too many failures: blocked until `locked_until`"},
}


_LOAD: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many such requests from this address or overall (`Retry-After`)"},
    503: {"description": "The server is saturated (`Retry-After`)"},
}


def _bearer(issued: signin.Issued, db: Session) -> BearerToken:
    """The session's token, and how many security notices wait unseen in the patient's
    space (the banner the app shows at sign-in: ``GET /patients/me/notices``)."""
    return BearerToken(
        token=issued.token,
        expires_at=issued.record.absolute_expires_at,
        unseen_notices=notices.unseen_by_account(db, issued.record.account_id),
    )


# -- public -----------------------------------------------------------------------------

public = public_router(prefix="/auth", tags=["auth"])


@public.post("/login", response_model=BearerToken | SecondFactorChallenge, responses=_REFUSALS)
def login(body: LoginIn, db: DB, settings: AppSettings, clock: Now, address: Address) -> Any:
    """Sign in with an email and a password. The answer is a bearer token, or a request
    for the second factor carrying a short-lived token for ``POST /auth/mfa`` (or, for
    a staff member without TOTP yet, for ``POST /me/totp``)."""
    issued = signin.sign_in(
        session=db,
        settings=settings,
        email=body.email,
        password=body.password,
        address=address,
        now=clock,
    )
    if issued.mfa_required:
        return SecondFactorChallenge(
            mfa_setup_required=issued.mfa_setup_required,
            token=issued.token,
            expires_at=issued.record.absolute_expires_at,
        )
    return _bearer(issued, db)


@public.post("/register", status_code=202, responses=_LOAD, dependencies=[admission("register")])
def register(body: RegistrationIn, db: DB, settings: AppSettings, clock: Now) -> Accepted:
    """Register as a patient. The answer is the same whether or not the address already
    has an account; the email that follows says what to do."""
    data = PatientCreate.model_validate(body.model_dump(exclude={"password"}))
    service.register_patient(
        session=db, settings=settings, data=data, password=body.password, now=clock
    )
    return Accepted(detail=REGISTERED)


@public.post("/verify-email", status_code=204, responses={400: {"description": "Bad link"}})
def verify_email(body: VerifyEmailIn, db: DB, clock: Now) -> Response:
    """Confirm an email address with the token from the link that was sent to it."""
    service.verify_email(session=db, token=body.token, now=clock)
    return Response(status_code=204)


@public.post("/password-reset", status_code=202, responses=_LOAD, dependencies=[admission("reset")])
def request_password_reset(
    body: ResetRequestIn, request: Request, tasks: BackgroundTasks, clock: Now
) -> Accepted:
    """Ask for a password-reset link. Same answer whether or not the account exists.
    Staff accounts are recovered by an administrator: no link is sent for them.

    The answer is given before anything about the address is looked at: finding the
    account, unwrapping its key and sending the link run after it (a background task),
    so the answer takes the same time and says the same for known and unknown
    addresses, and that work spends the vault's ``recovery`` unwrap budget, never the
    one sign-in or authenticated reads need."""
    tasks.add_task(
        deliver_reset_link,
        get_runtime(request),
        email=body.email,
        request_id=request_id(request),
        now=clock,
    )
    return Accepted(detail=RESET_REQUESTED)


@public.post(
    "/password-reset/complete",
    status_code=204,
    responses={**_REFUSALS, **_LOAD},
    dependencies=[admission("reset")],
)
def complete_password_reset(
    body: ResetCompleteIn, db: DB, settings: AppSettings, clock: Now, address: Address
) -> Response:
    """Choose a new password with the token from a reset link (or a staff setup token).
    An account with a second factor must also give a code (``code``): a reset link
    alone never takes over such an account. Every session of the account ends."""
    service.complete_password_reset(
        session=db,
        settings=settings,
        token=body.token,
        password=body.password,
        code=body.code,
        address=address,
        now=clock,
    )
    return Response(status_code=204)


# -- a session, second factor possibly pending ----------------------------------------


def pending_router(**kwargs: Any) -> APIRouter:
    """Routes a session reaches before its second factor: each takes ``CurrentSession``
    and must only complete or set up the second factor, or end the session. No
    principal is made here, so the guard's containment is checked by the services
    these routes call (``signin.refuse_if_contained``), as ``act_as`` checks it."""
    return APIRouter(**kwargs)


pending = pending_router()


@pending.post("/auth/mfa", tags=["auth"], response_model=BearerToken, responses=_REFUSALS)
def second_factor(
    *,
    request: Request,
    body: CodeIn,
    resolved: CurrentSession,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: Address,
) -> BearerToken:
    """Complete a sign-in with a TOTP code or a recovery code (bearer: the token from
    ``/auth/login``). The answer is a new token; the pending one ends."""
    issued = signin.complete_second_factor(
        session=db,
        settings=settings,
        guard=get_runtime(request).guard,
        resolved=resolved,
        code=body.code,
        address=address,
        now=clock,
    )
    return _bearer(issued, db)


@pending.post("/auth/logout", status_code=204, tags=["auth"])
def logout(resolved: CurrentSession, db: DB, clock: Now) -> Response:
    """End this session."""
    end_session(session=db, session_id=resolved.auth_session.id, now=clock, reason="logout")
    return Response(status_code=204)


@pending.post("/me/totp", tags=["account"])
def begin_totp(request: Request, resolved: CurrentSession, db: DB) -> TotpSetup:
    """Start setting up TOTP: a new secret and its ``otpauth://`` URI (show it as a QR
    code). Nothing is enabled until ``/me/totp/confirm`` gets a code from the app."""
    secret, uri = service.begin_totp(
        session=db, guard=get_runtime(request).guard, account=resolved.account
    )
    return TotpSetup(secret=secret, otpauth_uri=uri)


@pending.post("/me/totp/confirm", tags=["account"], responses=_REFUSALS)
def confirm_totp(
    *,
    request: Request,
    body: TotpConfirmIn,
    resolved: CurrentSession,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: Address,
) -> TotpEnabled:
    """Enable TOTP with a first code and, from a signed-in account, its password (a
    stolen session alone cannot lock the holder out with the thief's authenticator); a
    staff member's pending first-sign-in session needs no password. Answers the
    recovery codes (shown once) and a new token: this session and every other one of
    the account end."""
    codes, issued = service.confirm_totp(
        session=db,
        settings=settings,
        guard=get_runtime(request).guard,
        resolved=resolved,
        code=body.code,
        password=body.password,
        address=address,
        now=clock,
    )
    return TotpEnabled(
        recovery_codes=codes, token=issued.token, expires_at=issued.record.absolute_expires_at
    )


# -- the signed-in account ---------------------------------------------------------------

me = authenticated_router(prefix="/me", tags=["account"])


@me.get("")
def read_me(resolved: CurrentSession) -> AccountView:
    """The caller's account: role, status, verification, second factor."""
    account = resolved.account
    return AccountView(
        id=account.id,
        role=account.role,
        status=account.status,
        email_verified=account.email_verified_at is not None,
        mfa_enabled=account.totp_enabled,
        mfa_required=mfa_required(account),
        recovery_codes_left=len(account.recovery_codes or []) if account.totp_enabled else 0,
        created_at=account.created_at,
        last_login_at=account.last_login_at,
    )


@me.post("/password", status_code=204, responses=_REFUSALS)
def change_password(
    *,
    body: PasswordChangeIn,
    resolved: CurrentSession,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: Address,
) -> Response:
    """Change the password; every other session of the account ends."""
    service.change_password(
        session=db,
        settings=settings,
        resolved=resolved,
        current_password=body.current_password,
        new_password=body.new_password,
        address=address,
        now=clock,
    )
    return Response(status_code=204)


@me.post("/recovery-codes", response_model=RecoveryCodes, responses=_REFUSALS)
def regenerate_recovery_codes(
    *,
    body: CodeIn,
    resolved: CurrentSession,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: Address,
) -> RecoveryCodes:
    """New recovery codes (shown once; the old ones stop working), after a code."""
    codes = service.regenerate_recovery_codes(
        session=db,
        settings=settings,
        account=resolved.account,
        code=body.code,
        address=address,
        now=clock,
    )
    return RecoveryCodes(recovery_codes=codes)


@me.post("/totp/disable", status_code=204, responses=_REFUSALS)
def disable_totp(
    *,
    body: TotpDisableIn,
    resolved: CurrentSession,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: Address,
) -> Response:
    """A patient turns the second factor off (password and code); staff cannot."""
    service.disable_totp(
        session=db,
        settings=settings,
        resolved=resolved,
        password=body.password,
        code=body.code,
        address=address,
        now=clock,
    )
    return Response(status_code=204)


router = APIRouter()
"""Everything above, for the app (each route keeps its own router's dependencies)."""
for _part in (public, pending, me):
    router.include_router(_part)
