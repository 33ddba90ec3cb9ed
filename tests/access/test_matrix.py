"""The authorisation matrix: every route of the OpenAPI document × every role × the
caller's own object / someone else's / an id that does not exist.

- ``TABLE`` says, for each (method, path template), what the policy allows each role
  (and, where the route names an object, for each relation to it): allowed, forbidden
  (401/403), hidden (404), or 401 for a caller who has not signed in (fully).
  A route of the app missing from the table fails ``test_every_route_is_classified``.
- ``test_access`` sends each cell's request to the real app, in a world where everyone
  signed in the real way (tests/access/world.py), and checks the status class, that
  the answer carries none of the sentinels (identity, contact, NIR, health values,
  ids) the caller may not see, and that the guard did not have to contain the caller.
- ``test_not_yours_is_like_unknown`` checks that someone else's object and an id that
  does not exist get the same answer (status, headers, body) wherever the policy does
  not let the caller see the object.

The world is built once per module (per xdist worker): a few seconds, then about a
thousand requests.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from stdnum import luhn

from hippocrate.identity.models import Role
from tests.access.world import (
    FRESH_QUEUE,
    OTHER,
    OWN,
    ROLES,
    UNKNOWN,
    UNTAKEN,
    World,
    build_world,
    relations,
    tag,
)
from tests.breach.test_register import ASSESSMENT
from tests.consultations.helpers import QUESTIONNAIRE
from tests.identity.helpers import fast_password_hashing, new_password, patient_data, totp_code

API = "/api/v1"

# -- what the policy says --------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """The expected outcome of a cell.

    ``allowed``: 2xx, or exactly ``status`` when the policy lets the caller through
    and the route then refuses on the object's state or the input (409, 400...), never
    401/403/404. ``forbidden``: 401 or 403. ``hidden``: 404, as for an id that does not
    exist. ``unauthenticated``: 401 (no session, or a second factor still owed).
    ``bug``: the cell fails today because of the access-control bug described; it runs
    as a strict xfail so that the fix turns it into a failure to clean up.
    """

    outcome: str
    status: int | None = None
    bug: str | None = None

    def accepts(self, status: int) -> bool:
        if self.outcome == "allowed":
            if self.status is not None:
                return status == self.status
            return 200 <= status < 300
        if self.outcome == "forbidden":
            return status in (401, 403)
        if self.outcome == "hidden":
            return status == 404
        return status == 401

    def __str__(self) -> str:
        return self.outcome + (f" ({self.status})" if self.status else "")


OK = Expect("allowed")
AUTH = Expect("unauthenticated", 401)
FORBID = Expect("forbidden")
HIDE = Expect("hidden", 404)


def ok(status: int) -> Expect:
    """Allowed, with exactly this success status."""
    assert 200 <= status < 300
    return Expect("allowed", status)


def state(status: int) -> Expect:
    """Allowed by the policy; the route then refuses on the object's state or the input
    with ``status`` (never an access refusal)."""
    assert status >= 400
    assert status not in (401, 403, 404)
    return Expect("allowed", status)


Cell = Expect | dict[str, Expect]


def rel(*, own: Expect | None = None, other: Expect, unknown: Expect = HIDE) -> dict[str, Expect]:
    cells = {OTHER: other, UNKNOWN: unknown}
    return cells if own is None else {OWN: own, **cells}


# -- how to call a route -----------------------------------------------------------------


@dataclass
class Setup:
    """What a route's own preparation changes in a cell's request (None: default)."""

    headers: dict[str, str] | None = None
    target: str | None = None
    json: Any = None
    account_id: uuid.UUID | None = None  # who asks, when not the world's account
    after: Callable[[], None] | None = None


Body = Callable[[World, str, str | None], Any]
Prepare = Callable[[World, str, str, str | None], Setup | None]


@dataclass(frozen=True)
class Route:
    anonymous: Cell
    pending: Cell
    patient: Cell
    practitioner: Cell
    support: Cell
    dpo: Cell
    admin: Cell
    body: Body | None = None  # the JSON body, from (world, role, target)
    params: dict[str, str] | None = None
    prepare: Prepare | None = None  # disposable actors and objects
    body_kind: str | None = None  # the kind of object the body names, if any
    # Roles the policy lets see someone else's object here (support reading any
    # account's metadata, an admin acting on accounts or breaking the glass): for them
    # "other" may differ from "unknown". For every other role the two must not differ.
    visible: frozenset[str] = frozenset()

    def cell(self, role: str) -> Cell:
        cell: Cell = getattr(self, role)
        return cell


def everyone(expect: Expect, **changes: Cell) -> dict[str, Cell]:
    cells: dict[str, Cell] = dict.fromkeys(ROLES, expect)
    cells.update(changes)
    return cells


def signed_in(expect: Cell, **changes: Cell) -> dict[str, Cell]:
    """``expect`` for every fully signed-in role; 401 without a session or a factor."""
    return everyone(AUTH, **{**dict.fromkeys(ROLES[2:], expect), **changes})


def only(role_cells: dict[str, Cell], *, others: Cell = FORBID) -> dict[str, Cell]:
    return signed_in(others, **role_cells)


# Request bodies.


def _json(value: Any) -> Body:
    return lambda world, role, target: value


def _mfa_body(world: World, role: str, target: str | None) -> Any:
    if role == "pending":
        return {"code": world.code(world.person("pending").user)}
    return {"code": "000000"}  # a full session is refused before any code is checked


def _recovery_codes_body(world: World, role: str, target: str | None) -> Any:
    if role in ("practitioner", "support", "dpo", "admin"):
        return {"code": world.code(world.person(role).user)}
    return {"code": "000000"}  # a patient without TOTP is refused before the code


def _registration(world: World, role: str, target: str | None) -> Any:
    return {**patient_data().model_dump(mode="json"), "password": new_password()}


def _opening(world: World, role: str, target: str | None) -> Any:
    return {
        "specialty": UNTAKEN,
        "subject": "Toux",
        "description": "Sèche, depuis trois jours",
        "questionnaire": QUESTIONNAIRE,
    }


def _practitioner_body(world: World, role: str, target: str | None) -> Any:
    return {
        "email": f"dr.{tag()}@example.org",
        "given_names": "Jeanne",
        "family_name": "Martin",
        "rpps": _rpps(),
        "specialty": "general-practice",
    }


def _rpps() -> str:
    """A fresh RPPS number that passes its Luhn check digit."""
    body = f"{uuid.uuid4().int % 10**10:010d}"
    return body + luhn.calc_check_digit(body)


# Preparations: disposable actors and objects for cells that change what they touch.


def _fresh_session(world: World, role: str, relation: str, target: str | None) -> Setup:
    return Setup(headers=world.fresh_session(role))


def _fresh_patient(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    if role != "patient":
        return None
    person = world.fresh("patient")
    return Setup(headers=person.headers, account_id=person.account_id)


def _enrol(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    if role != "patient":
        return None
    person = world.fresh("patient")
    begun = world.client.post(f"{API}/me/totp", headers=person.headers)
    assert begun.status_code == 200, begun.text
    code = totp_code(begun.json()["secret"], now=world.api.clock.now)
    body = {"code": code, "password": person.user.password}
    return Setup(headers=person.headers, json=body, account_id=person.account_id)


def _change_password(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    if role in ("anonymous", "pending"):
        return Setup(json={"current_password": new_password(), "new_password": new_password()})
    person = world.fresh(role)
    body = {"current_password": person.user.password, "new_password": new_password()}
    return Setup(headers=person.headers, json=body, account_id=person.account_id)


def _disable_totp(world: World, role: str, relation: str, target: str | None) -> Setup:
    if role != "patient":
        return Setup(json={"password": new_password(), "code": "000000"})
    person = world.fresh("patient", totp=True)
    body = {"password": person.user.password, "code": world.code(person.user)}
    return Setup(headers=person.headers, json=body, account_id=person.account_id)


def _delete_account(world: World, role: str, relation: str, target: str | None) -> Setup:
    if role != "patient":
        return Setup(json={"password": new_password()})
    person = world.fresh("patient")
    body = {"password": person.user.password}
    return Setup(headers=person.headers, json=body, account_id=person.account_id)


def _break_glass(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    # The world's admin never holds a grant: the cell that opens one uses another admin.
    if role == "admin" and relation == OTHER:
        person = world.fresh("admin")
        return Setup(headers=person.headers, account_id=person.account_id)
    return None


def _cancel(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    if role == "patient" and relation == OWN:
        return Setup(target=world.open_consultation(world.a.patient, UNTAKEN))
    return None


def _close(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    if role == "practitioner" and relation == OWN:
        practitioner, consultation = world.fresh_care(world.a.patient)
        return Setup(
            headers=practitioner.headers,
            target=consultation,
            account_id=practitioner.account_id,
        )
    return None


def _take(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    if role != "practitioner":
        return None
    practitioner = world.fresh("practitioner", specialty=FRESH_QUEUE)
    world.open_consultation(world.fresh("patient"), FRESH_QUEUE)
    return Setup(headers=practitioner.headers, account_id=practitioner.account_id)


def _hand_back(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    """The practitioner hands back a consultation they just took (a disposable one);
    its patient then cancels it, so that the fresh queue it went back to stays empty."""
    if role != "practitioner" or relation != OWN:
        return None
    practitioner, consultation = world.fresh_care(world.a.patient)

    def cancel() -> None:
        cancelled = world.client.post(
            f"{API}/consultations/{consultation}/cancel", headers=world.a.patient.headers
        )
        assert cancelled.status_code == 200, cancelled.text

    return Setup(
        headers=practitioner.headers,
        target=consultation,
        account_id=practitioner.account_id,
        after=cancel,
    )


def _queue_entry(world: World, specialty: str, reader: Any) -> str:
    """An entry of ``specialty``'s queue as a practitioner of it lists it."""
    listed = world.client.get(f"{API}/queue", headers=reader.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert items, f"nothing waits in the {specialty} queue"
    entry: str = items[0]["entry"]
    return entry


def _take_entry(world: World, role: str, relation: str, target: str | None) -> Setup:
    """own: a fresh practitioner takes the entry of a consultation just opened in their
    queue; other: an entry of a queue nobody of the world practises (a consultation of
    someone else's queue); unknown: an id of the right shape that names nothing."""
    if relation == UNKNOWN:
        return Setup(target=uuid.uuid4().hex[:22])
    if role == "practitioner" and relation == OWN:
        practitioner = world.fresh("practitioner", specialty=FRESH_QUEUE)
        world.open_consultation(world.fresh("patient"), FRESH_QUEUE)
        entry = _queue_entry(world, FRESH_QUEUE, practitioner)
        return Setup(headers=practitioner.headers, target=entry, account_id=practitioner.account_id)
    world.open_consultation(world.fresh("patient"), UNTAKEN)
    return Setup(
        target=_queue_entry(world, UNTAKEN, world.fresh("practitioner", specialty=UNTAKEN))
    )


def _account_target(*, disabled: bool = False, reason: str = "matrix") -> Prepare:
    """Admin routes that change an account act on a disposable one ("other"); ending
    one's own sessions is done by a disposable admin."""

    def prepare(world: World, role: str, relation: str, target: str | None) -> Setup | None:
        if relation == OTHER:
            return Setup(target=world.fresh_account(Role.SUPPORT, disabled=disabled, reason=reason))
        if relation == OWN and role == "admin":
            person = world.fresh("admin")
            return Setup(
                headers=person.headers,
                target=str(person.account_id),
                account_id=person.account_id,
            )
        return None

    return prepare


def _approval_target(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    """A pending four-eyes request another admin made (the release of a disposable
    contained account): "other" for every role, approved or refused by an admin."""
    if relation != OTHER:
        return None
    asker = world.fresh("admin")
    contained = world.fresh_account(Role.SUPPORT, disabled=True, reason="contained")
    asked = world.client.post(
        f"{API}/admin/accounts/{contained}/release",
        headers=asker.headers,
        json={"reason": "faux positif vérifié avec le praticien par téléphone"},
    )
    assert asked.status_code == 202, asked.text
    return Setup(target=str(asked.json()["id"]))


def _end_everyones_sessions(world: World, role: str, relation: str, target: str | None) -> Setup:
    return Setup(after=world.relogin_all if role == "admin" else None)


def _incident_target(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    """A fresh incident the world's DPO opened (version 1, open): "other" for every role,
    the DPO's to read and change."""
    if relation != OTHER:
        return None
    opened = world.client.post(
        f"{API}/incidents",
        headers=world.headers("dpo"),
        json={"details": {"general": {"title": f"Incident {tag()}"}}},
    )
    assert opened.status_code == 201, opened.text
    return Setup(target=str(opened.json()["id"]))


def _notice_target(world: World, role: str, relation: str, target: str | None) -> Setup | None:
    """A notice of an incident addressed to patient A ("own" for A), or to patient B
    (the patient's "other"), written straight into the store as the notice job does."""
    if relation == UNKNOWN:
        return None
    from datetime import UTC, datetime

    from hippocrate.breach.models import Incident, IncidentOrigin, IncidentScope, Notice

    owner = world.b if role == "patient" and relation == OTHER else world.a
    patient = owner.patient.patient_id
    assert patient is not None
    now = datetime.now(UTC)
    with world.sessions.begin() as session:
        incident = Incident(
            reference=f"INC-{tag()}",
            origin=IncidentOrigin.DPO,
            opened_at=now,
            opened_by_role="dpo",
            awareness_at=now,
            details={},
            version=1,
        )
        session.add(incident)
        session.flush()
        scope = IncidentScope(
            incident_id=incident.id,
            kind="principals",
            computed_at=now,
            computed_by_role="dpo",
            head_seq=0,
            document={"patients": [{"id": str(patient), "categories": ["contact"]}]},
        )
        session.add(scope)
        session.flush()
        notice = Notice(
            incident_id=incident.id,
            patient_id=patient,
            scope_id=scope.id,
            next_attempt_at=now,
        )
        session.add(notice)
        session.flush()
        return Setup(target=str(notice.id))


def _notification_body(world: World, role: str, target: str | None) -> Any:
    return {"version": 1, "phase": "initial", "sent_at": world.api.clock.now.isoformat()}


DPO_ONLY = FORBID  # every other signed-in role, whatever the incident
DPO_SEES = frozenset({"dpo"})

# -- the table ---------------------------------------------------------------------------

STAFF_HIDDEN = rel(other=HIDE)  # support, dpo, admin without break-glass: not theirs
CARE = rel(own=OK, other=HIDE)  # the patient and the practitioner in care

TABLE: dict[str, Route] = {
    # Public: signing in, registering, recovering. Same answer with or without a token.
    "POST /api/v1/auth/login": Route(
        **everyone(OK),
        body=lambda world, role, target: {
            "email": world.probe.email,
            "password": world.probe.password,
        },
    ),
    "POST /api/v1/auth/register": Route(**everyone(ok(202)), body=_registration),
    # Public: anyone holding a document checks it; the answer says nothing of it.
    "POST /api/v1/documents/verify/code": Route(
        **everyone(OK), body=_json({"code": "ABCD-EFGH-JKMN"})
    ),
    # The PDF is the body: a JSON one is refused alike for every caller.
    "POST /api/v1/documents/verify/file": Route(**everyone(state(422)), body=_json({"pdf": "no"})),
    "POST /api/v1/auth/verify-email": Route(
        **everyone(state(400)), body=_json({"token": "x" * 43})
    ),
    "POST /api/v1/auth/password-reset": Route(
        **everyone(ok(202)),
        body=lambda world, role, target: {"email": f"nobody.{tag()}@example.fr"},
    ),
    "POST /api/v1/auth/password-reset/complete": Route(
        **everyone(state(400)),
        body=lambda world, role, target: {"token": "x" * 43, "password": new_password()},
    ),
    "GET /api/v1/health": Route(**everyone(OK)),
    "GET /api/v1/health/ready": Route(**everyone(OK)),
    "GET /api/v1/health/live": Route(**everyone(OK)),
    # A session whose second factor may still be owed.
    "POST /api/v1/auth/mfa": Route(**signed_in(state(409), pending=OK), body=_mfa_body),
    "POST /api/v1/auth/logout": Route(**signed_in(OK, pending=OK), prepare=_fresh_session),
    "POST /api/v1/me/totp": Route(
        **signed_in(state(409), pending=state(409), patient=OK), prepare=_fresh_patient
    ),
    "POST /api/v1/me/totp/confirm": Route(
        **signed_in(state(409), pending=state(409), patient=OK),
        body=_json({"code": "000000"}),
        prepare=_enrol,
    ),
    # The signed-in account.
    "GET /api/v1/me": Route(**signed_in(OK)),
    "POST /api/v1/me/password": Route(**signed_in(ok(204)), prepare=_change_password),
    "POST /api/v1/me/recovery-codes": Route(
        **signed_in(OK, patient=state(409)), body=_recovery_codes_body
    ),
    "POST /api/v1/me/totp/disable": Route(
        **signed_in(FORBID, patient=ok(204)), prepare=_disable_totp
    ),
    # The patient's own record.
    "GET /api/v1/patients/me": Route(**signed_in(HIDE, patient=OK), params={"reveal_nir": "true"}),
    "DELETE /api/v1/patients/me": Route(
        **signed_in(HIDE, patient=ok(204)), prepare=_delete_account
    ),
    "GET /api/v1/patients/me/export": Route(**signed_in(HIDE, patient=OK)),
    "GET /api/v1/patients/me/export/fhir": Route(**signed_in(HIDE, patient=OK)),
    "GET /api/v1/patients/me/break-glass": Route(**signed_in(HIDE, patient=OK)),
    "GET /api/v1/patients/me/access-log": Route(**signed_in(FORBID, patient=OK)),
    "GET /api/v1/patients/{patient_id}": Route(
        **signed_in(STAFF_HIDDEN, patient=CARE, practitioner=CARE),
        params={"reveal_nir": "true"},
    ),
    "POST /api/v1/admin/break-glass": Route(
        **signed_in(
            rel(other=FORBID, unknown=FORBID),
            patient=rel(own=FORBID, other=FORBID, unknown=FORBID),
            practitioner=rel(own=FORBID, other=FORBID, unknown=FORBID),
            admin=rel(other=ok(201), unknown=HIDE),
        ),
        body_kind="patient",
        body=lambda world, role, target: {
            "patient_id": target,
            "reason": "Patiente inconsciente aux urgences, pas de proche joignable.",
            "minutes": 5,
        },
        prepare=_break_glass,
        visible=frozenset({"admin"}),
    ),
    # Consultations.
    "GET /api/v1/consultations/catalogue": Route(**signed_in(OK)),
    "GET /api/v1/consultations": Route(**signed_in(OK)),
    "POST /api/v1/consultations": Route(
        **signed_in(FORBID, patient=ok(201)), body=_opening, prepare=_fresh_patient
    ),
    "GET /api/v1/consultations/{consultation_id}": Route(
        **signed_in(STAFF_HIDDEN, patient=CARE, practitioner=CARE)
    ),
    "POST /api/v1/consultations/{consultation_id}/cancel": Route(
        **signed_in(
            STAFF_HIDDEN,
            patient=rel(own=OK, other=HIDE),
            practitioner=rel(own=FORBID, other=HIDE),
        ),
        prepare=_cancel,
    ),
    "POST /api/v1/consultations/{consultation_id}/close": Route(
        **signed_in(
            STAFF_HIDDEN,
            patient=rel(own=FORBID, other=HIDE),
            practitioner=rel(own=OK, other=HIDE),
        ),
        body=_json({"report": "Rhinopharyngite.", "acts": ["TCG"]}),
        prepare=_close,
    ),
    "POST /api/v1/consultations/{consultation_id}/hand-back": Route(
        **signed_in(
            STAFF_HIDDEN,
            patient=rel(own=FORBID, other=HIDE),
            practitioner=rel(own=OK, other=HIDE),
        ),
        body=_json({"reason": "Relève d'une autre spécialité"}),
        prepare=_hand_back,
    ),
    "POST /api/v1/consultations/{consultation_id}/incidents": Route(
        **signed_in(
            STAFF_HIDDEN,
            patient=rel(own=FORBID, other=HIDE),
            practitioner=rel(own=ok(201), other=HIDE),
        ),
        body=_json({"description": "Connexion perdue deux minutes"}),
    ),
    "GET /api/v1/consultations/{consultation_id}/messages": Route(
        **signed_in(STAFF_HIDDEN, patient=CARE, practitioner=CARE)
    ),
    "POST /api/v1/consultations/{consultation_id}/messages": Route(
        **signed_in(
            STAFF_HIDDEN,
            patient=rel(own=ok(201), other=HIDE),
            practitioner=rel(own=ok(201), other=HIDE),
        ),
        body=_json({"body": "Bonjour"}),
    ),
    "GET /api/v1/messages/{message_id}": Route(
        **signed_in(STAFF_HIDDEN, patient=CARE, practitioner=CARE)
    ),
    "GET /api/v1/attachments/{attachment_id}": Route(
        **signed_in(STAFF_HIDDEN, patient=CARE, practitioner=CARE)
    ),
    # The queue: practitioners only.
    "GET /api/v1/queue": Route(**only({"practitioner": OK})),
    "POST /api/v1/queue/take": Route(**only({"practitioner": OK}), prepare=_take),
    # Taking one entry of the list: an entry of another queue, or one that names
    # nothing, is "no longer waiting" (409) alike; every other role is refused first.
    "POST /api/v1/queue/{entry}/take": Route(
        **only({"practitioner": rel(own=OK, other=state(409), unknown=state(409))}),
        prepare=_take_entry,
    ),
    # The caller's own emails.
    "GET /api/v1/notifications": Route(**signed_in(OK)),
    "POST /api/v1/notifications/verify": Route(
        # Another's code answers "not found", exactly like a code never sent.
        **signed_in(rel(other=OK, unknown=OK), patient=rel(own=OK, other=OK, unknown=OK)),
        body_kind="code",
        body=lambda world, role, target: {"code": target},
    ),
    # Administration: admins only; account routes act on a disposable account.
    # Staff creation is a four-eyes request: 202, the account disabled until approved.
    "POST /api/v1/admin/practitioners": Route(**only({"admin": ok(202)}), body=_practitioner_body),
    "POST /api/v1/admin/staff": Route(
        **only({"admin": ok(202)}),
        body=lambda world, role, target: {"email": f"staff.{tag()}@example.org", "role": "support"},
    ),
    "POST /api/v1/admin/accounts/{account_id}/disable": Route(
        **only({"admin": rel(own=state(409), other=OK)}),
        body=_json({"reason": "matrix"}),
        prepare=_account_target(),
        visible=frozenset({"admin"}),
    ),
    "POST /api/v1/admin/accounts/{account_id}/enable": Route(
        **only({"admin": rel(own=state(409), other=OK)}),
        prepare=_account_target(disabled=True),
        visible=frozenset({"admin"}),
    ),
    # Release, recovery and a new admin answer 202: a second admin must approve.
    "POST /api/v1/admin/accounts/{account_id}/release": Route(
        **only({"admin": rel(own=state(409), other=ok(202))}),
        body=_json({"reason": "faux positif vérifié avec le praticien par téléphone"}),
        prepare=_account_target(disabled=True, reason="contained"),
        visible=frozenset({"admin"}),
    ),
    "POST /api/v1/admin/accounts/{account_id}/unlock": Route(
        **only({"admin": rel(own=state(409), other=OK)}),
        prepare=_account_target(),
        visible=frozenset({"admin"}),
    ),
    "POST /api/v1/admin/accounts/{account_id}/recovery": Route(
        **only({"admin": rel(own=state(409), other=ok(202))}),
        body=_json({"password": True, "second_factor": True}),
        prepare=_account_target(),
        visible=frozenset({"admin"}),
    ),
    "DELETE /api/v1/admin/accounts/{account_id}/sessions": Route(
        **only({"admin": rel(own=OK, other=OK)}),
        prepare=_account_target(),
        visible=frozenset({"admin"}),
    ),
    "GET /api/v1/admin/approvals": Route(**only({"admin": OK})),
    "POST /api/v1/admin/approvals/{request_id}/approve": Route(
        **only({"admin": rel(other=OK)}), prepare=_approval_target, visible=frozenset({"admin"})
    ),
    "POST /api/v1/admin/approvals/{request_id}/refuse": Route(
        **only({"admin": rel(other=OK)}), prepare=_approval_target, visible=frozenset({"admin"})
    ),
    "DELETE /api/v1/admin/sessions": Route(**only({"admin": OK}), prepare=_end_everyones_sessions),
    # The incident register: the DPO's alone.
    "GET /api/v1/incidents": Route(**only({"dpo": OK})),
    "POST /api/v1/incidents": Route(
        **only({"dpo": ok(201)}), body=_json({"details": {"general": {"title": "Copie"}}})
    ),
    "GET /api/v1/incidents/{incident_id}": Route(
        **only({"dpo": rel(other=OK)}), prepare=_incident_target, visible=DPO_SEES
    ),
    "PATCH /api/v1/incidents/{incident_id}": Route(
        **only({"dpo": rel(other=OK)}),
        body=_json({"version": 1, "details": {"consequences": "hameçonnage"}}),
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    "PUT /api/v1/incidents/{incident_id}/assessment": Route(
        **only({"dpo": rel(other=OK)}),
        body=lambda world, role, target: {"version": 1, "assessment": ASSESSMENT},
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    "POST /api/v1/incidents/{incident_id}/scopes": Route(
        **only({"dpo": rel(other=ok(201))}),
        body=_json({"version": 1}),
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    "GET /api/v1/incidents/{incident_id}/dossier": Route(
        **only({"dpo": rel(other=OK)}), prepare=_incident_target, visible=DPO_SEES
    ),
    "POST /api/v1/incidents/{incident_id}/notifications": Route(
        **only({"dpo": rel(other=ok(201))}),
        body=_notification_body,
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    # Without a scope there is nobody to tell: refused on the incident's state.
    "POST /api/v1/incidents/{incident_id}/notices": Route(
        **only({"dpo": rel(other=state(422))}),
        body=_json({"version": 1}),
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    # Nothing asked on a fresh incident: nothing to approve, refused on its state.
    "POST /api/v1/incidents/{incident_id}/notices/approve": Route(
        **only({"dpo": rel(other=state(409))}),
        body=_json({"version": 1, "note": "vérifié"}),
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    "GET /api/v1/incidents/{incident_id}/notices": Route(
        **only({"dpo": rel(other=OK)}), prepare=_incident_target, visible=DPO_SEES
    ),
    "POST /api/v1/incidents/{incident_id}/close": Route(
        **only({"dpo": rel(other=OK)}),
        body=_json({"version": 1, "note": "mesures prises"}),
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    "POST /api/v1/incidents/{incident_id}/reopen": Route(
        **only({"dpo": rel(other=state(422))}),  # an open incident is not reopened
        body=_json({"version": 1, "note": "élément nouveau"}),
        prepare=_incident_target,
        visible=DPO_SEES,
    ),
    # A patient's own notices (the banner).
    "GET /api/v1/patients/me/notices": Route(**only({"patient": OK})),
    "POST /api/v1/patients/me/notices/{notice_id}/seen": Route(
        **only(
            {
                "patient": rel(own=ok(204), other=HIDE),
                "practitioner": rel(own=FORBID, other=FORBID, unknown=FORBID),
            }
        ),
        prepare=_notice_target,
    ),
    # Public: is this message really from Hippocrate?
    "POST /api/v1/messages/check": Route(**everyone(OK), body=_json({"text": "K7PX-3QHM"})),
    # Support: account metadata only (support and admins).
    "GET /api/v1/support/accounts": Route(**only({"support": OK, "admin": OK})),
    "GET /api/v1/support/accounts/{account_id}": Route(
        **only({"support": rel(own=OK, other=OK), "admin": rel(own=OK, other=OK)}),
        visible=frozenset({"support", "admin"}),
    ),
}

# The routes an anonymous caller may reach; every other one answers 401.
PUBLIC = {
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/verify-email",
    "POST /api/v1/auth/password-reset",
    "POST /api/v1/auth/password-reset/complete",
    "POST /api/v1/documents/verify/code",
    "POST /api/v1/documents/verify/file",
    "POST /api/v1/messages/check",
    "GET /api/v1/health",
    "GET /api/v1/health/ready",
    "GET /api/v1/health/live",
}
# Public too, outside the OpenAPI document.
PUBLIC_EXTRA = ("GET /api/v1/openapi.json",)

_KINDS = {
    "patient_id": "patient",
    "consultation_id": "consultation",
    "message_id": "message",
    "attachment_id": "attachment",
    "account_id": "account",
    "request_id": "approval",
    "entry": "queue entry",
    "incident_id": "incident",
    "notice_id": "notice",
}


def kind_of(key: str, route: Route) -> str | None:
    found = re.findall(r"\{(\w+)\}", key)
    if found:
        return _KINDS.get(found[0], found[0])
    return route.body_kind


def expectation(key: str, role: str, relation: str) -> Expect | None:
    cell = TABLE[key].cell(role)
    if isinstance(cell, Expect):
        return cell
    return cell.get(relation)


# -- the world ---------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, _fast_passwords: None) -> Iterator[World]:
    with build_world(tmp_path_factory.mktemp("access")) as built:
        yield built


# -- sending a cell ----------------------------------------------------------------------


@dataclass
class Sent:
    response: Any
    request_text: str
    account_id: uuid.UUID | None


def send(world: World, key: str, role: str, relation: str) -> Sent:
    route = TABLE[key]
    method, template = key.split(" ", 1)
    kind = kind_of(key, route)
    if kind in ("approval", "queue entry", "incident", "notice"):
        target: str | None = str(uuid.uuid4())  # a real one comes from the preparation
    else:
        target = world.target(kind, role, relation) if kind else None
    setup = (route.prepare(world, role, relation, target) if route.prepare else None) or Setup()
    if setup.target is not None:
        target = setup.target
    headers = setup.headers if setup.headers is not None else world.headers(role)
    body = setup.json
    if body is None and route.body is not None:
        body = route.body(world, role, target)
    path = re.sub(r"\{\w+\}", str(target), template) if "{" in template else template
    response = world.client.request(method, path, headers=headers, json=body, params=route.params)
    if setup.after is not None:
        setup.after()
    account_id = setup.account_id
    if account_id is None and role not in ("anonymous",):
        account_id = world.person(role).account_id
    return Sent(response, f"{path} {json.dumps(body)}", account_id)


def visible_to(world: World, role: str) -> dict[str, str]:
    """Sentinels ``role`` must never receive, each with whose it is."""
    found = dict.fromkeys(world.a.sentinels | world.a.ids, "patient A's")
    found.update(dict.fromkeys(world.b.sentinels | world.b.ids, "patient B's"))
    if role in ("patient", "practitioner"):
        # A is the patient; the practitioner cares for A: A's data is theirs to see.
        found = {value: whose for value, whose in found.items() if whose == "patient B's"}
    return found


def leaks(world: World, role: str, sent: Sent) -> list[str]:
    response = sent.response
    haystack = (
        response.content
        + "\n".join(f"{name}: {value}" for name, value in response.headers.items()).encode()
    )
    found = []
    for value, whose in visible_to(world, role).items():
        if value.encode() not in haystack:
            continue
        if 200 <= response.status_code < 300 and value in sent.request_text:
            continue  # an id the caller sent, echoed in an answer the policy allows
        found.append(f"{whose} {value!r}")
    return sorted(found)


# -- the cells ---------------------------------------------------------------------------


def _cells() -> Iterator[Any]:
    for key, route in TABLE.items():
        kind = kind_of(key, route)
        for role in ROLES:
            for relation in relations(kind, role):
                expect = expectation(key, role, relation)
                marks = []
                if expect is not None and expect.bug:
                    marks.append(pytest.mark.xfail(strict=True, reason=expect.bug))
                label = f"{key.replace(API, '')}|{role}" + (f"|{relation}" if relation else "")
                yield pytest.param(key, role, relation, id=label, marks=marks)


def _pairs() -> Iterator[Any]:
    for key, route in TABLE.items():
        kind = kind_of(key, route)
        for role in ROLES:
            if kind is None or role in route.visible:
                continue
            if {OTHER, UNKNOWN} <= set(relations(kind, role)):
                other = expectation(key, role, OTHER)
                marks = []
                if other is not None and other.bug:
                    marks.append(pytest.mark.xfail(strict=True, reason=other.bug))
                yield pytest.param(key, role, id=f"{key.replace(API, '')}|{role}", marks=marks)


@pytest.mark.parametrize(("key", "role", "relation"), list(_cells()))
def test_access(world: World, key: str, role: str, relation: str) -> None:
    expect = expectation(key, role, relation)
    assert expect is not None, f"{key}: no expectation for {role} / {relation or '-'}"
    sent = send(world, key, role, relation)
    response = sent.response
    problems = []
    if sent.account_id is not None and (reason := world.contained(sent.account_id)):
        problems.append(f"the guard contained the caller ({reason}): it touched patient data")
        person = world.person(role)
        if person.account_id == sent.account_id:
            world.release(person)
    if not expect.accepts(response.status_code):
        problems.append(f"expected {expect}, got {response.status_code}: {response.text[:300]}")
    if found := leaks(world, role, sent):
        problems.append(f"leaked {', '.join(found)}")
    assert not problems, f"{key} as {role} ({relation or 'no object'}): " + "; ".join(problems)


def shape(response: Any) -> tuple[int, dict[str, str], bytes]:
    """What a caller can compare of two answers (the request id aside)."""
    headers = {k: v for k, v in response.headers.items() if k.lower() != "x-request-id"}
    return response.status_code, headers, response.content


@pytest.mark.parametrize(("key", "role"), list(_pairs()))
def test_not_yours_is_like_unknown(world: World, key: str, role: str) -> None:
    """Someone else's object answers exactly as an id that does not exist."""
    theirs = send(world, key, role, OTHER).response
    unknown = send(world, key, role, UNKNOWN).response
    assert shape(theirs) == shape(unknown), (
        f"{key} as {role}: someone else's object answers {theirs.status_code} "
        f"{theirs.text[:200]!r}, an unknown id {unknown.status_code} {unknown.text[:200]!r}"
    )


# -- the table itself --------------------------------------------------------------------


def _documented(world: World) -> set[str]:
    response = world.client.get(f"{API}/openapi.json")
    assert response.status_code == 200, response.text
    return {
        f"{method.upper()} {path}"
        for path, operations in response.json()["paths"].items()
        for method in operations
    }


def test_every_route_is_classified(world: World) -> None:
    """A route the matrix does not classify fails here, so none escapes it."""
    documented = _documented(world)
    unclassified = sorted(documented - set(TABLE))
    stale = sorted(set(TABLE) - documented)
    assert not unclassified, f"routes missing from the authorisation matrix: {unclassified}"
    assert not stale, f"routes in the matrix that the app no longer has: {stale}"


def test_every_cell_is_classified() -> None:
    """Every role has an expectation, and for a route naming an object, one for each
    relation that role can have to it (and no other)."""
    missing = []
    for key, route in TABLE.items():
        kind = kind_of(key, route)
        for role in ROLES:
            cell = route.cell(role)
            wanted = set(relations(kind, role))
            if isinstance(cell, dict) and (kind is None or set(cell) != wanted):
                missing.append(f"{key} {role}: has {sorted(cell)}, needs {sorted(wanted)}")
        if key in PUBLIC:  # a token changes nothing on a public route
            assert all(route.cell(role) == route.cell("anonymous") for role in ROLES), key
    assert not missing, "\n".join(missing)


def test_only_the_public_routes_let_anonymous_callers_in(world: World) -> None:
    """Anonymous callers reach exactly the routes of ``PUBLIC`` (and the OpenAPI
    document); the table says 401 for every other one (``test_access`` checks it)."""
    assert set(TABLE) >= PUBLIC
    for key, route in TABLE.items():
        cell = route.cell("anonymous")
        cells = list(cell.values()) if isinstance(cell, dict) else [cell]
        if key in PUBLIC:
            assert AUTH not in cells, f"{key} is public: it cannot answer 401 to anyone"
        else:
            assert cells == [AUTH] * len(cells), f"{key} must answer 401 to anonymous callers"
    for key in PUBLIC_EXTRA:
        method, path = key.split(" ", 1)
        assert world.client.request(method, path).status_code == 200, key


def test_the_checks_can_fail(world: World) -> None:
    """Controls: B's record, as P2 (in care) reads it, would be a leak to P1 and to
    support, and differs from the answer to an unknown id."""
    path = f"{API}/patients/{{}}?reveal_nir=true"
    response = world.client.get(path.format(world.b.patient.patient_id), headers=world.p2.headers)
    assert response.status_code == 200, response.text
    sent = Sent(response, "", world.p2.account_id)
    found = leaks(world, "practitioner", sent)
    assert any(world.b.patient.user.email in leak for leak in found), found
    assert leaks(world, "support", sent)
    unknown = world.client.get(path.format(uuid.uuid4()), headers=world.p2.headers)
    assert shape(response) != shape(unknown)
