"""Typed refusals of the identity domain.

Each carries the HTTP status and title it answers (``HippocrateError``). Messages are
safe to show: none says whether an account exists to someone who has not proved they
own it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n, term

#: What a ``DuplicateAccount`` names and a ``TooManyRequests`` counts, marked for the
#: catalogues (an unmarked word stays English).
WORDS = (
    _n("email address"),
    _n("RPPS number"),
    _n("registration"),
    _n("password-reset"),
    _n("document check"),
)
#: The roles a refusal may name (``AccountActionRefused``).
ROLES = (_n("patient"), _n("practitioner"), _n("support"), _n("dpo"), _n("admin"))


class IdentityError(HippocrateError):
    """Base class; the message is safe to show to the person who made the request."""


# -- sign-in (counted: the unit of work commits before answering these) ---------------


class SignInRefused(IdentityError):
    """A refusal whose counters must be committed although the request failed."""

    commit = True


class InvalidCredentials(SignInRefused):
    """Wrong email or wrong password, never told apart."""

    status = 401
    title = _n("Sign-in refused")

    def __init__(self) -> None:
        super().__init__(_n("the email address or the password is wrong"))


class InvalidCode(SignInRefused):
    """A second-factor code that is wrong, expired or already used."""

    status = 401
    title = _n("Second factor refused")

    def __init__(self) -> None:
        super().__init__(_n("the code is wrong, expired or already used"))


class SignInLocked(SignInRefused):
    """Too many failures for this account or from this address: wait until ``until``."""

    status = 429
    title = _n("Too many attempts")

    def __init__(self, until: datetime, now: datetime) -> None:
        self.until = until
        self.retry_after = max(1, math.ceil((until - now).total_seconds()))
        super().__init__(
            _n("too many failed attempts: sign-in is blocked until {until}"),
            until=until.isoformat(timespec="seconds"),
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    @property
    def extensions(self) -> dict[str, Any]:
        return {"locked_until": self.until.isoformat()}


class SecondFactorLocked(SignInRefused):
    """Too many wrong second-factor codes: the account stays locked until an
    administrator lifts the lock (only said to someone who gave the password, or who
    holds a session of the account)."""

    status = 423
    title = _n("Account locked")

    def __init__(self) -> None:
        super().__init__(
            _n(
                "too many wrong second-factor codes: this account is locked; its owner has "
                "been emailed and must contact support to unlock it"
            )
        )


# -- account state ----------------------------------------------------------------------


class AccountInactive(IdentityError):
    """The password was right but the account cannot sign in (only its owner learns it)."""

    status = 403
    title = _n("Account not active")


class SecondFactorNotSetUp(IdentityError):
    status = 409
    title = _n("No second factor")

    def __init__(self) -> None:
        super().__init__(_n("no second factor is set up: set one up with POST /api/v1/me/totp"))


class SecondFactorAlreadySetUp(IdentityError):
    status = 409
    title = _n("Second factor already set up")

    def __init__(self) -> None:
        super().__init__(_n("a second factor is already set up for this account"))


class SecondFactorMandatory(IdentityError):
    status = 403
    title = _n("Second factor mandatory")

    def __init__(self) -> None:
        super().__init__(_n("staff accounts always use a second factor"))


class CodeRequired(IdentityError):
    """A recovery step on an account that has a second factor, without a code."""

    status = 403
    title = _n("Second factor required")

    def __init__(self) -> None:
        super().__init__(
            _n(
                "this account uses a second factor: give a code from the authenticator app "
                "or one of the recovery codes"
            )
        )


class SessionAlreadyComplete(IdentityError):
    status = 409
    title = _n("Second factor already passed")

    def __init__(self) -> None:
        super().__init__(_n("this session has already passed its second factor"))


# -- input ------------------------------------------------------------------------------


class WeakPassword(IdentityError):
    status = 422
    title = _n("Password refused")


class InvalidLinkToken(IdentityError):
    """A verification or reset token that is unknown, used, expired or for another
    purpose: never told apart."""

    status = 400
    title = _n("Invalid or expired link")

    def __init__(self) -> None:
        super().__init__(_n("this link is invalid, already used or expired: ask for a new one"))


# -- administration -----------------------------------------------------------------------


class DuplicateAccount(IdentityError):
    """Only ever raised to an administrator creating an account, never at registration."""

    status = 409
    title = _n("Conflict")

    def __init__(self, what: str) -> None:
        super().__init__(_n("an account already uses this {what}"), what=term(what))


class AccountActionRefused(IdentityError):
    status = 409
    title = _n("Conflict")


# -- load: refusals that protect everyone else -------------------------------------------


class HashingBusy(IdentityError):
    """Every password-hashing slot stayed taken for the short wait: the server is
    saturated, not broken. The caller retries; nothing was checked or counted."""

    status = 503
    title = _n("Temporarily unavailable")
    retry_after = 2

    def __init__(self) -> None:
        super().__init__(_n("the server is busy checking passwords: retry in a moment"))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyRequests(IdentityError):
    """Too many anonymous requests of one kind (registration, password reset) from this
    address or from everyone within the window: the same answer whatever the email."""

    status = 429
    title = _n("Too many requests")

    def __init__(self, what: str, until: datetime, now: datetime) -> None:
        self.until = until
        self.retry_after = max(1, math.ceil((until - now).total_seconds()))
        super().__init__(
            _n("too many {what} requests: retry in {retry_after} s"),
            what=term(what),
            retry_after=self.retry_after,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
