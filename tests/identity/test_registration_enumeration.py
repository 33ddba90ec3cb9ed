"""Registration as an attacker uses it: register an address (or a NIR) with a password
of one's choosing, then sign in, reset or register again, and compare the answers for
an address that was free and one that was taken; and squat someone's address or NIR so
that its real owner can no longer register (issue 8, item 3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hippocrate.audit.models import AuditEvent
from hippocrate.patients.models import Patient
from tests.identity.conftest import Env, assert_problem, link_token, text_of
from tests.identity.helpers import patient_data

PASSWORD = "velvet-otter-marches-north"
SQUATTER_PASSWORD = "granite-heron-waits-south"


def _body(data: Any, password: str = PASSWORD) -> dict[str, Any]:
    body: dict[str, Any] = data.model_dump(mode="json")
    body["password"] = password
    return body


def _register(env: Env, data: Any, password: str = PASSWORD) -> Any:
    return env.client.post("/api/v1/auth/register", json=_body(data, password))


def _seen(response: Any) -> tuple[int, Any, dict[str, str]]:
    """What a caller compares: status, body, and every header but the date and the
    request id (fresh for every request)."""
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in ("date", "x-request-id")
    }
    return response.status_code, response.json(), headers


def _probe(env: Env, email: str) -> list[tuple[int, Any, dict[str, str]]]:
    """Register ``email`` with PASSWORD, then try it every way an attacker can."""
    seen = [_seen(_register(env, patient_data(email=email)))]
    for _ in range(6):  # past the per-account limit: the lock must come alike too
        seen.append(_seen(env.post_login(email, PASSWORD)))
    seen.append(_seen(env.client.post("/api/v1/auth/password-reset", json={"email": email})))
    seen.append(_seen(_register(env, patient_data(email=email))))
    return seen


def test_register_then_sign_in_answers_alike_for_a_free_and_a_taken_address(
    env: Env,
) -> None:
    owner = env.user()
    at = env.later(seconds=1)  # the same instant for both, so that locks end alike

    taken = _probe(env, owner.email)
    env.set_clock(at)
    free = _probe(env, "nobody.yet@example.org")

    assert free == taken
    assert taken[0][0] == 202
    assert taken[1][0] == 401


def _verify_latest(env: Env, email: str) -> Any:
    message = env.emails_to(email)[-1]
    assert "/account/verify-email?token=" in text_of(message), text_of(message)
    return env.client.post("/api/v1/auth/verify-email", json={"token": link_token(message)})


def _own_record(env: Env, email: str, password: str) -> dict[str, Any]:
    signed_in = env.post_login(email, password)
    assert signed_in.status_code == 200, signed_in.text
    headers = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    record = env.client.get("/api/v1/patients/me", headers=headers)
    assert record.status_code == 200, record.text
    body: dict[str, Any] = record.json()
    return body


def test_a_squatted_nir_does_not_stop_its_owner(env_on: Env) -> None:
    env = env_on  # on SQLite and PostgreSQL: the lookups and the shredding differ
    owner = patient_data(with_nir=True)
    assert owner.nir is not None
    squatter = patient_data(email="squatter@example.org").model_copy(
        update={"nir": owner.nir, "sex": owner.sex, "birth_date": owner.birth_date}
    )
    assert _register(env, squatter, SQUATTER_PASSWORD).status_code == 202  # never verified

    assert _register(env, owner).status_code == 202
    assert _verify_latest(env, owner.email).status_code == 204

    record = _own_record(env, owner.email, PASSWORD)
    assert record["nir_masked"] is not None
    assert record["family_name"] == owner.family_name


def test_a_nir_held_by_a_verified_account_is_withheld_without_telling_the_registrant(
    env: Env,
) -> None:
    holder = patient_data(with_nir=True)
    assert holder.nir is not None
    assert _register(env, holder).status_code == 202
    assert _verify_latest(env, holder.email).status_code == 204
    claimant = patient_data(email="claimant@example.org").model_copy(
        update={"nir": holder.nir, "sex": holder.sex, "birth_date": holder.birth_date}
    )
    control = patient_data(with_nir=True, email="control@example.org")

    claimed = _register(env, claimant)
    fresh = _register(env, control)
    assert _seen(claimed) == _seen(fresh)
    assert _verify_latest(env, claimant.email).status_code == 204
    assert _verify_latest(env, control.email).status_code == 204

    # The account exists and works, without the NIR; nothing it can read says why.
    record = _own_record(env, claimant.email, PASSWORD)
    assert record["nir_masked"] is None
    assert _own_record(env, control.email, PASSWORD)["nir_masked"] is not None
    # The first holder keeps it, and the conflict is on the record for support.
    assert _own_record(env, holder.email, PASSWORD)["nir_masked"] is not None
    with env.store.sessions() as session:
        patients = session.scalars(
            select(AuditEvent.patient_id).where(AuditEvent.action == "account:nir:withheld")
        ).all()
    assert len(set(patients)) == 2  # in the claimant's history and in the holder's
    assert None not in patients


def test_a_squatted_address_does_not_stop_its_owner(env_on: Env) -> None:
    env = env_on  # on SQLite and PostgreSQL: the lookups and the shredding differ
    owner = patient_data()
    squatter = patient_data(email=owner.email)
    assert _register(env, squatter, SQUATTER_PASSWORD).status_code == 202  # never verified

    assert _register(env, owner).status_code == 202
    assert _verify_latest(env, owner.email).status_code == 204

    record = _own_record(env, owner.email, PASSWORD)
    assert record["family_name"] == owner.family_name
    assert_problem(env.post_login(owner.email, SQUATTER_PASSWORD), 401)
    # The squatter's link, in the owner's mailbox, opens nothing any more.
    first = env.emails_to(owner.email)[0]
    assert_problem(
        env.client.post("/api/v1/auth/verify-email", json={"token": link_token(first)}), 400
    )
    with env.store.sessions() as session:
        [patient] = session.scalars(select(Patient.id).where(Patient.status == "active")).all()
    assert patient is not None
