"""Synthetic French patients made with Faker's fr_FR locale.

NIRs are valid (sex, birth year and month, department including 2A/2B, check key
computed by python-stdnum) and consistent with the patient's sex and birth date;
phone numbers are valid French numbers. The demo seeds with them, and the guard plants
honeytokens with them (so production code needs no part of the demo).
"""

from __future__ import annotations

import random
import unicodedata
from datetime import date

from faker import Faker
from stdnum.fr import nir as stdnum_nir

from hippocrate.identifiers import InvalidPhone, normalise_email, normalise_nir, normalise_phone
from hippocrate.patients.schemas import Address, PatientCreate

#: The demo patients' domain (reserved for the demo, it names no real mailbox).
DEMO_DOMAIN = "example.fr"
_DEPARTMENTS = [f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]


class SyntheticPatients:
    """A reproducible stream of synthetic patients (same seed, same patients)."""

    def __init__(self, seed: int | None = None) -> None:
        self._faker = Faker("fr_FR")
        # Reproducible when seeded (the demo); unpredictable enough unseeded: a
        # honeytoken's identity is sealed like any other, it needs no secret.
        self._rng = random.Random(seed)  # noqa: S311
        if seed is not None:
            self._faker.seed_instance(seed)

    def nir(self, *, sex: str, birth_date: date) -> str:
        department = self._rng.choice(_DEPARTMENTS)
        commune = f"{self._rng.randint(1, 990):03d}"
        order = f"{self._rng.randint(1, 999):03d}"
        born = f"{birth_date.year % 100:02d}{birth_date.month:02d}"
        body = f"{1 if sex == 'M' else 2}{born}{department}{commune}{order}"
        return normalise_nir(body + stdnum_nir.calc_check_digits(body))

    def phone(self) -> str:
        # Draw mobile numbers until one is in an allocated range (a few tries at most).
        for _ in range(100):
            prefix = self._rng.choice(["6", "7"])
            digits = "".join(str(self._rng.randrange(10)) for _ in range(8))
            try:
                return normalise_phone(f"0{prefix}{digits}")
            except InvalidPhone:
                continue
        raise RuntimeError("no valid phone number drawn")

    def patient(self, *, with_nir: bool = True, domain: str = DEMO_DOMAIN) -> PatientCreate:
        """A synthetic patient whose email address is at ``domain`` (its local part
        shaped like every other: ``given.family.hex6``)."""
        sex = self._rng.choice(["F", "M"])
        given = self._faker.first_name_female() if sex == "F" else self._faker.first_name_male()
        family = self._faker.last_name()
        birth = self._faker.date_of_birth(minimum_age=1, maximum_age=95)
        token = self._rng.randrange(16**6)
        email = normalise_email(f"{ascii_slug(given)}.{ascii_slug(family)}.{token:06x}@{domain}")
        return PatientCreate(
            given_names=given,
            family_name=family,
            birth_date=birth,
            sex=sex,
            email=email,
            phone=self.phone(),
            address=Address(
                line1=self._faker.street_address(),
                postal_code=self._faker.postcode(),
                city=self._faker.city(),
            ),
            nir=self.nir(sex=sex, birth_date=birth) if with_nir else None,
        )


def ascii_slug(text: str) -> str:
    """``text`` folded to lowercase ASCII letters and digits, for an email's local part."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(c for c in folded.lower() if c.isalnum()) or "x"
