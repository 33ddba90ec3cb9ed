"""Patient registration: verified by a single-use link, the same answer whether or not
the address (or NIR) is already registered, and the password policy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from hippocrate.identity.models import Account
from hippocrate.patients.models import Patient
from tests.identity.conftest import Env, assert_problem, link_token, text_of
from tests.identity.helpers import patient_data

PASSWORD = "velvet-otter-marches-north"


def _body(email: str, password: str = PASSWORD, **changes: Any) -> dict[str, Any]:
    data = patient_data(email=email).model_dump(mode="json")
    data.update(password=password, **changes)
    return data


def _register(env: Env, body: dict[str, Any]) -> Any:
    return env.client.post("/api/v1/auth/register", json=body)


def _count(env: Env, model: Any) -> int:
    with env.store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_register_confirm_the_address_then_sign_in(env_on: Env) -> None:
    env = env_on
    email = "lea.moreau@example.org"

    response = _register(env, _body(email))
    before = env.post_login(email, PASSWORD)
    [message] = env.emails_to(email)
    verified = env.client.post("/api/v1/auth/verify-email", json={"token": link_token(message)})
    after = env.post_login(email, PASSWORD)

    assert response.status_code == 202
    # Like a wrong password: a taken address answers that to a second registration's
    # password, so a pending one must too (test_registration_enumeration.py).
    assert_problem(before, 401)
    assert verified.status_code == 204
    assert after.status_code == 200
    assert after.json()["token_type"] == "bearer"
    me = env.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {after.json()['token']}"}
    ).json()
    assert me["email_verified"] is True
    assert me["status"] == "active"


def test_registering_a_known_address_gives_the_same_answer_and_tells_its_owner(
    env: Env,
) -> None:
    owner = env.user()

    new = _register(env, _body("someone.new@example.org"))
    known = _register(env, _body(owner.email, password="another-long-passphrase"))

    assert (known.status_code, known.json()) == (new.status_code, new.json())
    [message] = env.emails_to(owner.email)
    assert "/account/reset-password?token=" in text_of(message)
    assert _count(env, Account) == 2  # the owner and the new patient, no duplicate
    # The second registration's password opened nothing.
    assert_problem(env.post_login(owner.email, "another-long-passphrase"), 401)
    assert env.post_login(owner.email, owner.password).status_code == 200


def test_registering_with_a_nir_on_file_gives_the_same_answer_and_settles_it_later(
    env: Env,
) -> None:
    first = patient_data(with_nir=True)
    assert first.nir is not None
    assert (
        _register(
            env,
            _body(first.email)
            | {"nir": first.nir, "sex": first.sex, "birth_date": first.birth_date.isoformat()},
        ).status_code
        == 202
    )
    patients = _count(env, Patient)

    reused = _register(
        env,
        _body("impostor@example.org")
        | {"nir": first.nir, "sex": first.sex, "birth_date": first.birth_date.isoformat()},
    )
    fresh = _register(env, _body("someone.else@example.org"))

    assert (reused.status_code, reused.json()) == (fresh.status_code, fresh.json())
    # Both are pending registrations with a link to their address: the NIR is settled
    # only once an address is verified (test_registration_enumeration.py).
    assert _count(env, Patient) == patients + 2
    [link] = env.emails_to("impostor@example.org")
    assert "/account/verify-email?token=" in text_of(link)


def test_an_inconsistent_nir_is_refused_whether_or_not_the_address_is_known(env: Env) -> None:
    owner = env.user()
    data = patient_data(with_nir=True)
    assert data.nir is not None
    other_sex = "M" if data.sex == "F" else "F"
    wrong = {"nir": data.nir, "sex": other_sex, "birth_date": data.birth_date.isoformat()}

    known = _register(env, _body(owner.email) | wrong)
    unknown = _register(env, _body("not.yet@example.org") | wrong)

    assert_problem(known, 422)
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())


def test_a_verification_link_works_once(env: Env) -> None:
    email = "once@example.org"
    _register(env, _body(email))
    token = link_token(env.emails_to(email)[0])

    first = env.client.post("/api/v1/auth/verify-email", json={"token": token})
    second = env.client.post("/api/v1/auth/verify-email", json={"token": token})

    assert first.status_code == 204
    assert_problem(second, 400)


def test_a_verification_link_expires(env: Env) -> None:
    email = "late@example.org"
    _register(env, _body(email))
    token = link_token(env.emails_to(email)[0])

    env.later(hours=49)
    response = env.client.post("/api/v1/auth/verify-email", json={"token": token})

    assert_problem(response, 400)


@pytest.mark.parametrize("token", ["", "x" * 129, "not-a-token-at-all-but-long-enough-000000"])
def test_a_bad_verification_token_is_refused(env: Env, token: str) -> None:
    response = env.client.post("/api/v1/auth/verify-email", json={"token": token})

    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-pw-1", "at least 12"),
        ("motdepasse2024", "too common"),
        ("Azertyuiop123!", "too common"),
        ("P@ssw0rd123456", "too common"),
        ("correct horse battery staple", "too common"),
        ("soleilsoleilsoleil", "too common"),
        ("aaaaaaaaaaaaaaaa", "too few"),
        ("bertrand.lefort-2026", "email address"),
    ],
)
def test_a_weak_password_is_refused(env: Env, password: str, why: str) -> None:
    response = _register(env, _body("bertrand.lefort@example.org", password=password))

    body = assert_problem(response, 422)
    assert why in body["detail"]
    assert body["title"] == "Password refused"
    assert _count(env, Account) == 0


def test_registration_refuses_unknown_fields_and_oversized_values(env: Env) -> None:
    assert_problem(_register(env, _body("a.b@example.org") | {"role": "admin"}), 422)
    assert_problem(_register(env, _body("a.b@example.org", password="p" * 200)), 422)
    assert_problem(_register(env, _body("a.b@example.org", family_name="x" * 201)), 422)
    assert _count(env, Account) == 0


def test_surrounding_spaces_are_part_of_a_password(env: Env) -> None:
    email = "spaces@example.org"
    _register(env, _body(email, password=f"  {PASSWORD}  "))
    env.client.post(
        "/api/v1/auth/verify-email", json={"token": link_token(env.emails_to(email)[0])}
    )

    assert_problem(env.post_login(email, PASSWORD), 401)
    assert env.post_login(email, f"  {PASSWORD}  ").status_code == 200
