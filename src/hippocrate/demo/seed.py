"""Seed a database with a living demo, and write the demo credentials file.

Everything goes through the real services (identity, patients, consultations), inside
the caller's unit of work; nothing here commits. What is made:

- practitioners in every specialty of the catalogue (two per specialty, one more per
  250 patients), each with an RPPS number, a password and an enrolled TOTP secret;
- two admins, one support and two dpo accounts (password and TOTP): four-eyes
  requests need a second admin or DPO;
- ``count`` synthetic patients, each with an active, verified account and a password,
  one in three with TOTP; and their consultations in every status: waiting in the
  queue, in progress (messages both ways, photos and PDF documents), closed (report,
  acts, often a prescription: closing issues their signed PDFs), cancelled;
- with a guard, honeytoken patients among them, made by the same generator
  (``guard.honeytokens``), each placed with a practitioner who has none in view.

Cost: one argon2id hash (production parameters, ~0.15 s) per account, nothing else of
note: ``seed --patients 50`` makes 65 accounts.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hippocrate.blobs import BlobStore
from hippocrate.config import Settings
from hippocrate.consultations.models import ConsultationStatus
from hippocrate.consultations.schemas import SPECIALTIES
from hippocrate.guard.clinic import CASES_PER_PATIENT, STATUS_WEIGHTS, Clinic
from hippocrate.guard.honeytokens import Planter
from hippocrate.guard.people import AccountMaker, DemoAccount
from hippocrate.guard.service import Guard
from hippocrate.identity.models import Role
from hippocrate.patients.synthetic import SyntheticPatients

CREDENTIALS_FILE = "demo-credentials.json"

Status = ConsultationStatus
# The first consultations seeded take every status, so even a tiny demo shows them all.
_FIRST = (Status.IN_PROGRESS, Status.CLOSED, Status.REQUESTED, Status.CANCELLED)
_WEIGHTS = STATUS_WEIGHTS


@dataclass
class SeedReport:
    """What was seeded: the accounts (with their credentials) and some counts."""

    patients: list[DemoAccount] = field(default_factory=list)
    practitioners: list[DemoAccount] = field(default_factory=list)
    staff: list[DemoAccount] = field(default_factory=list)
    consultations: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    attachments: int = 0

    def credentials(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "patients": [a.credentials() for a in self.patients],
            "practitioners": [a.credentials() for a in self.practitioners],
            "staff": [a.credentials() for a in self.staff],
        }

    def summary(self) -> list[str]:
        with_totp = sum(1 for p in self.patients if p.totp_secret)
        specialties = len({p.specialty for p in self.practitioners})
        staff = ", ".join(
            f"{n} {role}" for role, n in Counter(a.role.value for a in self.staff).items()
        )
        statuses = ", ".join(
            f"{self.consultations[s.value]} {s.value.replace('_', ' ')}" for s in Status
        )
        return [
            f"accounts: {len(self.patients)} patients ({with_totp} with TOTP), "
            f"{len(self.practitioners)} practitioners in {specialties} specialties, {staff}",
            f"consultations: {statuses}; {self.messages} messages, {self.attachments} attachments",
        ]


def practitioners_per_specialty(patients: int) -> int:
    return 2 + patients // 250


def seed_demo(
    *,
    session: Session,
    settings: Settings,
    blobs: BlobStore,
    count: int,
    now: datetime,
    seed: int | None = None,
    guard: Guard | None = None,
    honeytokens: int = 0,
    open_cases: bool = True,
    progress: Callable[[int], None] | None = None,
    start: Callable[[int], None] | None = None,
) -> SeedReport:
    """Create the demo's accounts and consultations (see the module docstring).

    The same ``seed`` gives the same people, emails, RPPS numbers and consultations
    (their times follow ``now``); passwords and TOTP secrets are always fresh.
    Raises ``DuplicateAccount``/``DuplicatePatient`` if they already exist, and
    ``SeedConflict`` if someone takes from the queue meanwhile.

    With ``guard``, ``honeytokens`` honeytoken patients are planted among them, at
    random places of the sequence (so their rows and their events in the trail lie
    among the real ones'), each placed with a practitioner who has none in view.
    Without ``open_cases``, a case drawn waiting or in progress is played to its close
    (``Clinic.recently_closed``): the platform as it is once the queue is empty, as the
    honeytokens always are (docs/GUARD.md, "Honeytokens").

    ``start`` is told how many accounts will be made, ``progress`` each one made (with
    its consultations). All in the caller's unit of work: interrupted, nothing stays.
    """
    # Seeding must never email anyone: the notifications go to the outbox folder.
    settings = settings.model_copy(update={"smtp_host": None})
    report = SeedReport()
    made = progress or (lambda _: None)
    staff = (Role.ADMIN, Role.ADMIN, Role.SUPPORT, Role.DPO, Role.DPO)
    if start is not None:
        planted = honeytokens if guard is not None else 0
        start(len(SPECIALTIES) * practitioners_per_specialty(count) + len(staff) + count + planted)
    maker = AccountMaker(session=session, now=now, seed=seed)
    for specialty in SPECIALTIES:
        for _ in range(practitioners_per_specialty(count)):
            report.practitioners.append(maker.practitioner(specialty))
            made(1)
    # Two administrators and two DPOs: a four-eyes request needs a second one.
    report.staff = []
    for role in staff:
        report.staff.append(maker.staff(role))
        made(1)
    clinic = Clinic(
        session=session,
        settings=settings,
        blobs=blobs,
        practitioners=report.practitioners,
        now=now,
        seed=seed,
    )
    people = SyntheticPatients(seed)
    rng = random.Random(None if seed is None else f"hippocrate-demo-plan-{seed}")
    planned = 0
    planter = (
        Planter(
            session=session,
            guard=guard,
            now=now,
            seed=seed,
            maker=maker,
            clinic=clinic,
            practitioners=report.practitioners,
        )
        if guard is not None and honeytokens > 0
        else None
    )
    among = Counter(rng.randrange(count) for _ in range(honeytokens if planter else 0))
    for index in range(count):
        for _ in range(among[index]):
            assert planter is not None
            planter.plant()
            made(1)
        data = people.patient(with_nir=index % 4 != 3)
        patient = maker.patient(data, with_totp=index % 3 == 1)
        report.patients.append(patient)
        cases = rng.choice(CASES_PER_PATIENT)
        if index == count - 1:
            cases = max(cases, len(_FIRST) - planned)
        for _ in range(cases):
            status = (
                _FIRST[planned]
                if planned < len(_FIRST)
                else rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
            )
            if open_cases or status in (Status.CLOSED, Status.CANCELLED):
                clinic.consult(patient, data, status)
            else:
                clinic.recently_closed(patient, data)
            planned += 1
        made(1)
    report.consultations = clinic.statuses
    report.messages, report.attachments = clinic.messages, clinic.attachments
    return report


def write_credentials(data_dir: Path, credentials: dict[str, Any]) -> Path:
    """Write (or extend) the demo credentials file, readable by its owner only."""
    path = data_dir / CREDENTIALS_FILE
    existing: dict[str, Any] = {}
    if path.exists():
        existing = json.loads(path.read_text(encoding="utf-8"))
    for key, values in credentials.items():
        existing.setdefault(key, []).extend(values)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(existing, handle, indent=2, ensure_ascii=False)
    return path


def _pick(entries: list[dict[str, Any]], wanted: str, **match: Any) -> tuple[int, dict[str, Any]]:
    """The first entry (and its index) matching ``match`` whose consultations include
    ``wanted``; else the first matching one."""
    fitting = [
        (i, e) for i, e in enumerate(entries) if all(e.get(k) == v for k, v in match.items())
    ]
    for index, entry in fitting:
        if wanted in entry.get("consultations", ()):
            return index, entry
    return fitting[0] if fitting else (0, entries[0])


def sign_in_help(*, public_url: str, path: Path, credentials: dict[str, Any]) -> str:
    """How to try the demo: the sign-in page's address and an account of each role, the
    text printed after seeding.

    Names accounts by email; passwords and TOTP secrets stay in the file (readable by its
    owner only), never on the terminal: ``hippocrate demo-account EMAIL`` prints one
    account's password and current code when asked."""
    url = public_url.rstrip("/")
    lines = [
        f"Open {url}/sign-in and sign in as one of these demo accounts",
        f"(passwords and TOTP secrets in {path};",
        " `hippocrate demo-account EMAIL` prints an account's password and current code):",
    ]
    practitioners = credentials.get("practitioners") or []
    patients = credentials.get("patients") or []
    staff = credentials.get("staff") or []
    if patients:
        _, who = _pick(patients, "in_progress", totp_secret=None)
        lines.append(f"  patient        {who['email']}  (no second factor)")
    if practitioners:
        _, who = _pick(practitioners, "in_progress")
        lines.append(f"  practitioner   {who['email']}  ({who.get('specialty', '')})")
    for role, label in (("dpo", "DPO"), ("admin", "administrator"), ("support", "support")):
        emails = [e["email"] for e in staff if e.get("role") == role]
        if emails:
            lines.append(f"  {label:<14} {', '.join(emails)}")
    lines.append(
        "Staff sign in with a second factor (the code from the command above, or an "
        "authenticator app enrolled from the account's otpauth_uri in the file); four-eyes "
        "requests need a second administrator or DPO, which the demo has. The API: "
        f"{url}/api/v1/openapi.json."
    )
    return "\n".join(lines)
