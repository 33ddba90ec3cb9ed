"""The world the authorisation matrix runs in: two patients with consultations,
messages and attachments, two practitioners, support, a DPO and an admin, every one
signed in the real way (password, then TOTP for staff) through the API.

    A   patient; consultation cA in progress with P1 (messages and files both ways) and
        cA2 closed by P1 (report, prescription, incident)
    B   patient; consultation cB closed by P2 (messages and files both ways, report,
        incident) and cBq waiting in P1's queue (general practice)
    P1  practitioner, general practice: cares for A (own objects), not for B
    P2  practitioner, dermatology: cares for B
    S, D, M   support, dpo, admin (the admin holds no break-glass grant)

Every identity, contact and health value planted is a *sentinel* that a response can
be searched for: names, email, address, subjects, descriptions, questionnaire answers,
messages, file names and file contents, reports, prescriptions and incidents carry a
random tag; phone, NIR and birth date are the synthetic patient's own. The ids of the
patients' records, consultations, messages and attachments are searched for too.

Cells that change what they touch (closing, cancelling, deleting an account, ending
sessions, recovering credentials...) run on disposable accounts and objects made for
them, so that the shared world stays as described whatever order the cells run in.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hippocrate.audit.recorder import Actor as AuditActor
from hippocrate.db.engine import SessionFactory, make_engine, unsafe_unaudited_sessions
from hippocrate.db.migrate import upgrade
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.keyring.service import KEYRING
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import new_code
from hippocrate.patients.schemas import Address
from hippocrate.runtime import Runtime
from hippocrate.vault import Vault
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store
from tests.consultations.helpers import (
    QUESTIONNAIRE,
    Api,
    pdf_bytes,
    png_bytes,
    running_api,
)
from tests.identity.helpers import (
    TestUser,
    bearer,
    login,
    make_user,
    patient_data,
    totp_code,
)

# The guard contains a principal after 10 refused ids an hour, or after reading more
# distinct patients than its role allows; the matrix refuses ids by the hundred on
# purpose and must get an answer to each, so the thresholds are out of the way here
# (tests/guard/ tests the rules themselves). The support and dpo breadth (0 patients)
# is not a setting: any read of patient data by them still contains them, and the
# matrix reports it. Sign-in throttling per client address and short session
# lifetimes are tested in tests/identity/ and would only get in the way too.
SETTINGS = {
    "guard_enumeration_limit": 1_000_000,
    "guard_breadth_practitioner": 1_000_000,
    "guard_breadth_admin": 1_000_000,
    "guard_breadth_patient": 1_000_000,
    "login_failures_per_client": 1_000_000,
    "login_failures_per_account": 1_000_000,
    "registrations_per_client": 1_000_000,
    "registrations_global": 1_000_000,
    "resets_per_client": 1_000_000,
    "resets_global": 1_000_000,
    "session_idle_patient": 7 * 24 * 3600,
    "session_absolute_patient": 7 * 24 * 3600,
    "session_idle_staff": 7 * 24 * 3600,
    "session_absolute_staff": 7 * 24 * 3600,
}

# Roles of the matrix: "pending" is the practitioner P1 signed in with the password
# only, the second factor not given yet (what a stolen password alone opens).
ROLES = ("anonymous", "pending", "patient", "practitioner", "support", "dpo", "admin")
OWN, OTHER, UNKNOWN = "own", "other", "unknown"

# Specialties nobody of the world practises: disposable consultations go there so that
# they never end up in P1's or P2's hands.
UNTAKEN = "psychiatry"  # opened to be cancelled; never taken
FRESH_CARE = "cardiology"  # opened and taken at once by a disposable practitioner
FRESH_QUEUE = "paediatrics"  # opened and taken at once by a disposable practitioner


def tag() -> str:
    return secrets.token_hex(5)


def relations(kind: str | None, role: str) -> tuple[str, ...]:
    """The relations a cell of ``role`` has to an object of ``kind`` ("" without one).

    Only the patient and the practitioner own patient data; every signed-in account
    owns itself; only patients receive emails (verification codes).
    """
    if kind is None:
        return ("",)
    if kind == "account":
        return (OTHER, UNKNOWN) if role == "anonymous" else (OWN, OTHER, UNKNOWN)
    if kind == "code":
        return (OWN, OTHER, UNKNOWN) if role == "patient" else (OTHER, UNKNOWN)
    if role in ("patient", "practitioner", "pending"):
        return (OWN, OTHER, UNKNOWN)
    return (OTHER, UNKNOWN)


@contextmanager
def module_store(root: Path) -> Iterator[Store]:
    """A migrated SQLite store with a vault on a fresh key file, under ``root``."""
    key_file = FileKeyProvider.create(root / "keys" / "root.key")._path
    vault = Vault(FileKeyProvider(key_file))
    path = root / "hippocrate.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    try:
        yield Store(
            "sqlite",
            url,
            engine,
            unsafe_unaudited_sessions(
                engine, vault, KEYRING, why="tests of the layers below the entry points"
            ),
            path,
        )
    finally:
        engine.dispose()
        vault.close()


@dataclass
class Person:
    """An account signed in through the API; ``headers`` carries its bearer token."""

    user: TestUser
    headers: dict[str, str]

    @property
    def account_id(self) -> uuid.UUID:
        return self.user.account_id

    @property
    def patient_id(self) -> uuid.UUID | None:
        return self.user.patient_id


@dataclass
class Owned:
    """What the world planted for one patient: ids, and the sentinel strings."""

    patient: Person
    consultation: str = ""  # the consultation "own" / "other" cells act on
    message: str = ""
    attachment: str = ""
    code: str = ""  # the verification code of an email sent to the patient
    ids: set[str] = field(default_factory=set)
    sentinels: set[str] = field(default_factory=set)


@dataclass
class World:
    api: Api
    runtime: Runtime
    people: dict[str, Person]  # by matrix role (pending excepted)
    a: Owned
    b: Owned
    p2: Person
    probe: TestUser  # a patient the login cells sign in as

    @property
    def client(self) -> Any:
        return self.api.client

    @property
    def sessions(self) -> SessionFactory:
        return self.api.store.sessions

    # -- signing in ----------------------------------------------------------------

    def sign_in(self, user: TestUser) -> dict[str, str]:
        """``tests.identity.helpers.login`` at the app's clock; when both TOTP steps
        around it are spent for this secret, the clock moves on one step."""
        for _ in range(3):
            try:
                return login(
                    self.client, user.email, user.password, user.totp_secret, now=self.api.clock.now
                )
            except RuntimeError as exc:
                if "TOTP step" not in str(exc):
                    raise
                self.api.clock.advance(seconds=30)
        raise AssertionError("no TOTP code could be used")

    def code(self, user: TestUser) -> str:
        """A TOTP code the app accepts now for ``user`` (the clock moves if needed)."""
        assert user.totp_secret is not None
        for _ in range(3):
            try:
                return totp_code(user.totp_secret, now=self.api.clock.now)
            except RuntimeError:
                self.api.clock.advance(seconds=30)
        raise AssertionError("no TOTP code could be used")

    def pending_session(self, user: TestUser) -> dict[str, str]:
        """A session that gave the password, not the second factor yet."""
        response = self.client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": user.password}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body.get("mfa_required") is True, body
        return bearer(body["token"])

    def user(self, role: Role, **kwargs: Any) -> TestUser:
        return make_user(self.sessions, role, now=self.api.clock.now, **kwargs)

    def fresh(self, role: str, **kwargs: Any) -> Person:
        """A disposable account of ``role``, signed in the real way."""
        user = self.user(Role(role), **kwargs)
        return Person(user, self.sign_in(user))

    # -- who asks ------------------------------------------------------------------

    def person(self, role: str) -> Person:
        return self.people["practitioner" if role == "pending" else role]

    def headers(self, role: str) -> dict[str, str]:
        """The world's session of ``role``; a fresh pending one for "pending"."""
        if role == "anonymous":
            return {}
        if role == "pending":
            return self.pending_session(self.people["practitioner"].user)
        return self.person(role).headers

    def fresh_session(self, role: str) -> dict[str, str]:
        """Another session of the world's account of ``role`` (for cells that end it)."""
        if role == "anonymous":
            return {}
        if role == "pending":
            return self.headers("pending")
        return self.sign_in(self.person(role).user)

    def relogin_all(self) -> None:
        for person in (*self.people.values(), self.p2, self.b.patient):
            person.headers = self.sign_in(person.user)

    # -- objects by relation ---------------------------------------------------------

    def target(self, kind: str, role: str, relation: str) -> str:
        """The id (or code) a cell of ``role`` sends for ``relation``.

        own: the patient's own object, or the practitioner's patient's (in care);
        other: patient B's for the patient and the practitioner, patient A's for
        roles that own no patient data; unknown: an id that exists nowhere.
        """
        if relation == UNKNOWN:
            return new_code() if kind == "code" else str(uuid.uuid4())
        if kind == "account":
            if relation == OWN:
                return str(self.person(role).account_id)
            return str(self.a.patient.account_id)
        mine = role in ("patient", "practitioner", "pending")
        owned = self.a if relation == OWN or not mine else self.b
        if kind == "patient":
            return str(owned.patient.patient_id)
        value: str = getattr(owned, kind)
        return value

    # -- disposable objects ------------------------------------------------------------

    def open_consultation(self, patient: Person, specialty: str) -> str:
        opened = self.api.open(patient, specialty=specialty, subject="Toux", description="Sèche")
        return str(opened["id"])

    def fresh_care(self, patient: Person) -> tuple[Person, str]:
        """A disposable practitioner who just took a new consultation of ``patient``."""
        practitioner = self.fresh("practitioner", specialty=FRESH_CARE)
        consultation = self.open_consultation(patient, FRESH_CARE)
        taken = self.api.take(practitioner)
        assert taken["id"] == consultation, "another consultation waited in the fresh queue"
        return practitioner, consultation

    def fresh_account(
        self, role: Role = Role.SUPPORT, *, disabled: bool = False, reason: str = "matrix"
    ) -> str:
        """A disposable account (not signed in) for the admin routes to act on."""
        user = self.user(role)
        if disabled:
            with self.sessions.begin() as session:
                account = session.get(Account, user.account_id)
                assert account is not None
                account.status = AccountStatus.DISABLED
                account.disabled_reason = reason
        return str(user.account_id)

    # -- the guard -----------------------------------------------------------------------

    def contained(self, account_id: uuid.UUID) -> str | None:
        assert self.runtime.guard is not None
        return self.runtime.guard.state.contained(account_id)

    def release(self, person: Person) -> None:
        """Undo a containment (after reporting it) so later cells are not affected."""
        assert self.runtime.guard is not None
        with self.sessions.begin() as session:
            self.runtime.guard.release(
                session,
                admin=AuditActor(role="admin", account_id=self.people["admin"].account_id),
                account_id=person.account_id,
                reason="authorisation matrix: containment reported as a failure",
            )
        person.headers = self.sign_in(person.user)


# -- building the world ------------------------------------------------------------------


def _sentinel_patient(label: str) -> tuple[Any, set[str]]:
    """Patient data whose every identifying value is a sentinel."""
    base = patient_data(with_nir=True)
    t = tag()
    data = base.model_copy(
        update={
            "given_names": f"Prenom{label}{t}",
            "family_name": f"Nom{label}{t}",
            "email": f"patient.{label.lower()}.{t}@example.fr",
            "address": Address(
                line1=f"{t} rue du Sentinelle {label}", postal_code="75011", city=f"Ville{t}"
            ),
        }
    )
    assert data.nir is not None
    values = {
        data.given_names,
        data.family_name,
        data.email,
        data.phone,
        data.nir,
        data.address.line1,
        data.address.city,
        data.birth_date.isoformat(),
    }
    return data, values


def _plant(api: Api, owned: Owned, *, author: Person, label: str) -> None:
    """A message with a file from ``author`` in the owned consultation."""
    t = tag()
    text, filename, marker = (
        f"message-{label}-{t}",
        f"piece-{label}-{t}.png",
        f"fichier-{label}-{t}",
    )
    sent = api.write(
        author, owned.consultation, text, files=[(filename, png_bytes(marker), "image/png")]
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    owned.message, owned.attachment = body["id"], body["attachments"][0]["id"]
    owned.ids |= {owned.message, owned.attachment}
    owned.sentinels |= {text, filename, marker}


def _consultation(
    api: Api, owned: Owned, specialty: str, label: str, *, with_file: bool = True
) -> str:
    t = tag()
    subject, description = f"sujet-{label}-{t}", f"description-{label}-{t}"
    treatments, allergies = f"traitement-{label}-{t}", f"allergie-{label}-{t}"
    filename, marker = f"bilan-{label}-{t}.pdf", f"analyse-{label}-{t}"
    opened = api.open(
        owned.patient,
        subject=subject,
        description=description,
        specialty=specialty,
        questionnaire={**QUESTIONNAIRE, "current_treatments": treatments, "allergies": allergies},
        files=[(filename, pdf_bytes(marker), "application/pdf")] if with_file else None,
    )
    owned.sentinels |= {subject, description, treatments, allergies}
    if with_file:
        owned.sentinels |= {filename, marker}
    owned.ids.add(opened["id"])
    return str(opened["id"])


def _close(api: Api, owned: Owned, practitioner: Person, consultation: str, label: str) -> None:
    t = tag()
    incident, report, prescription = (
        f"incident-{label}-{t}",
        f"rapport-{label}-{t}",
        f"ordonnance-{label}-{t}",
    )
    response = api.client.post(
        f"/api/v1/consultations/{consultation}/incidents",
        headers=practitioner.headers,
        json={"description": incident},
    )
    assert response.status_code == 201, response.text
    response = api.close(practitioner, consultation, report=report, prescription=prescription)
    assert response.status_code == 200, response.text
    owned.sentinels |= {incident, report, prescription}


def _code_of(sessions: SessionFactory, account_id: uuid.UUID) -> str:
    with sessions() as session:
        email = session.scalars(
            select(OutboundEmail).where(OutboundEmail.account_id == account_id)
        ).first()
        assert email is not None, "no email was sent to them"
        code = email.verification_code
        assert code is not None
        return code


@contextmanager
def build_world(root: Path) -> Iterator[World]:
    with module_store(root) as store, running_api(store, root, **SETTINGS) as api:
        app = api.client.app
        runtime: Runtime = app.state.runtime  # type: ignore[attr-defined]
        clock_now = api.clock.now

        data_a, sentinels_a = _sentinel_patient("A")
        data_b, sentinels_b = _sentinel_patient("B")
        users = {
            "patient": make_user(store.sessions, Role.PATIENT, patient=data_a, now=clock_now),
            "practitioner": make_user(
                store.sessions, Role.PRACTITIONER, specialty="general-practice", now=clock_now
            ),
            "support": make_user(store.sessions, Role.SUPPORT, now=clock_now),
            "dpo": make_user(store.sessions, Role.DPO, now=clock_now),
            "admin": make_user(store.sessions, Role.ADMIN, now=clock_now),
        }
        # Headers come from signing in through the API (relogin_all, below).
        people = {role: Person(user, {}) for role, user in users.items()}
        b = Person(make_user(store.sessions, Role.PATIENT, patient=data_b, now=clock_now), {})
        p2 = Person(
            make_user(store.sessions, Role.PRACTITIONER, specialty="dermatology", now=clock_now),
            {},
        )
        probe = make_user(store.sessions, Role.PATIENT, now=clock_now)
        world = World(
            api,
            runtime,
            people,
            Owned(people["patient"], sentinels=sentinels_a),
            Owned(b, sentinels=sentinels_b),
            p2,
            probe,
        )
        world.relogin_all()
        a, p1 = world.a, people["practitioner"]
        for owned in (world.a, world.b):
            assert owned.patient.patient_id is not None
            owned.ids |= {str(owned.patient.patient_id)}

        # A: cA in progress with P1, messages and files both ways.
        a.consultation = _consultation(api, a, "general-practice", "A")
        assert api.take(p1)["id"] == a.consultation
        _plant(api, a, author=p1, label="A-p1")
        _plant(api, a, author=a.patient, label="A")  # "own" message: the patient's reply
        # A: cA2, closed by P1 (P1 keeps caring for A for the care period).
        closed = _consultation(api, a, "general-practice", "A2", with_file=False)
        assert api.take(p1)["id"] == closed
        _close(api, a, p1, closed, "A2")

        # B: cB with P2, messages and files both ways, closed.
        b_owned = world.b
        b_owned.consultation = _consultation(api, b_owned, "dermatology", "B")
        assert api.take(p2)["id"] == b_owned.consultation
        _plant(api, b_owned, author=b_owned.patient, label="B")
        _plant(api, b_owned, author=p2, label="B-p2")
        _close(api, b_owned, p2, b_owned.consultation, "B")
        # B: cBq waits in P1's queue (the queue must show neither subject nor id).
        _consultation(api, b_owned, "general-practice", "Bq", with_file=False)

        for owned in (world.a, world.b):
            owned.code = _code_of(store.sessions, owned.patient.account_id)
        yield world
