"""Accounts of every role for tests, and signing in the real way.

    user = make_user(store.sessions, Role.PRACTITIONER)
    headers = login(client, user.email, user.password, user.totp_secret)
    client.get("/api/v1/me", headers=headers)

``make_user`` seeds an account through the identity service (password hashed with
argon2id, TOTP enabled with a known secret for staff); ``login`` goes through
``POST /api/v1/auth/login`` then ``POST /api/v1/auth/mfa`` with a code computed from
the secret, exactly as a client does. If the test moves the app's clock (an override
of ``hippocrate.api.deps.now``), pass that time as ``now=``: codes are checked
against the app's clock.

A TOTP code is accepted once: ``totp_code`` remembers the steps it handed out per
secret and gives the next usable one (two sign-ins per 30-second step; a third waits
for the next step, or, with an injected clock, asks the test to move it).

Password hashing at production cost takes ~0.2 s; wrap a test in
``fast_password_hashing()`` (or use the ``fast_passwords`` fixture pattern in
``tests/identity/conftest.py``) to make it negligible.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pyotp
from argon2 import Parameters, Type

from hippocrate.db.engine import SessionFactory
from hippocrate.identifiers import normalise_email
from hippocrate.identity import factors, passwords, service
from hippocrate.identity.models import Role
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.synthetic import SyntheticPatients

FAST_PARAMETERS = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=1,
    memory_cost=256,
    parallelism=1,
)
"""argon2id parameters for tests only: far below OWASP's floor, so refused outside
``passwords.unsafe_parameters``."""


@contextmanager
def fast_password_hashing() -> Iterator[None]:
    """Hash with :data:`FAST_PARAMETERS` inside the block (tests only)."""
    with passwords.unsafe_parameters(FAST_PARAMETERS):
        yield


@dataclass(frozen=True)
class TestUser:
    """An account made for a test, with everything needed to sign in as it."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    role: Role
    email: str
    password: str
    totp_secret: str | None
    account_id: uuid.UUID
    patient_id: uuid.UUID | None = None
    practitioner_id: uuid.UUID | None = None


def new_password() -> str:
    """A password the policy accepts (random, so never common)."""
    return f"test-{secrets.token_urlsafe(18)}"


@cache
def _synthetic() -> SyntheticPatients:
    return SyntheticPatients()


def patient_data(*, with_nir: bool = False, **changes: Any) -> PatientCreate:
    """A synthetic patient (unique email; a valid NIR if asked), with ``changes``
    (given already normalised: they are not validated again)."""
    data = _synthetic().patient(with_nir=with_nir)
    return data.model_copy(update=changes) if changes else data


def make_user(
    sessions: SessionFactory,
    role: Role,
    *,
    email: str | None = None,
    password: str | None = None,
    totp: bool | None = None,
    specialty: str = "general-practice",
    patient: PatientCreate | None = None,
    now: datetime | None = None,
) -> TestUser:
    """Seed an active account of ``role`` and say how to sign in as it.

    ``totp`` defaults to True for staff (they must have it) and False for patients;
    ``totp=False`` for a staff member gives an account whose first session can only
    set up TOTP. ``patient`` sets the patient's identity (default: synthetic).
    """
    at = now or datetime.now(UTC)
    password = password or new_password()
    secret = factors.new_secret() if (role.is_staff if totp is None else totp) else None
    with sessions.begin() as session:
        if role is Role.PATIENT:
            data = patient or patient_data(**({"email": normalise_email(email)} if email else {}))
            account = service.create_patient_account(
                session=session, data=data, password=password, totp_secret=secret, now=at
            )
            return TestUser(
                role, data.email, password, secret, account.id, patient_id=account.patient_id
            )
        address = email or f"{role.value}.{uuid.uuid4().hex[:12]}@example.org"
        if role is Role.PRACTITIONER:
            account, practitioner = service.create_practitioner(
                session=session,
                email=address,
                rpps=f"{secrets.randbelow(10**11):011d}",
                specialty=specialty,
                given_names="Camille",
                family_name="Durand",
                password=password,
                totp_secret=secret,
                now=at,
            )
            return TestUser(
                role, address, password, secret, account.id, practitioner_id=practitioner.id
            )
        account = service.create_staff_account(
            session=session,
            role=role,
            email=address,
            password=password,
            totp_secret=secret,
            now=at,
        )
        return TestUser(role, address, password, secret, account.id)


# -- TOTP codes -------------------------------------------------------------------------

_used_steps: dict[str, int] = {}


def totp_code(secret: str, *, now: datetime | None = None) -> str:
    """A code the app will accept once for ``secret`` at ``now`` (default: real time),
    never one handed out before."""
    injected = now is not None
    while True:
        current = factors.step_at(now or datetime.now(UTC))
        last = _used_steps.get(secret)
        for step in (current, current + 1):
            if last is None or step > last:
                _used_steps[secret] = step
                return pyotp.TOTP(secret).generate_otp(step)
        if injected:
            raise RuntimeError(
                "no unused TOTP step left at this time: move the app's clock by 30 s"
            )
        time.sleep(factors.STEP_SECONDS - time.time() % factors.STEP_SECONDS + 0.05)


# -- signing in ------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(
    client: Any,
    email: str,
    password: str,
    totp_secret: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, str]:
    """Sign in through the API (password, then TOTP if asked) and return the
    ``Authorization`` header of the session. Fails the test on any refusal."""
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    if not body.get("mfa_required"):
        return bearer(body["token"])
    assert totp_secret is not None, "this account needs a second factor: pass totp_secret"
    assert not body["mfa_setup_required"], "this account has no TOTP yet: use enrol_totp"
    response = client.post(
        "/api/v1/auth/mfa",
        json={"code": totp_code(totp_secret, now=now)},
        headers=bearer(body["token"]),
    )
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


def login_as(client: Any, user: TestUser, *, now: datetime | None = None) -> dict[str, str]:
    return login(client, user.email, user.password, user.totp_secret, now=now)


@dataclass(frozen=True)
class Enrolment:
    headers: dict[str, str]
    secret: str
    recovery_codes: list[str]


def enrol_totp(
    client: Any,
    headers: dict[str, str],
    *,
    password: str | None = None,
    now: datetime | None = None,
) -> Enrolment:
    """Set up TOTP through the API with the session in ``headers`` (pending or full);
    returns the new session's header, the secret and the recovery codes. A full
    session (a signed-in patient) gives its ``password``; a staff member's pending
    first-sign-in session needs none."""
    response = client.post("/api/v1/me/totp", headers=headers)
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    body: dict[str, str] = {"code": totp_code(secret, now=now)}
    if password is not None:
        body["password"] = password
    response = client.post("/api/v1/me/totp/confirm", json=body, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return Enrolment(bearer(body["token"]), secret, body["recovery_codes"])
