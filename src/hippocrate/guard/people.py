"""Synthetic accounts of every role, made through the identity service as real ones are
(the demo's, and the honeytokens' patient accounts).

Each account gets its own generated password (about 116 random bits), hashed once with
the production argon2id parameters; staff and some patients get a TOTP secret, enrolled
as if its holder had confirmed it. Passwords and TOTP secrets always come from
``secrets``, even with a seed: a seed makes the data reproducible (names, emails, RPPS
numbers, consultations), never the credentials.

RPPS numbers have the real format (11 digits, the last a Luhn check digit) but start
with 997, outside the range of real practitioners' numbers (10…), so that no demo
number names a real person.
"""

from __future__ import annotations

import random
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from faker import Faker
from sqlalchemy.orm import Session
from stdnum import luhn

from hippocrate.access.principal import Principal
from hippocrate.audit.recorder import Actor
from hippocrate.guard.acting import unsafe_acting_as
from hippocrate.identity import events, factors, service
from hippocrate.identity.models import Role
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.synthetic import ascii_slug
from hippocrate.tags import Tag, account_created

STAFF_DOMAIN = "hippocrate.example.fr"
RPPS_PREFIX = "997"
# Letters and digits that cannot be mistaken for one another (no l/1/I, O/0).
_READABLE = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_password() -> str:
    """A strong password that can be read and typed: four groups of five characters
    (``k7Pxq-3Hmzw-T9rfa-2bWne``), about 116 random bits."""
    groups = ("".join(secrets.choice(_READABLE) for _ in range(5)) for _ in range(4))
    return "-".join(groups)


def rpps_number(rng: random.Random) -> str:
    """An 11-digit RPPS number with its Luhn check digit, in the 997… range."""
    body = RPPS_PREFIX + f"{rng.randrange(10**7):07d}"
    return body + luhn.calc_check_digit(body)


@dataclass
class DemoAccount:
    """A demo account and everything needed to sign in as it."""

    role: Role
    email: str
    password: str
    account_id: uuid.UUID
    totp_secret: str | None = None
    patient_id: uuid.UUID | None = None
    practitioner_id: uuid.UUID | None = None
    specialty: str | None = None
    name: str | None = None
    rpps: str | None = None
    # Statuses of the consultations this patient opened, or this practitioner took.
    consultations: list[str] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        return Principal(
            account_id=self.account_id,
            role=self.role,
            patient_id=self.patient_id,
            practitioner_id=self.practitioner_id,
            specialty=self.specialty,
        )

    def credentials(self) -> dict[str, Any]:
        """The entry of the demo credentials file."""
        entry: dict[str, Any] = {}
        if self.patient_id is not None:
            entry["id"] = str(self.patient_id)
        entry |= {
            "role": self.role.value,
            "email": self.email,
            "password": self.password,
            "totp_secret": self.totp_secret,
            "otpauth_uri": (
                factors.provisioning_uri(self.totp_secret, self.email) if self.totp_secret else None
            ),
            "account_id": str(self.account_id),
        }
        if self.practitioner_id is not None:
            entry |= {
                "practitioner_id": str(self.practitioner_id),
                "name": self.name,
                "specialty": self.specialty,
                "rpps": self.rpps,
            }
        if self.role in (Role.PATIENT, Role.PRACTITIONER):
            entry["consultations"] = sorted(self.consultations)
        return entry


class AccountMaker:
    """Creates the demo's accounts; names, emails and RPPS numbers follow ``seed``."""

    def __init__(self, *, session: Session, now: datetime, seed: int | None = None) -> None:
        self._session = session
        self._now = now
        # Names and RPPS numbers need reproducible, not secret, randomness.
        self._rng = random.Random(  # noqa: S311
            None if seed is None else f"hippocrate-demo-staff-{seed}"
        )
        self._faker = Faker("fr_FR")
        if seed is not None:
            self._faker.seed_instance(seed + 1)

    def _long_ago(self, low_days: int, high_days: int) -> datetime:
        return self._now - timedelta(days=self._rng.uniform(low_days, high_days))

    def _token(self) -> str:
        return f"{self._rng.randrange(16**4):04x}"

    def practitioner(self, specialty: str) -> DemoAccount:
        female = self._rng.random() < 0.5
        given = self._faker.first_name_female() if female else self._faker.first_name_male()
        family = self._faker.last_name()
        email = f"{ascii_slug(given)}.{ascii_slug(family)}.{self._token()}@{STAFF_DOMAIN}"
        rpps = rpps_number(self._rng)
        password, secret = new_password(), factors.new_secret()
        created = self._long_ago(200, 900)
        account, practitioner = service.create_practitioner(
            session=self._session,
            email=email,
            rpps=rpps,
            specialty=specialty,
            given_names=given,
            family_name=family,
            password=password,
            totp_secret=secret,
            now=created,
        )
        # Recorded at the real time: the trail says when seeding happened.
        events.record(self._session, Tag.ACCOUNT_PRACTITIONER_CREATED, account=account)
        return DemoAccount(
            role=Role.PRACTITIONER,
            email=email,
            password=password,
            account_id=account.id,
            totp_secret=secret,
            practitioner_id=practitioner.id,
            specialty=specialty,
            name=f"{given} {family}",
            rpps=rpps,
        )

    def staff(self, role: Role) -> DemoAccount:
        email = f"{role.value}.{self._token()}@{STAFF_DOMAIN}"
        password, secret = new_password(), factors.new_secret()
        created = self._long_ago(400, 1000)
        account = service.create_staff_account(
            session=self._session,
            role=role,
            email=email,
            password=password,
            totp_secret=secret,
            now=created,
        )
        events.record(self._session, account_created(role.value), account=account)
        return DemoAccount(
            role=role, email=email, password=password, account_id=account.id, totp_secret=secret
        )

    def patient(self, data: PatientCreate, *, with_totp: bool) -> DemoAccount:
        """An active patient account with a verified address (and its patient record),
        opened a while before the patient's first consultation."""
        password = new_password()
        secret = factors.new_secret() if with_totp else None
        # A registration is an anonymous request: the trail records it as one.
        with unsafe_acting_as(self._session, Actor(role="anonymous", request_id=uuid.uuid4().hex)):
            account = service.create_patient_account(
                session=self._session,
                data=data,
                password=password,
                totp_secret=secret,
                now=self._long_ago(130, 800),
            )
        assert account.patient_id is not None
        return DemoAccount(
            role=Role.PATIENT,
            email=data.email,
            password=password,
            account_id=account.id,
            totp_secret=secret,
            patient_id=account.patient_id,
        )
