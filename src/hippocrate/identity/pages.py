"""The identity's pages: sign in (and its second factor), sign out, registration,
the emailed links (address verification, password reset), setting up the second
factor, and the signed-in account's own changes (password, recovery codes, turning the
second factor off), with the practitioner's account page.

The same services as ``identity/api.py`` (``signin.sign_in``, the limiters before the
password, a dummy hash for unknown accounts, one answer for every wrong pair; the same
admission throttle and background delivery for registration and reset), so a page says
exactly what the API says: nothing about which accounts exist. A sign-in, and a second
factor set up, issue a new session token (and CSRF token) whatever the visitor held.

An emailed link opens a page whose button posts its token: a link fetched by a mail
scanner verifies or resets nothing by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import segno
from fastapi import BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import ValidationError

from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import DB, AppSettings, Now, get_runtime, request_id
from hippocrate.errors import HippocrateError, InvalidField
from hippocrate.i18n import _n
from hippocrate.identity import factors, passwords, service, signin, tokens
from hippocrate.identity.admission import admission, deliver_reset_link
from hippocrate.identity.models import Role
from hippocrate.identity.sessions import Resolved, end_session, mfa_required
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.service import check_identity
from hippocrate.web import cookies, csrf, render
from hippocrate.web.deps import PagePrincipal, PageSession, home_of, pages_router, require_role
from hippocrate.web.errors import on_refusal
from hippocrate.web.render import Flash

public = pages_router(public=True)
account = pages_router()

EVERY_ROLE = (Role.PATIENT, Role.PRACTITIONER, Role.SUPPORT, Role.DPO, Role.ADMIN)

SIGNED_OUT = _n("You are signed out.")
EMAIL_VERIFIED = _n("Your email address is confirmed: you can sign in.")
PASSWORD_RESET = _n("Your password is changed: sign in with it.")
PASSWORD_CHANGED = _n("Your password is changed; your other sessions have ended.")
SECOND_FACTOR_DISABLED = _n("The second factor is turned off; your other sessions have ended.")

_SIGN_IN_FLASHES = {
    "signed_out": SIGNED_OUT,
    "verified": EMAIL_VERIFIED,
    "reset": PASSWORD_RESET,
}

Next = Annotated[str, Form(max_length=2000)]
PasswordField = Annotated[str, Form(max_length=passwords.MAX_LENGTH)]
CodeField = Annotated[str, Form(max_length=factors.MAX_CODE_LENGTH)]
TokenField = Annotated[str, Form(max_length=tokens.MAX_TOKEN_LENGTH)]
TokenQuery = Annotated[str, Query(max_length=tokens.MAX_TOKEN_LENGTH)]


def _flash(request: Request, message: str, kind: str = "success") -> Flash:
    return Flash(render.translator(render.language_of(request))(message), kind)


# -- sign-in ------------------------------------------------------------------------------


@public.get("/sign-in")
def sign_in_page(
    request: Request,
    *,
    next: str = "",
    signed_out: bool = False,
    verified: bool = False,
    reset: bool = False,
    deleted: bool = False,
) -> Response:
    if deleted:
        # Goodbye after a patient deleted their account (``patients/pages.py``): on a
        # public page, since the session ended with the account.
        return render.page(request, "identity/deleted.html")
    flash = None
    for flag, on in (("signed_out", signed_out), ("verified", verified), ("reset", reset)):
        if on:
            kind = "info" if flag == "signed_out" else "success"
            flash = _flash(request, _SIGN_IN_FLASHES[flag], kind)
    return render.page(
        request, "identity/signin.html", email="", next=render.local_path(next, ""), flash=flash
    )


@public.post("/sign-in")
def sign_in(
    *,
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
    next: Next = "",
) -> Response:
    target = render.local_path(next, "/")
    on_refusal(request, "identity/signin.html", email=email, next=target)
    issued = signin.sign_in(
        session=db, settings=settings, email=email, password=password, address=address, now=clock
    )
    return _signed_in(request, issued, target)


@public.get("/sign-in/code")
def code_page(request: Request, resolved: PageSession, next: str = "") -> Response:
    if resolved.auth_session.mfa_passed or not mfa_required(resolved.account):
        return render.redirect(request, render.local_path(next, "/"))
    return render.page(request, "identity/code.html", next=render.local_path(next, ""))


@public.post("/sign-in/code")
def code(
    *,
    request: Request,
    resolved: PageSession,
    code: Annotated[str, Form(max_length=64)],
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
    next: Next = "",
) -> Response:
    target = render.local_path(next, "/")
    on_refusal(request, "identity/code.html", next=target)
    issued = signin.complete_second_factor(
        session=db,
        settings=settings,
        guard=get_runtime(request).guard,
        resolved=resolved,
        code=code,
        address=address,
        now=clock,
    )
    return _signed_in(request, issued, target)


@public.post("/sign-out")
def sign_out(request: Request, resolved: PageSession, db: DB, clock: Now) -> Response:
    end_session(session=db, session_id=resolved.auth_session.id, now=clock, reason="logout")
    csrf.renew(request)
    response = render.redirect(request, "/sign-in?signed_out=true")
    cookies.end_session(response)
    return response


def _signed_in(request: Request, issued: signin.Issued, target: str) -> Response:
    """The answer to a sign-in step: the new session's cookie, a new CSRF token, and on
    to the second factor (its setup for staff without one yet) or to ``target``."""
    csrf.renew(request)
    if issued.mfa_setup_required:
        response = render.redirect(request, "/account/second-factor")
    elif issued.mfa_required:
        # Encoded: a target's own query (``?a=1&b=2``) is one value of ``next``.
        query = f"?{urlencode({'next': target})}" if target != "/" else ""
        response = render.redirect(request, f"/sign-in/code{query}")
    else:
        response = render.redirect(request, target)
    cookies.set_session(response, issued.token)
    return response


# -- registration ---------------------------------------------------------------------------

REGISTER = "identity/register.html"

#: The form's fields as the template names them, by where pydantic reports them.
_REGISTRATION_FIELDS = {
    ("given_names",): "given_names",
    ("family_name",): "family_name",
    ("birth_date",): "birth_date",
    ("sex",): "sex",
    ("email",): "email",
    ("phone",): "phone",
    ("nir",): "nir",
    ("address", "line1"): "line1",
    ("address", "line2"): "line2",
    ("address", "postal_code"): "postal_code",
    ("address", "city"): "city",
    ("address", "country"): "country",
}
INVALID_VALUE = _n("this value is missing or not valid")

Text = Annotated[str, Form(max_length=320)]


def _form_refused_above(template: str) -> Callable[[Request], Awaitable[None]]:
    """A route's dependency, before its admission throttle: a refusal of the throttle
    (429) shows the form again, blank but for a link's token, the refusal above it."""

    async def _refusal_shows_form(request: Request) -> None:
        values = dict(_BLANK[template])
        if "token" in values:
            token = (await request.form()).get("token")
            if isinstance(token, str) and len(token) <= tokens.MAX_TOKEN_LENGTH:
                values["token"] = token
        on_refusal(request, template, **values)

    return _refusal_shows_form


_BLANK: dict[str, dict[str, Any]] = {
    REGISTER: {"form": {}, "field": None},
    "identity/forgot_password.html": {"email": ""},
    "identity/reset_password.html": {"token": "", "field": None},
}


@public.get("/register")
def register_page(request: Request, sent: bool = False) -> Response:
    if sent:
        # What every registration is answered, whether or not the address has an account.
        return render.page(request, "identity/registered.html")
    return render.page(request, REGISTER, form={}, field=None)


@public.post(
    "/register",
    dependencies=[Depends(_form_refused_above(REGISTER)), admission("register")],
)
def register(
    *,
    request: Request,
    db: DB,
    settings: AppSettings,
    clock: Now,
    given_names: Text = "",
    family_name: Text = "",
    birth_date: Text = "",
    sex: Text = "",
    email: Text = "",
    phone: Text = "",
    line1: Text = "",
    postal_code: Text = "",
    city: Text = "",
    password: PasswordField = "",
    line2: Text = "",
    country: Text = "FR",
    nir: Text = "",
) -> Response:
    """``POST /api/v1/auth/register``'s work: the same answer (on to "check your email")
    whether or not the address has an account. A refused field (a bad phone, a weak
    password, a NIR that does not match) shows the form again, the message at that
    field; nothing typed is lost but the password."""
    form = {
        "given_names": given_names,
        "family_name": family_name,
        "birth_date": birth_date,
        "sex": sex,
        "email": email,
        "phone": phone,
        "line1": line1,
        "line2": line2,
        "postal_code": postal_code,
        "city": city,
        "country": country,
        "nir": nir,
    }
    data = _registration(request, form)
    # The same checks the service makes first, each named after its field, so that the
    # form can show its refusal where it belongs; they come before any lookup there too.
    on_refusal(request, REGISTER, form=form, field="password")
    passwords.check_policy(password, email=data.email)
    on_refusal(request, REGISTER, form=form, field="nir")
    check_identity(data)
    on_refusal(request, REGISTER, form=form, field=None)
    service.register_patient(session=db, settings=settings, data=data, password=password, now=clock)
    return render.redirect(request, "/register?sent=true")


def _registration(request: Request, form: dict[str, str]) -> PatientCreate:
    """The registration's identity as the API's schema validates it; a value it refuses
    is a refusal of the form (422) at that value's field.

    A pydantic error is not a refusal the unit of work knows: it is turned into one
    here, with the validator's own message when it is ours (a phone, an email, a NIR),
    and raised, never swallowed."""
    raw: dict[str, Any] = {
        **{k: form[k] for k in ("given_names", "family_name", "birth_date", "sex")},
        "email": form["email"],
        "phone": form["phone"],
        "nir": form["nir"] or None,
        "address": {
            "line1": form["line1"],
            "line2": form["line2"] or None,
            "postal_code": form["postal_code"],
            "city": form["city"],
            "country": form["country"] or "FR",
        },
    }
    try:
        return PatientCreate.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = tuple(str(part) for part in error.get("loc", ()))
        on_refusal(request, REGISTER, form=form, field=_REGISTRATION_FIELDS.get(where))
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, HippocrateError):
            raise InvalidField(cause.message) from None
        raise InvalidField(INVALID_VALUE) from None


# -- the emailed links ------------------------------------------------------------------


@public.get("/account/verify-email")
def verify_email_page(request: Request, token: TokenQuery = "") -> Response:
    """The verification link's page: a button that posts the token (a link fetched by a
    mail scanner confirms nothing)."""
    return render.page(request, "identity/verify_email.html", token=token)


@public.post("/account/verify-email")
def verify_email(request: Request, token: TokenField, db: DB, clock: Now) -> Response:
    on_refusal(request, "identity/verify_email.html", token="")
    service.verify_email(session=db, token=token, now=clock)
    return render.redirect(request, "/sign-in?verified=true")


@public.get("/account/forgot-password")
def forgot_password_page(request: Request, sent: bool = False) -> Response:
    if sent:
        return render.page(request, "identity/reset_sent.html")
    return render.page(request, "identity/forgot_password.html", email="")


@public.post(
    "/account/forgot-password",
    dependencies=[
        Depends(_form_refused_above("identity/forgot_password.html")),
        admission("reset"),
    ],
)
def forgot_password(
    request: Request,
    email: Annotated[str, Form(min_length=1, max_length=320)],
    tasks: BackgroundTasks,
    clock: Now,
) -> Response:
    """``POST /api/v1/auth/password-reset``'s work: answered before the address is
    looked at, the link sent by a background task; the same answer for every address."""
    tasks.add_task(
        deliver_reset_link,
        get_runtime(request),
        email=email,
        request_id=request_id(request),
        now=clock,
    )
    return render.redirect(request, "/account/forgot-password?sent=true")


RESET = "identity/reset_password.html"


@public.get("/account/reset-password")
def reset_password_page(request: Request, token: TokenQuery = "") -> Response:
    return render.page(request, RESET, token=token, field=None)


@public.post(
    "/account/reset-password",
    dependencies=[Depends(_form_refused_above(RESET)), admission("reset")],
)
def reset_password(
    *,
    request: Request,
    token: TokenField,
    password: PasswordField,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
    code: CodeField = "",
) -> Response:
    """``POST /api/v1/auth/password-reset/complete``'s work: a new password, and a code
    for an account with a second factor; every session of the account ends."""
    on_refusal(request, RESET, token=token, field="password")
    passwords.check_policy(password)
    on_refusal(request, RESET, token=token, field=None)
    service.complete_password_reset(
        session=db,
        settings=settings,
        token=token,
        password=password,
        code=code.strip() or None,
        address=address,
        now=clock,
    )
    return render.redirect(request, "/sign-in?reset=true")


# -- setting up the second factor ------------------------------------------------------------

SECOND_FACTOR = "identity/second_factor.html"
CODES = "identity/recovery_codes.html"


@dataclass(frozen=True)
class TotpSetupShown:
    """The secret to enter in an authenticator app, as text and as a QR code."""

    secret: str
    qr: Markup  # inline SVG made here from the otpauth URI; no style attribute


def _setup_shown(request: Request, secret: str, uri: str) -> TotpSetupShown:
    _ = render.translator(render.language_of(request))
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, title=_("QR code of the second factor's secret")
    )
    svg = svg.replace("<svg ", '<svg role="img" ', 1)
    return TotpSetupShown(secret=secret, qr=Markup(svg))  # noqa: S704 - segno's own SVG


def _grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@public.get("/account/second-factor")
def second_factor_setup_page(request: Request, resolved: PageSession, db: DB) -> Response:
    """``POST /api/v1/me/totp``'s work, for a session whose second factor may be
    pending (a staff member's first sign-in) or a signed-in patient: a new secret,
    stored on the account until a code confirms it, shown as a QR code and as text."""
    secret, uri = service.begin_totp(
        session=db, guard=get_runtime(request).guard, account=resolved.account
    )
    return render.page(
        request,
        SECOND_FACTOR,
        setup=_setup_shown(request, _grouped(secret), uri),
        back=_back_of(resolved),
        refused=None,
    )


@public.post("/account/second-factor")
def confirm_second_factor(
    *,
    request: Request,
    resolved: PageSession,
    code: CodeField,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
    password: PasswordField = "",
) -> Response:
    """``POST /api/v1/me/totp/confirm``'s work: the recovery codes, shown this once (a
    redirect would need them kept somewhere: they are answered here instead), and the
    new session's cookie, since every other session of the account ended.

    A signed-in account gives its password too, checked by ``service.confirm_totp``
    (``signin.reauthenticate``, on the sign-in counters), as turning the second factor
    off does: turned on with a stolen
    session's secret, it would lock the holder out for good (their password then needs
    the thief's code, and so does a reset link) and end the holder's sessions. A staff
    member's pending session gave the password a moment ago, at this sign-in."""
    account = resolved.account
    secret = account.totp_secret
    if secret is not None and not account.totp_enabled:
        uri = factors.provisioning_uri(secret, account.email or str(account.id))
        shown: TotpSetupShown | None = _setup_shown(request, _grouped(secret), uri)
    else:
        shown = None
    back = _back_of(resolved)
    onward = back or home_of(account.role)
    # The service checks the password (after the containment, before the code): a
    # signed-in visitor's refusal marks the password field, a pending one's the code.
    refused = "password" if back is not None else "code"
    on_refusal(request, SECOND_FACTOR, setup=shown, back=back, refused=refused)
    codes, issued = service.confirm_totp(
        session=db,
        settings=settings,
        guard=get_runtime(request).guard,
        resolved=resolved,
        code=code,
        password=password,
        address=address,
        now=clock,
    )
    csrf.renew(request)
    response = render.page(request, CODES, codes=codes, onward=onward)
    cookies.set_session(response, issued.token)
    return response


def _back_of(resolved: Resolved) -> str | None:
    """Where a signed-in visitor goes back to from the setup (none while pending)."""
    if resolved.auth_session.mfa_passed or not mfa_required(resolved.account):
        return _account_page(resolved.account.role)
    return None


def _account_page(role: Role | str) -> str:
    role = Role(role)
    if role is Role.PATIENT:
        return "/patient/account"
    if role is Role.PRACTITIONER:
        return "/practitioner/account"
    return home_of(role)


# -- the signed-in account's own changes ----------------------------------------------------


@dataclass(frozen=True)
class AccountFacts:
    """What an account's holder sees of it (the API's ``GET /me``), as plain values."""

    role: str
    email_verified: bool
    mfa_enabled: bool
    mfa_required: bool
    recovery_codes_left: int
    created_at: datetime
    last_login_at: datetime | None


def account_facts(resolved: Resolved) -> AccountFacts:
    """``GET /api/v1/me``'s view of the session's account."""
    account = resolved.account
    return AccountFacts(
        role=account.role.value,
        email_verified=account.email_verified_at is not None,
        mfa_enabled=account.totp_enabled,
        mfa_required=mfa_required(account),
        recovery_codes_left=len(account.recovery_codes or []) if account.totp_enabled else 0,
        created_at=account.created_at,
        last_login_at=account.last_login_at,
    )


@account.get("/account/password", dependencies=[require_role(*EVERY_ROLE)])
def password_page(request: Request, principal: PagePrincipal) -> Response:
    return render.page(
        request, "identity/password.html", field=None, back=_account_page(principal.role)
    )


@account.post("/account/password", dependencies=[require_role(*EVERY_ROLE)])
def change_password(
    *,
    request: Request,
    principal: PagePrincipal,
    resolved: PageSession,
    current_password: PasswordField,
    new_password: PasswordField,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
) -> Response:
    """``POST /api/v1/me/password``'s work: the current password checked (throttled),
    every other session ended."""
    back = _account_page(principal.role)
    on_refusal(request, "identity/password.html", field="new_password", back=back)
    passwords.check_policy(new_password, email=resolved.account.email)
    on_refusal(request, "identity/password.html", field="current_password", back=back)
    service.change_password(
        session=db,
        settings=settings,
        resolved=resolved,
        current_password=current_password,
        new_password=new_password,
        address=address,
        now=clock,
    )
    return render.redirect(request, f"{back}?changed=password")


@account.get("/account/recovery-codes", dependencies=[require_role(*EVERY_ROLE)])
def recovery_codes_page(request: Request, principal: PagePrincipal) -> Response:
    return render.page(request, "identity/new_codes.html", back=_account_page(principal.role))


@account.post("/account/recovery-codes", dependencies=[require_role(*EVERY_ROLE)])
def regenerate_recovery_codes(
    *,
    request: Request,
    principal: PagePrincipal,
    resolved: PageSession,
    code: CodeField,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
) -> Response:
    """``POST /api/v1/me/recovery-codes``'s work, after a code: the new codes, shown
    this once (answered here, as at the setup)."""
    back = _account_page(principal.role)
    on_refusal(request, "identity/new_codes.html", back=back)
    codes = service.regenerate_recovery_codes(
        session=db,
        settings=settings,
        account=resolved.account,
        code=code,
        address=address,
        now=clock,
    )
    return render.page(request, CODES, codes=codes, onward=back)


PATIENT_ONLY = [require_role(Role.PATIENT)]


@account.get("/account/second-factor/disable", dependencies=PATIENT_ONLY)
def disable_second_factor_page(request: Request) -> Response:
    return render.page(request, "identity/disable_second_factor.html")


@account.post("/account/second-factor/disable", dependencies=PATIENT_ONLY)
def disable_second_factor(
    *,
    request: Request,
    resolved: PageSession,
    password: PasswordField,
    code: CodeField,
    db: DB,
    settings: AppSettings,
    clock: Now,
    address: ClientAddress,
) -> Response:
    """``POST /api/v1/me/totp/disable``'s work: a patient turns it off, with their
    password and a code; every other session ends."""
    on_refusal(request, "identity/disable_second_factor.html")
    service.disable_totp(
        session=db,
        settings=settings,
        resolved=resolved,
        password=password,
        code=code,
        address=address,
        now=clock,
    )
    return render.redirect(request, "/patient/account?changed=second-factor")


# -- the practitioner's account ----------------------------------------------------------------


CHANGES = {
    "password": PASSWORD_CHANGED,
    "second-factor": SECOND_FACTOR_DISABLED,
}


@account.get("/practitioner/account", dependencies=[require_role(Role.PRACTITIONER)])
def practitioner_account(request: Request, resolved: PageSession, changed: str = "") -> Response:
    """Second-factor status, and the changes the API offers staff: password, recovery
    codes (staff cannot turn the second factor off)."""
    flash = _flash(request, CHANGES[changed]) if changed in CHANGES else None
    return render.page(
        request, "identity/staff_account.html", facts=account_facts(resolved), flash=flash
    )
